"""One Redis listener per process, fanning notices out to every local subscriber.

Notices only say "tenant T reached position P on topic X"; subscribers read the data itself
from PostgreSQL. So the hub may lose notices (Redis restarts, a slow listener) without
losing events: when it reconnects it wakes every watcher, which then re-reads, and each
watcher also wakes on its own timer. One pattern subscription serves every tenant and topic
of the namespace, whatever the number of subscriptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any, Final

from redis.asyncio import Redis

from server.pubsub.background import Background
from server.pubsub.channels import Channels

_log = logging.getLogger(__name__)

RECONNECT_MIN: Final = 0.2
RECONNECT_MAX: Final = 5.0


class Watch:
    """A subscriber's doorbell for one (tenant, topic): the highest position noticed."""

    __slots__ = ("_event", "position")

    def __init__(self) -> None:
        self.position = 0
        self._event = asyncio.Event()

    def ring(self, position: int) -> None:
        if position > self.position:
            self.position = position
        self._event.set()

    async def wait(self, within: float) -> bool:
        """True when rung (since the last wait), False on timeout."""
        try:
            async with asyncio.timeout(within):
                await self._event.wait()
        except TimeoutError:
            return False
        finally:
            self._event.clear()
        return True


class NoticeHub:
    """Implements the Notices port for a server process."""

    def __init__(self, redis: Redis, channels: Channels) -> None:
        self._redis = redis
        self._channels = channels
        self._watches: dict[tuple[str, str], set[Watch]] = {}
        self._listener = Background(self._listen_forever, "dg-notice-hub")
        self.connected = asyncio.Event()
        self.notices = 0
        # The trace context of the latest notice per (tenant, topic), numbered by arrival.
        self._causes: dict[tuple[str, str], tuple[int, str]] = {}

    @contextlib.contextmanager
    def watch(self, tenant_id: str, *topics: str) -> Iterator[Watch]:
        keys = [(tenant_id, topic) for topic in topics]
        watch = Watch()
        for key in keys:
            self._watches.setdefault(key, set()).add(watch)
        try:
            yield watch
        finally:
            for key in keys:
                watchers = self._watches.get(key)
                if watchers is not None:
                    watchers.discard(watch)
                    if not watchers:
                        del self._watches[key]

    def cause(self, tenant_id: str, topics: tuple[str, ...]) -> str | None:
        """The traceparent of the latest notice on these topics (what woke a reader)."""
        seen = [c for t in topics if (c := self._causes.get((tenant_id, t))) is not None]
        return max(seen)[1] if seen else None

    @property
    def watch_count(self) -> int:
        return sum(len(watchers) for watchers in self._watches.values())

    def start(self) -> None:
        self._listener.start()

    async def stop(self) -> None:
        await self._listener.stop()

    def _deliver(self, channel: str, data: Any) -> None:
        parsed = self._channels.parse(channel)
        if parsed is None:
            return
        watchers = self._watches.get(parsed)
        if not watchers:
            return
        traceparent = None
        try:
            notice = json.loads(data)
            position = int(notice["position"])
            traceparent = notice.get("traceparent")
        except (ValueError, KeyError, TypeError, AttributeError):
            position = 0  # still worth a look: the reader finds out what changed
        self.notices += 1
        if isinstance(traceparent, str):
            self._causes[parsed] = (self.notices, traceparent)
        else:  # a notice from outside any trace (a sweep): pushes it causes have no parent
            self._causes.pop(parsed, None)
        for watch in watchers:
            watch.ring(position)

    def _wake_everyone(self) -> None:
        """After an outage notices may be missing: every watcher re-reads."""
        for watchers in self._watches.values():
            for watch in watchers:
                watch.ring(0)

    async def _listen_forever(self) -> None:
        pause = RECONNECT_MIN
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(self._channels.pattern)
                self.connected.set()
                pause = RECONNECT_MIN
                self._wake_everyone()
                while True:
                    # A blocking read; timeouts only let a dead connection surface.
                    message = await pubsub.get_message(timeout=5.0)
                    if message is not None and message.get("type") == "pmessage":
                        channel = message["channel"]
                        if isinstance(channel, bytes):
                            channel = channel.decode()
                        self._deliver(channel, message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down or restarting: retry with backoff
                if self.connected.is_set():
                    _log.warning("notice listener lost Redis (%s); reconnecting", exc)
                self.connected.clear()
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(pause)
            pause = min(pause * 2, RECONNECT_MAX)
