"""A TCP proxy in front of a real server that breaks connections on purpose.

HTTP/1.1 requests are read whole and forwarded one by one, so a fault can be aimed at the
n-th request: `drop_response` forwards it, waits for the server's full answer (the server has
committed) and closes the client's connection instead of answering; `drop_request` closes
before forwarding (the server never sees it); `cut_request` forwards half of the body and
closes both sides. Websocket upgrades are piped raw, and `kill_all()` cuts every open pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

Fault = Literal["ok", "drop_response", "drop_request", "cut_request"]


async def _read_message(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One HTTP/1.1 message: (head, body), body by Content-Length or chunked encoding."""
    head = await reader.readuntil(b"\r\n\r\n")
    headers = {
        line.split(b":", 1)[0].strip().lower(): line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")[1:]
        if b":" in line
    }
    if b"content-length" in headers:
        return head, await reader.readexactly(int(headers[b"content-length"]))
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = b""
        while True:
            size_line = await reader.readuntil(b"\r\n")
            body += size_line
            size = int(size_line.split(b";")[0], 16)
            body += await reader.readexactly(size + 2)
            if size == 0:
                return head, body
    return head, b""


@dataclass
class FaultyProxy:
    upstream_host: str
    upstream_port: int
    faults: deque[Fault] = field(default_factory=deque)
    requests: int = 0
    injected: list[Fault] = field(default_factory=list)
    upgrades: int = 0
    _server: asyncio.Server | None = None
    _pipes: set[asyncio.StreamWriter] = field(default_factory=set)
    _open: set[asyncio.StreamWriter] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    port: int = 0

    async def start(self) -> FaultyProxy:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._open):
            writer.transport.abort()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        if self._server is not None:
            await self._server.wait_closed()

    def kill_all(self) -> None:
        for writer in list(self._pipes):
            writer.transport.abort()
        self._pipes.clear()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        self._open.update((writer, up_writer))
        try:
            while True:
                try:
                    head, body = await _read_message(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                if b"upgrade: websocket" in head.lower():
                    self.upgrades += 1
                    up_writer.write(head + body)
                    await self._pipe(reader, writer, up_reader, up_writer)
                    return
                self.requests += 1
                fault = self.faults.popleft() if self.faults else "ok"
                if fault != "ok":
                    self.injected.append(fault)
                if fault == "drop_request":
                    return
                if fault == "cut_request":
                    up_writer.write(head + body[: len(body) // 2])
                    await up_writer.drain()
                    return
                up_writer.write(head + body)
                await up_writer.drain()
                response_head, response_body = await _read_message(up_reader)
                if fault == "drop_response":
                    return
                writer.write(response_head + response_body)
                await writer.drain()
        finally:
            for w in (writer, up_writer):
                w.transport.abort()
            self._open.difference_update((writer, up_writer))
            self._tasks.discard(task)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        self._pipes.update((writer, up_writer))

        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
        self._pipes.difference_update((writer, up_writer))
