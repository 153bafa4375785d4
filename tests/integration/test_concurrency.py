"""Concurrent appends on real parallel connections, through two app instances (replicas)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import httpx
import pytest
from httpx_ws.transport import ASGIWebSocketTransport

from server.app import create_app
from server.settings import Settings
from tests.support import GraphQLClient, input_observed, new_tenant, started

pytestmark = pytest.mark.anyio


@pytest.fixture
async def replicas(settings: Settings, admin_token: str) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Two independent server instances, each with its own connection pool."""
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(2):
            app = create_app(settings)
            await stack.enter_async_context(app.lifespan())
            client = httpx.AsyncClient(
                transport=ASGIWebSocketTransport(app=app), base_url="http://test", timeout=60
            )
            clients.append(await stack.enter_async_context(client))
        yield clients


def client_for(replicas: list[httpx.AsyncClient], i: int, token: str, tenant: str) -> GraphQLClient:
    return GraphQLClient(replicas[i % len(replicas)], token, tenant)


async def test_racing_writers_for_one_trace_seq_exactly_one_wins(
    replicas: list[httpx.AsyncClient], admin_token: str, pool: asyncpg.Pool
) -> None:
    tenant = new_tenant()
    await client_for(replicas, 0, admin_token, tenant).append_ok([started("race")])
    contenders = [input_observed("race", 1, idempotency_key=f"writer-{i}") for i in range(16)]
    results = await asyncio.gather(
        *(
            client_for(replicas, i, admin_token, tenant).append([event])
            for i, event in enumerate(contenders)
        )
    )
    winners = [r for r in results if not r["errors"]]
    losers = [r["errors"][0] for r in results if r["errors"]]
    assert len(winners) == 1
    assert len(losers) == 15
    assert {e["code"] for e in losers} == {"DG_ERR_EVENT_SEQUENCE_INVALID"}
    assert {e["message"] for e in losers} == {"Expected trace_seq 2, got 1"}
    async with pool.acquire() as conn:
        seqs = await conn.fetch(
            "SELECT trace_seq, log_seq FROM dg_event_log WHERE tenant_id = $1 ORDER BY log_seq",
            tenant,
        )
    assert [(r["trace_seq"], r["log_seq"]) for r in seqs] == [(0, 1), (1, 2)]


async def test_identical_retries_store_one_row(
    replicas: list[httpx.AsyncClient], admin_token: str, pool: asyncpg.Pool
) -> None:
    tenant = new_tenant()
    event = started("retry")
    results = await asyncio.gather(
        *(client_for(replicas, i, admin_token, tenant).append_ok([event]) for i in range(20))
    )
    stored = [r[0] for r in results]
    assert {e["logSeq"] for e in stored} == {1}
    assert {e["eventId"] for e in stored} == {event["event_id"]}
    assert sorted(e["idempotentReplay"] for e in stored) == [False] + [True] * 19
    async with pool.acquire() as conn:
        assert (
            await conn.fetchval("SELECT count(*) FROM dg_event_log WHERE tenant_id = $1", tenant)
            == 1
        )


async def test_two_tenants_appending_concurrently_have_their_own_gapless_positions(
    replicas: list[httpx.AsyncClient], admin_token: str, pool: asyncpg.Pool
) -> None:
    tenants = [new_tenant(), new_tenant()]

    async def writer(i: int, tenant: str) -> None:
        client = client_for(replicas, i, admin_token, tenant)
        for batch in range(10):
            trace = f"w{i}-b{batch}"
            await client.append_ok([started(trace), input_observed(trace, 1)])

    await asyncio.gather(*(writer(i, t) for t in tenants for i in range(4)))
    async with pool.acquire() as conn:
        for tenant in tenants:
            positions = await conn.fetch(
                "SELECT log_seq FROM dg_event_log WHERE tenant_id = $1 ORDER BY log_seq", tenant
            )
            assert [r["log_seq"] for r in positions] == list(range(1, 81))


async def test_a_tailing_reader_never_misses_or_repeats_while_8_writers_append(
    replicas: list[httpx.AsyncClient], admin_token: str
) -> None:
    tenant = new_tenant()
    writers, batches, per_batch = 8, 12, 5
    total = writers * batches * per_batch
    done = asyncio.Event()

    async def writer(i: int) -> None:
        client = client_for(replicas, i, admin_token, tenant)
        for b in range(batches):
            trace = f"w{i}-{b}"
            events: list[dict[str, Any]] = [started(trace)]
            events += [input_observed(trace, s) for s in range(1, per_batch)]
            await client.append_ok(events)

    seen: list[int] = []

    async def reader() -> None:
        client = client_for(replicas, 1, admin_token, tenant)
        query = """query($after: Long!) { events(afterLogSeq: $after, first: 7) {
                     edges { node { logSeq } } } }"""
        while len(seen) < total:
            after = seen[-1] if seen else 0
            page = (await client.data(query, {"after": after}))["events"]["edges"]
            seen.extend(edge["node"]["logSeq"] for edge in page)
            if not page:
                if done.is_set() and len(seen) < total:
                    continue
                await asyncio.sleep(0)

    async def writers_then_done() -> None:
        await asyncio.gather(*(writer(i) for i in range(writers)))
        done.set()

    await asyncio.wait_for(asyncio.gather(reader(), writers_then_done()), timeout=120)
    assert seen == list(range(1, total + 1))
