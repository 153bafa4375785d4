"""Wakes a worker's job loops when a job is queued, instead of having them poll Redis.

arq finds new jobs by polling its queue: every poll is two Redis round trips per loop, so
polling often enough for a catch-up to start within milliseconds of an append kept an idle
worker process busy ~4% of a core (measured, docs/benchmarks.md), and a slot freed by a
finished replay still waited for the next poll. Here whoever queues a job also publishes
on the queue's doorbell channel (server/pubsub/queue.py), a loop whose job ends rings its
own bell, and a loop waits for its bell between polls, polling on its own only every
DG_WORKER_POLL_DELAY. A lost ring (Redis restarting, the listener reconnecting) costs at
most that delay: the queue in Redis stays the truth, the bell only says when to look.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

from redis.asyncio import Redis

from server.pubsub.background import Background

_log = logging.getLogger("decisiongraph.worker")

RECONNECT_MIN: Final = 0.2
RECONNECT_MAX: Final = 5.0


class Doorbell:
    """One listener per worker process for the doorbells of the queues it serves."""

    def __init__(self, redis: Redis, channels: dict[str, str]) -> None:
        """`channels`: queue name -> its doorbell channel."""
        self._redis = redis
        self._queues = {channel: queue for queue, channel in channels.items()}
        self._bells = {queue: asyncio.Event() for queue in channels}
        self._listener = Background(self._listen_forever, "dg-doorbell")

    def ring(self, queue: str) -> None:
        self._bells[queue].set()

    async def wait(self, queue: str, within: float) -> None:
        """Until `queue`'s bell rings (since the last wait) or `within` seconds pass."""
        bell = self._bells[queue]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await bell.wait()
        bell.clear()

    def start(self) -> None:
        self._listener.start()

    async def stop(self) -> None:
        await self._listener.stop()

    async def _listen_forever(self) -> None:
        pause = RECONNECT_MIN
        connected = False
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*self._queues)
                connected, pause = True, RECONNECT_MIN
                for queue in self._bells:  # rings may have been lost meanwhile: look now
                    self.ring(queue)
                while True:
                    # A blocking read; the timeout only lets a dead connection surface.
                    message = await pubsub.get_message(timeout=5.0)
                    if message is not None and message.get("type") == "message":
                        channel = message["channel"]
                        rung = self._queues.get(
                            channel.decode() if isinstance(channel, bytes) else channel
                        )
                        if rung is not None:
                            self.ring(rung)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down or restarting: the loops poll meanwhile
                if connected:
                    _log.warning("doorbell lost Redis (%s); reconnecting", exc)
                connected = False
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(pause)
            pause = min(pause * 2, RECONNECT_MAX)
