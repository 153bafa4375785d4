"""What a worker process holds: its pool, adapters and announcer, built once at startup."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from arq.connections import ArqRedis

from server.pubsub.announcer import RedisAnnouncer
from server.pubsub.channels import Channels
from server.pubsub.queue import JobQueue
from server.service.clock import SystemClock
from server.service.workflows import Deps as WorkflowDeps
from server.settings import Settings
from server.store.audit import PostgresAudit
from server.store.database import create_pool
from server.store.event_log import PostgresEventLog
from server.store.policy_simulations import PostgresSimulations
from server.store.precedent_cases import PostgresPrecedentCases
from server.store.projections import PostgresProjections
from server.store.replays import CONNECTIONS_PER_RUN, REPLAYS_AT_ONCE, PostgresReplays


@dataclass
class WorkerRuntime:
    settings: Settings
    pool: asyncpg.Pool
    log: PostgresEventLog
    projections: PostgresProjections
    cases: PostgresPrecedentCases
    simulations: PostgresSimulations
    replays: PostgresReplays
    audit: PostgresAudit
    jobs: JobQueue
    announcer: RedisAnnouncer
    redis: ArqRedis

    @property
    def workflow_deps(self) -> WorkflowDeps:
        return WorkflowDeps(
            log=self.log,
            projections=self.projections,
            workflows=self.projections.workflows,
            publisher=self.announcer,
            clock=SystemClock(),
            limits=self.settings.limits,
        )

    @classmethod
    async def open(cls, settings: Settings, redis: ArqRedis) -> WorkerRuntime:
        # A bulk run holds three connections while it loads (two readers and the writer)
        # and takes two more, briefly, to report progress and to create a shadow: a pool
        # smaller than that for every run a process takes at once could have them all
        # waiting for each other's connections.
        floor = REPLAYS_AT_ONCE * CONNECTIONS_PER_RUN + 2
        pool = await create_pool(
            settings.require_database_url,
            size=max(settings.db_pool_size, floor),
            application_name="decisiongraph-worker",
        )
        channels = Channels(settings.namespace)
        # The worker announces progress but never enqueues catch-ups for itself.
        announcer = RedisAnnouncer(redis, channels)
        announcer.start()
        return cls(
            settings=settings,
            pool=pool,
            log=PostgresEventLog(pool),
            projections=PostgresProjections(pool, settings.projection_batch_size),
            cases=PostgresPrecedentCases(pool),
            simulations=PostgresSimulations(pool),
            replays=PostgresReplays(pool),
            audit=PostgresAudit(pool),
            jobs=JobQueue(redis, channels),
            announcer=announcer,
            redis=redis,
        )

    async def close(self) -> None:
        await self.announcer.stop()
        await self.pool.close()
