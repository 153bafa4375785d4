"""A lean HTTP/1.1 keep-alive load generator: pre-built requests over raw asyncio streams.

The benchmark shares two cores with the server and PostgreSQL; httpx spends about 0.4 of a
core at 10k events/s just building and parsing messages, which the server would otherwise
use. Like `wrk`, this client does the least a correct HTTP/1.1 client must: it writes
complete requests and reads each response by its Content-Length (uvicorn always sends one
for these responses; chunked replies are refused rather than misread).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes


class LoadConnection:
    """One keep-alive connection; requests on it are sequential."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, url: str) -> LoadConnection:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
        return cls(reader, writer)

    async def send(self, request: bytes) -> Response:
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"transfer-encoding":
                raise RuntimeError("chunked responses are not supported by the load client")
        if length is None:
            raise RuntimeError("response without Content-Length")
        return Response(status, await self._reader.readexactly(length))

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()


def post_request(url: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """The full bytes of one POST, built before the clock starts."""
    parts = urlsplit(url)
    host = parts.netloc
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
