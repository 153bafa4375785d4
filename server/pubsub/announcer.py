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
from typing import Final

from redis.asyncio import Redis

from server.observability.tracing import current_traceparent
from server.pubsub.channels import HEALTH, LOG, REPLAY, WORKFLOW, Channels

_log = logging.getLogger(__name__)

# (tenant, traceparent) -> whether a new job was queued (False: one with its id exists)
Enqueue = Callable[[str, str | None], Awaitable[bool]]
REQUEUE_PAUSE: Final = 0.05
REQUEUE_FOR: Final = 5.0


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
        # The trace context of the latest notice per key: the notice, and the catch-up it
        # enqueues, carry it to the worker and the subscribers (observability/tracing.py).
        self._causes: dict[tuple[str, str], str] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._down_until = 0.0
        self._idle = asyncio.Event()
        self._idle.set()
        # Tenants whose catch-up job already existed when noticed: if it was running, it may
        # have made its last check before this append committed. Try again until a new
        # job is queued (it then runs after the old one) or REQUEUE_FOR passes (the sweep).
        self._requeue: dict[str, tuple[float, str | None]] = {}
        self._requeuer: asyncio.Task[None] | None = None

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
        cause = current_traceparent()
        if cause:
            self._causes[key] = cause
        self._idle.clear()
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="dg-announcer")

    async def stop(self) -> None:
        if self._requeuer is not None:
            self._requeuer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._requeuer
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
            causes, self._causes = self._causes, {}
            if time.monotonic() >= self._down_until:
                try:
                    await self._send(batch, causes)
                except Exception as exc:  # Redis down: drop; sweeps and re-reads recover
                    self._down_until = time.monotonic() + self._retry_after
                    _log.warning("Redis unavailable, dropped %d notice(s): %s", len(batch), exc)
            if not self._pending:
                self._idle.set()

    async def _send(
        self, batch: dict[tuple[str, str], int], causes: dict[tuple[str, str], str]
    ) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for (tenant_id, topic), position in batch.items():
                notice = {"tenant": tenant_id, "topic": topic, "position": position}
                if (tenant_id, topic) in causes:
                    notice["traceparent"] = causes[(tenant_id, topic)]
                pipe.publish(self._channels.topic(tenant_id, topic), json.dumps(notice))
            await pipe.execute()
        if self._enqueue is not None:
            for tenant_id, topic in batch:
                if topic == LOG:
                    cause = causes.get((tenant_id, topic))
                    if not await self._enqueue(tenant_id, cause):
                        self._requeue[tenant_id] = (time.monotonic() + REQUEUE_FOR, cause)
            if self._requeue and (self._requeuer is None or self._requeuer.done()):
                self._requeuer = asyncio.create_task(self._requeue_loop(), name="dg-requeue")

    async def _requeue_loop(self) -> None:
        assert self._enqueue is not None
        while self._requeue:
            await asyncio.sleep(REQUEUE_PAUSE)
            for tenant_id, (until, cause) in list(self._requeue.items()):
                try:
                    queued = await self._enqueue(tenant_id, cause)
                except Exception:  # Redis down: the sweep catches the tenant up
                    queued = True
                if queued or time.monotonic() > until:
                    self._requeue.pop(tenant_id, None)
