"""Subscriptions over graphql-transport-ws (httpx + httpx-ws), several per connection.

    async with LiveConnection(url, token, tenant) as live:
        async for event in live.subscribe("subscription { events(afterLogSeq: 0) { logSeq } }"):
            ...

Resuming after a disconnect is the caller's loop: keep the last `logSeq` (or `traceSeq`)
received and subscribe again from it; the server delivers everything after it exactly once.
Open and close a connection in the same task (httpx-ws runs a task group inside).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

import httpx
from httpx_ws import WebSocketDisconnect, aconnect_ws

PROTOCOL: Final = "graphql-transport-ws"
MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Closed:
    code: int
    reason: str


class SubscriptionError(Exception):
    """The server refused or ended a subscription, or closed the connection."""

    def __init__(
        self, message: str, *, code: str | None = None, close_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.close_code = close_code


def _ws_url(url: str) -> str:
    url = url.rstrip("/")
    if not url.endswith("/graphql"):
        url += "/graphql"
    return "ws" + url[4:] if url.startswith("http") else url


class LiveConnection:
    def __init__(
        self,
        url: str,
        token: str,
        tenant: str | None = None,
        *,
        http: httpx.AsyncClient | None = None,
        ack_timeout: float = 10.0,
    ) -> None:
        self._url = _ws_url(url)
        self._token = token
        self._tenant = tenant
        self._http = http
        self._ack_timeout = ack_timeout
        self._ids = itertools.count(1)
        self._queues: dict[str, asyncio.Queue[Any]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._cm: Any = None
        self._ws: Any = None
        self.closed: Closed | None = None

    async def __aenter__(self) -> LiveConnection:
        self._cm = aconnect_ws(
            self._url,
            self._http,
            subprotocols=[PROTOCOL],
            max_message_size_bytes=MAX_MESSAGE_BYTES,
        )
        self._ws = await self._cm.__aenter__()
        payload: dict[str, Any] = {"authorization": f"Bearer {self._token}"}
        if self._tenant:
            payload["tenant"] = self._tenant
        try:
            await self._ws.send_json({"type": "connection_init", "payload": payload})
            ack = await self._ws.receive_json(timeout=self._ack_timeout)
        except WebSocketDisconnect as closed:
            await self._exit()
            raise SubscriptionError(
                f"connection refused ({closed.code}): {closed.reason}", close_code=closed.code
            ) from None
        if ack.get("type") != "connection_ack":
            await self._exit()
            raise SubscriptionError(f"unexpected reply to connection_init: {ack}")
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        await self._exit()

    async def _exit(self) -> None:
        if self._cm is not None:
            with contextlib.suppress(Exception):
                await self._cm.__aexit__(None, None, None)
            self._cm = None

    async def _read(self) -> None:
        try:
            while True:
                message = await self._ws.receive_json()
                kind = message.get("type")
                if kind == "ping":
                    await self._ws.send_json({"type": "pong"})
                elif (queue := self._queues.get(message.get("id", ""))) is not None:
                    queue.put_nowait(message)
        except WebSocketDisconnect as closed:
            self.closed = Closed(closed.code, closed.reason)
        except Exception as exc:  # network error
            self.closed = Closed(1006, str(exc))
        for queue in self._queues.values():
            queue.put_nowait(self.closed)

    async def subscribe(
        self, query: str, variables: Mapping[str, Any] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Each `next` payload's data; errors raise SubscriptionError; ends on `complete`."""
        if self.closed is not None:
            raise SubscriptionError("connection closed", close_code=self.closed.code)
        operation = str(next(self._ids))
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._queues[operation] = queue
        payload = {"query": query, "variables": dict(variables or {})}
        await self._ws.send_json({"id": operation, "type": "subscribe", "payload": payload})
        completed = False
        try:
            while True:
                message = await queue.get()
                if isinstance(message, Closed):
                    completed = True
                    raise SubscriptionError(
                        f"connection closed ({message.code}): {message.reason}",
                        close_code=message.code,
                    )
                kind = message.get("type")
                if kind == "complete":
                    completed = True
                    return
                errors = message.get("payload") if kind == "error" else None
                if kind == "next":
                    errors = message["payload"].get("errors")
                if errors:
                    completed = kind == "error"
                    first = errors[0]
                    raise SubscriptionError(
                        first.get("message", "subscription error"),
                        code=(first.get("extensions") or {}).get("code"),
                    )
                yield message["payload"]["data"]
        finally:
            self._queues.pop(operation, None)
            if not completed and self.closed is None:
                with contextlib.suppress(Exception):
                    await self._ws.send_json({"id": operation, "type": "complete"})
