"""The arq job queue as the server and workers see it: job names and deterministic ids."""

from __future__ import annotations

import contextlib
from typing import Final

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from redis.exceptions import RedisError

from server.pubsub.channels import Channels

CATCH_UP: Final = "catch_up"
RUN_REPLAY: Final = "run_replay"
RUN_SIMULATION: Final = "run_simulation"
CATCH_UP_CASES: Final = "catch_up_cases"
HEALTH_CHECK_SUFFIX: Final = ":health-check"


class JobQueue:
    def __init__(self, redis: ArqRedis, channels: Channels) -> None:
        self._redis = redis
        self._channels = channels

    @property
    def name(self) -> str:
        return self._channels.queue

    async def catch_up(self, tenant_id: str, traceparent: str | None = None) -> bool:
        """One pending catch-up per tenant: the job id dedupes a burst of appends (the
        first one's trace context rides along; the others' traces end at their notice).
        False when that job is running already: it may have made its last check before
        this append committed, so the caller should try again shortly."""
        job = await self._redis.enqueue_job(
            CATCH_UP,
            tenant_id,
            traceparent,
            _job_id=f"{CATCH_UP}:{tenant_id}",
            _queue_name=self.name,
        )
        # The precedent cases in a job of their own: a catch-up job that went on to fold
        # cases would hold its id longer, and appends arriving meanwhile would wait for
        # the sweep instead of getting a job (arq keeps one job per id).
        cases = await self._redis.enqueue_job(
            CATCH_UP_CASES,
            tenant_id,
            _job_id=f"{CATCH_UP_CASES}:{tenant_id}",
            _queue_name=self.name,
        )
        if job is not None or cases is not None:
            await self._ring(self.name)
        # Refused because one is only queued: it will see this append when it runs.
        running = [
            in_progress_key_prefix + f"{name}:{tenant_id}"
            for name, queued in ((CATCH_UP, job), (CATCH_UP_CASES, cases))
            if queued is None
        ]
        return not running or not await self._redis.exists(*running)

    async def replay(self, replay_id: str, attempt: int = 0) -> None:
        """One job per (run, attempt): a resumed run must not wait for the dead job's key."""
        await self._redis.enqueue_job(
            RUN_REPLAY,
            replay_id,
            _job_id=f"{RUN_REPLAY}:{replay_id}:{attempt}",
            _queue_name=self._channels.replay_queue,
        )
        await self._ring(self._channels.replay_queue)

    async def simulation(self, simulation_id: str) -> None:
        """Policy simulations share the replay queue: both are long and CPU-bound."""
        await self._redis.enqueue_job(
            RUN_SIMULATION,
            simulation_id,
            _job_id=f"{RUN_SIMULATION}:{simulation_id}",
            _queue_name=self._channels.replay_queue,
        )
        await self._ring(self._channels.replay_queue)

    async def _ring(self, queue: str) -> None:
        """Wake the workers' loops for `queue` (jobs/doorbell.py); a ring nobody hears
        costs a poll interval, never a job."""
        with contextlib.suppress(RedisError, OSError):
            await self._redis.publish(self._channels.doorbell(queue), b"")

    async def worker_heartbeats(self) -> bool:
        """True while at least one worker refreshes its arq health-check key."""
        return bool(await self._redis.exists(self.name + HEALTH_CHECK_SUFFIX))
