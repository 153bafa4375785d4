"""The arq job queue as the server and workers see it: job names and deterministic ids."""

from __future__ import annotations

from typing import Final

from arq.connections import ArqRedis

from server.pubsub.channels import Channels

CATCH_UP: Final = "catch_up"
RUN_REPLAY: Final = "run_replay"
RUN_SIMULATION: Final = "run_simulation"
HEALTH_CHECK_SUFFIX: Final = ":health-check"


class JobQueue:
    def __init__(self, redis: ArqRedis, channels: Channels) -> None:
        self._redis = redis
        self._channels = channels

    @property
    def name(self) -> str:
        return self._channels.queue

    async def catch_up(self, tenant_id: str) -> None:
        """One pending catch-up per tenant: the job id dedupes a burst of appends."""
        await self._redis.enqueue_job(
            CATCH_UP, tenant_id, _job_id=f"{CATCH_UP}:{tenant_id}", _queue_name=self.name
        )

    async def replay(self, replay_id: str, attempt: int = 0) -> None:
        """One job per (run, attempt): a resumed run must not wait for the dead job's key."""
        await self._redis.enqueue_job(
            RUN_REPLAY,
            replay_id,
            _job_id=f"{RUN_REPLAY}:{replay_id}:{attempt}",
            _queue_name=self._channels.replay_queue,
        )

    async def simulation(self, simulation_id: str) -> None:
        """Policy simulations share the replay queue: both are long and CPU-bound."""
        await self._redis.enqueue_job(
            RUN_SIMULATION,
            simulation_id,
            _job_id=f"{RUN_SIMULATION}:{simulation_id}",
            _queue_name=self._channels.replay_queue,
        )

    async def worker_heartbeats(self) -> bool:
        """True while at least one worker refreshes its arq health-check key."""
        return bool(await self._redis.exists(self.name + HEALTH_CHECK_SUFFIX))
