"""Post-commit announcements, coalesced per tenant and sent off the request path.

Appends only record "tenant T is now at position P" in memory and return; a background
task publishes the latest position per tenant and enqueues the tenant's catch-up job.
If Redis is down the notice is dropped after one attempt: subscribers re-read PostgreSQL
on their own timer and workers sweep every tenant, so a lost notice delays, never loses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from server.pubsub.channels import HEALTH, LOG, REPLAY, WORKFLOW, Channels

_log = logging.getLogger(__name__)

Enqueue = Callable[[str], Awaitable[None]]


class RedisAnnouncer:
    """Implements the Publisher port for the server and the workers."""

    def __init__(
        self,
        redis: Redis,
        channels: Channels,
        enqueue_catch_up: Enqueue | None = None,
        retry_after: float = 1.0,
    ) -> None:
        self._redis = redis
        self._channels = channels
        self._enqueue = enqueue_catch_up
        self._retry_after = retry_after
        self._pending: dict[tuple[str, str], int] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._down_until = 0.0
        self._idle = asyncio.Event()
        self._idle.set()

    async def log_advanced(self, tenant_id: str, last_log_seq: int) -> None:
        self._note(tenant_id, LOG, last_log_seq)

    async def health_changed(self, tenant_id: str, position: int) -> None:
        self._note(tenant_id, HEALTH, position)

    async def replay_changed(self, tenant_id: str, position: int) -> None:
        self._note(tenant_id, REPLAY, position)

    async def workflow_changed(self, tenant_id: str, position: int) -> None:
        self._note(tenant_id, WORKFLOW, position)

    def _note(self, tenant_id: str, topic: str, position: int) -> None:
        key = (tenant_id, topic)
        self._pending[key] = max(position, self._pending.get(key, 0))
        self._idle.clear()
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="dg-announcer")

    async def stop(self) -> None:
        if self._task is not None:
            await self.flush()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def flush(self, within: float = 2.0) -> None:
        """Wait (bounded) until everything noted so far has been sent or dropped."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._idle.wait()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, {}
            if time.monotonic() >= self._down_until:
                try:
                    await self._send(batch)
                except Exception as exc:  # Redis down: drop; sweeps and re-reads recover
                    self._down_until = time.monotonic() + self._retry_after
                    _log.warning("Redis unavailable, dropped %d notice(s): %s", len(batch), exc)
            if not self._pending:
                self._idle.set()

    async def _send(self, batch: dict[tuple[str, str], int]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for (tenant_id, topic), position in batch.items():
                message = json.dumps({"tenant": tenant_id, "topic": topic, "position": position})
                pipe.publish(self._channels.topic(tenant_id, topic), message)
            await pipe.execute()
        if self._enqueue is not None:
            for tenant_id, topic in batch:
                if topic == LOG:
                    await self._enqueue(tenant_id)
