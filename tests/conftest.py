"""Session services: real PostgreSQL and Redis (embedded unless DG_DATABASE_URL /
DG_REDIS_URL), a fresh database per session, and a fresh tenant per test."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import asyncpg
import httpx
import pytest
from httpx_ws.transport import ASGIWebSocketTransport
from litestar import Litestar

from server import embedded
from server.app import create_app
from server.settings import Settings
from server.startup import create_key
from server.store.database import admin_sql, create_pool, with_database
from server.store.migrate import migrate
from tests.support import ROOT, GraphQLClient, new_tenant


@pytest.fixture(scope="session")
def settings() -> Iterator[Settings]:
    base = replace(Settings.from_env(os.environ), data_dir=ROOT / ".dg-test")
    resolved = embedded.resolve(base)
    name = f"dg_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    server_dsn = resolved.require_database_url
    asyncio.run(admin_sql(server_dsn, f"CREATE DATABASE {name}"))
    database_url = with_database(server_dsn, name)
    asyncio.run(migrate(database_url))
    yield replace(
        resolved,
        database_url=database_url,
        namespace=f"dgtest{os.getpid()}{uuid.uuid4().hex[:4]}",
        # Far above how long any test waits for a job to start: a queued job must be
        # picked up by its doorbell (jobs/doorbell.py), not by a poll.
        worker_poll_delay=30.0,
        sweep_interval=0.5,
        # The production default. A worker started for a test first sweeps a database
        # that a hundred earlier tests left behind (stale case projections, poison
        # events): ~1.1 s, with which a test's first read raced a 1 s wait, now and then.
        read_wait_seconds=5.0,
    )
    asyncio.run(admin_sql(server_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    embedded.stop(base, redis=base.redis_url is None, postgres_=base.database_url is None)


@pytest.fixture(scope="session")
def admin_token(settings: Settings) -> str:
    """An admin key valid for every tenant; tests name their tenant with X-Tenant-ID."""
    return asyncio.run(create_key(settings, "test admin", ["*"], ["admin"]))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def tenant() -> str:
    return new_tenant()


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings.require_database_url, size=10, application_name="tests")
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Litestar]:
    application = create_app(settings)
    async with application.lifespan():
        yield application


@pytest.fixture
async def http(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    transport = ASGIWebSocketTransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@pytest.fixture
def gql(http: httpx.AsyncClient, admin_token: str, tenant: str) -> GraphQLClient:
    return GraphQLClient(http, admin_token, tenant)


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[asyncio.Task[None]]:
    """A real worker (the production `serve` loop: arq jobs plus the sweep) in this loop."""
    from jobs.worker import serve

    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
