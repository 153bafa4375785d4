"""Every golden scenario, ingested through GraphQL into a fresh tenant while other tenants
are busy, reproduces its four digests and the bundle's projection snapshot rows."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from tests.support import (
    SCENARIOS,
    GraphQLClient,
    fixture_bundle,
    golden_digests,
    golden_events,
    input_observed,
    new_tenant,
    started,
)

pytestmark = pytest.mark.anyio

HEALTH = """query($n: Long!) { projectionHealth(atLeast: $n) {
    lastLogSeq projectedTo projections { name cursor pending stale status }
    digests { contextGraph traceSummary precedentIndex fullProjection } } }"""


async def noise(gql: GraphQLClient, stop: asyncio.Event) -> None:
    """Another tenant appending all along."""
    other = GraphQLClient(gql.http, gql.token, new_tenant())
    n = 0
    while not stop.is_set():
        await other.append_ok([started(f"noise-{n}"), input_observed(f"noise-{n}", 1)])
        n += 1


async def snapshot(pool: asyncpg.Pool, tenant: str) -> dict[str, Any]:
    async with pool.acquire() as conn:
        nodes = await conn.fetch(
            "SELECT node_id, node_type, trace_id, log_seq, created_at "
            "FROM dg_cg_nodes WHERE scope = $1 ORDER BY node_id",
            tenant,
        )
        edges = await conn.fetch(
            "SELECT edge_id, edge_type, from_node_id, to_node_id, trace_id, "
            "log_seq, created_at FROM dg_cg_edges WHERE scope = $1 "
            "ORDER BY edge_id",
            tenant,
        )
        precedent = await conn.fetch(
            "SELECT exception_id, log_seq, policy_id, policy_version, primary_entity_id, "
            "primary_entity_system, primary_entity_type, source_event_id, trace_id "
            "FROM dg_precedent_index WHERE scope = $1 ORDER BY source_event_id",
            tenant,
        )
        policy = await conn.fetch(
            "SELECT created_at, index_id, log_seq, policy_id, policy_version, trace_id "
            "FROM dg_policy_eval_index WHERE scope = $1 ORDER BY log_seq, index_id",
            tenant,
        )
        summary = await conn.fetchrow(
            "SELECT event_count, finished_at, last_log_seq, outcome, primary_entity_id, "
            "primary_entity_type, started_at, title, trace_id, workflow FROM dg_trace_summary "
            "WHERE scope = $1",
            tenant,
        )
    return {
        "context_graph": {
            "node_count": len(nodes),
            "edge_count": len(edges),
            "nodes": [dict(r) | {"attrs": {}} for r in nodes],
            "edges": [dict(r) | {"attrs": {}} for r in edges],
        },
        "precedent_index": [dict(r) for r in precedent],
        "policy_eval_index": [dict(r) for r in policy],
        "trace_summary": dict(summary) if summary else None,
    }


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_golden_scenario_digests_and_snapshot(
    gql: GraphQLClient, pool: asyncpg.Pool, worker: object, tenant: str, scenario: str
) -> None:
    stop = asyncio.Event()
    busy = asyncio.create_task(noise(gql, stop))
    try:
        events = golden_events(scenario)
        for event in events:  # one request per event, interleaved with the other tenant
            await gql.append_ok([event])
        health = (await gql.data(HEALTH, {"n": len(events)}))["projectionHealth"]
    finally:
        stop.set()
        await busy
    digests = health["digests"]
    expected = golden_digests(scenario)
    assert {
        "context_graph": digests["contextGraph"],
        "trace_summary": digests["traceSummary"],
        "precedent_index": digests["precedentIndex"],
        "full_projection": digests["fullProjection"],
    } == expected
    assert {p["cursor"] for p in health["projections"]} == {len(events)}
    bundle = next(s for s in fixture_bundle()["scenarios"] if s["scenario"] == scenario)
    wanted = bundle["projection_snapshot"]
    got = await snapshot(pool, tenant)
    assert got["context_graph"] == wanted["context_graph"]
    assert got["precedent_index"] == wanted["precedent_index"]
    assert got["policy_eval_index"] == wanted["policy_eval_index"]
    assert got["trace_summary"] == wanted["trace_summary"]
    assert wanted["projection_cursor"] == len(events)


@pytest.mark.parametrize("sort_here", [0, 100_000])
async def test_stored_digests_agree_whether_sorted_by_postgres_or_here(
    gql: GraphQLClient,
    pool: asyncpg.Pool,
    worker: object,
    tenant: str,
    sort_here: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A digest of stored rows sorts small tables in Python and streams large ones in
    PostgreSQL's id order: both give the golden digests (0 forces the streamed path)."""
    from server.store import projection_reads

    scenario = SCENARIOS[0]
    events = golden_events(scenario)
    await gql.append_ok(events)
    await gql.data(HEALTH, {"n": len(events)})
    monkeypatch.setattr(projection_reads, "_SORT_HERE", sort_here)
    _, digests = await projection_reads.digests(pool, tenant, use_cache=False)
    expected = golden_digests(scenario)
    assert {name: digests[name] for name in expected if name in digests} == {
        name: value for name, value in expected.items() if name != "full_projection"
    }
