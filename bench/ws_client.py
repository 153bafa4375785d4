"""A lean graphql-transport-ws subscriber: raw asyncio protocol, minimal WebSocket framing.

With 1000 subscribers the `websockets` client (a task, frame objects and a JSON parse per
message) used as much CPU as the server it measured, on the same two cores, so the
latencies partly measured the client. Like bench/load_client.py this client does the
least a correct client must (RFC 6455): masked frames out; unmasked frames in, parsed
where they arrive; control frames answered (ping -> pong); graphql-transport-ws pings
answered. A `next` message's arrival time is taken when its bytes arrive, and its
logSeq is read without parsing the rest of the message.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import struct
import time
from typing import Any, Final
from urllib.parse import urlsplit

_LOG_SEQ: Final = re.compile(rb'"logSeq":(\d+)')
_TEXT, _CLOSE, _PING, _PONG = 0x1, 0x8, 0x9, 0xA


def _frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


class Subscriber(asyncio.Protocol):
    """One websocket with one `events` subscription; arrivals map logSeq -> time."""

    def __init__(self, arrivals: dict[int, float]) -> None:
        self.arrivals = arrivals
        self.acked = asyncio.get_running_loop().create_future()
        self._upgraded = asyncio.get_running_loop().create_future()
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._handshake = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        for future in (self._upgraded, self.acked):
            if not future.done():
                future.set_exception(ConnectionError("connection lost"))

    def send_json(self, message: dict[str, Any]) -> None:
        assert self._transport is not None
        self._transport.write(_frame(_TEXT, json.dumps(message).encode()))

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(_frame(_CLOSE, struct.pack("!H", 1000)))
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self._buffer += data
        if self._handshake:
            head, found, rest = self._buffer.partition(b"\r\n\r\n")
            if not found:
                return
            if b" 101 " not in head.split(b"\r\n", 1)[0]:
                self._upgraded.set_exception(ConnectionError(head.decode(errors="replace")))
                return
            self._handshake, self._buffer = False, rest
            self._upgraded.set_result(None)
        self._frames(now)

    def _frames(self, now: float) -> None:
        buffer = self._buffer
        while len(buffer) >= 2:
            opcode, size = buffer[0] & 0x0F, buffer[1] & 0x7F
            start = 2
            if size == 126:
                if len(buffer) < 4:
                    break
                (size,) = struct.unpack_from("!H", buffer, 2)
                start = 4
            elif size == 127:
                if len(buffer) < 10:
                    break
                (size,) = struct.unpack_from("!Q", buffer, 2)
                start = 10
            if len(buffer) < start + size:
                break
            payload, buffer = buffer[start : start + size], buffer[start + size :]
            self._message(opcode, payload, now)
        self._buffer = buffer

    def _message(self, opcode: int, payload: bytes, now: float) -> None:
        assert self._transport is not None
        if opcode == _PING:
            self._transport.write(_frame(_PONG, payload))
        elif opcode == _TEXT:
            if payload.startswith(b'{"type":"next"') or b'"next"' in payload[:40]:
                match = _LOG_SEQ.search(payload)
                if match:
                    self.arrivals[int(match.group(1))] = now
            elif b'"connection_ack"' in payload:
                self.acked.set_result(None)
            elif b'"ping"' in payload:
                self.send_json({"type": "pong"})

    async def upgrade(self, host: str, path: str) -> None:
        assert self._transport is not None
        key = base64.b64encode(os.urandom(16)).decode()
        self._transport.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
            ).encode()
        )
        await self._upgraded


async def subscribe(
    url: str, token: str, tenant: str, query: str, variables: dict[str, Any],
    arrivals: dict[int, float],
) -> Subscriber:  # fmt: skip
    """Connect, initialise with the key and tenant, and subscribe as id "1"."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    loop = asyncio.get_running_loop()
    _, subscriber = await loop.create_connection(lambda: Subscriber(arrivals), host, port)
    await subscriber.upgrade(f"{host}:{port}", parts.path or "/")
    subscriber.send_json(
        {"type": "connection_init", "payload": {"authorization": f"Bearer {token}",
                                                "tenant": tenant}}
    )  # fmt: skip
    await asyncio.wait_for(subscriber.acked, 30)
    payload = {"query": query, "variables": variables}
    subscriber.send_json({"id": "1", "type": "subscribe", "payload": payload})
    return subscriber
