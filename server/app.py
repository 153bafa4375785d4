"""The composition root: `create_app(settings)` wires adapters into services once."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, get
from litestar.datastructures import State
from litestar.response import Response
from redis.asyncio import Redis

from server.auth.authenticator import Authenticator
from server.core.replay import ALL_PROJECTIONS
from server.graphql.context import Services
from server.graphql.controller import AuthMiddleware, GraphQLController
from server.graphql.ide import assets_router
from server.observability import metrics, tracing
from server.observability.http import RequestIdMiddleware
from server.pubsub.announcer import RedisAnnouncer
from server.pubsub.channels import Channels
from server.pubsub.connection import redis_client
from server.pubsub.hub import NoticeHub
from server.pubsub.queue import JobQueue
from server.pubsub.rate_limiter import RedisRateLimiter
from server.service.clock import SystemClock
from server.service.live import LiveFeeds
from server.service.scored_precedent import ScoredPrecedents
from server.settings import Settings
from server.store.api_keys import PostgresKeyStore
from server.store.audit import PostgresAudit
from server.store.database import create_pool
from server.store.event_log import PostgresEventLog
from server.store.policy_simulations import PostgresSimulations
from server.store.precedent_cases import PostgresPrecedentCases
from server.store.projections import PostgresProjections
from server.store.replays import PostgresReplays

_log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024 * 1024


@get("/healthz", sync_to_thread=False, include_in_schema=False)
def healthz() -> dict[str, str]:
    """Liveness only: reveals nothing about the deployment."""
    return {"status": "ok"}


@get("/metrics", include_in_schema=False)
async def metrics_endpoint(state: State, request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus exposition (server/observability/metrics.py). With DG_METRICS_TOKEN set
    a scraper must send it as a bearer token: the series name tenants."""
    services: Services = state.services
    wanted = services.settings.metrics_token
    if wanted and not hmac.compare_digest(
        request.headers.get("authorization", ""), f"Bearer {wanted}"
    ):
        return Response(b"unauthorized\n", status_code=401, media_type="text/plain")
    async with state.pool.acquire() as conn:
        families = await metrics.database_families(conn, ALL_PROJECTIONS)
    return Response(metrics.exposition(families), media_type=metrics.CONTENT_TYPE)


@get("/readyz", include_in_schema=False)
async def readyz(state: State) -> Response[dict[str, Any]]:
    """Readiness: PostgreSQL, Redis and at least one worker heartbeat."""
    services: Services = state.services
    checks = {
        "database": await _check_database(state),
        "redis": await _check_redis(state),
        "worker": await _check_worker(state, services),
    }
    ready = all(value == "ok" for value in checks.values())
    return Response(
        {"status": "ready" if ready else "unavailable", **checks}, status_code=200 if ready else 503
    )


async def _check_database(state: State) -> str:
    try:
        async with state.pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


async def _check_redis(state: State) -> str:
    try:
        await state.redis.ping()
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


async def _check_worker(state: State, services: Services) -> str:
    try:
        beats = await state.queue.worker_heartbeats()
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok" if beats else "no worker heartbeat"


def create_app(settings: Settings) -> Litestar:
    channels = Channels(settings.namespace)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        pool = await create_pool(
            settings.require_database_url,
            size=settings.db_pool_size,
            application_name="decisiongraph-server",
        )
        redis = redis_client(settings.require_redis_url)
        queue = JobQueue(redis, channels)
        announcer = RedisAnnouncer(redis, channels, enqueue_catch_up=queue.catch_up)
        announcer.start()
        keys = PostgresKeyStore(pool)
        # The listener gets its own connection: a blocking read must not share a socket
        # (or the short timeouts) of the command client.
        listener = Redis.from_url(
            settings.require_redis_url, socket_connect_timeout=1.0, health_check_interval=10
        )
        hub = NoticeHub(listener, channels)
        hub.start()
        log = PostgresEventLog(pool)
        projections = PostgresProjections(pool, settings.projection_batch_size)
        cases = PostgresPrecedentCases(pool)
        feeds = LiveFeeds(log, hub, slow_consumer_seconds=settings.slow_consumer_seconds)
        app.state.pool = pool
        app.state.redis = redis
        app.state.queue = queue
        app.state.services = Services(
            settings=settings,
            log=log,
            keys=keys,
            publisher=announcer,
            clock=SystemClock(),
            authenticator=Authenticator(keys),
            projections=projections,
            replays=PostgresReplays(pool),
            audit=PostgresAudit(pool),
            jobs=queue,
            live=feeds,
            hub=hub,
            workflows=projections.workflows,
            rate_limiter=RedisRateLimiter(redis, settings.namespace, settings.rate_limits),
            precedent=ScoredPrecedents(cases, log),
            cases=cases,
            simulations=PostgresSimulations(pool),
        )
        try:
            yield
        finally:
            await feeds.close()
            await hub.stop()
            await listener.aclose()
            await announcer.stop()
            await redis.aclose()
            await pool.close()

    middleware: list[Any] = [RequestIdMiddleware(), AuthMiddleware()]
    if tracing.setup("server"):  # OTEL_* asked for traces: Litestar's own server spans too
        from litestar.plugins.opentelemetry import OpenTelemetryConfig

        middleware.insert(0, OpenTelemetryConfig().middleware)
    return Litestar(
        route_handlers=[GraphQLController, assets_router(), healthz, readyz, metrics_endpoint],
        lifespan=[lifespan],
        middleware=middleware,
        request_max_body_size=MAX_REQUEST_BYTES,
        openapi_config=None,
        # The process's logging is ours (server/observability/logs.py): Litestar's default
        # config would add a second, differently formatted handler at startup.
        logging_config=None,
        debug=False,
    )
