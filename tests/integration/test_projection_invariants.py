"""Invariants 23-42 of spec/semantics.md §11, each as its own test on real PostgreSQL.

Projections are driven by calling the catch-up use case directly (what the worker runs),
so each test controls exactly when the log is projected.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from server.core import native_projection
from server.core.canonical_json import payload_hash, stored_payload_json
from server.core.projector import InMemoryProjector
from server.service import projection
from server.service.projection import CatchUpResult
from server.settings import Settings
from server.store.event_log import EVENT_COLUMNS, row_to_event
from server.store.projections import PostgresProjections
from tests.support import (
    GraphQLClient,
    derived_expectations,
    envelope,
    finished,
    golden_digests,
    golden_events,
    input_observed,
    new_tenant,
    started,
)

pytestmark = pytest.mark.anyio


async def project(pool: asyncpg.Pool, tenant: str) -> CatchUpResult:
    return await projection.catch_up(PostgresProjections(pool, batch_size=4), None, tenant)


async def insert_behind_the_back(
    pool: asyncpg.Pool,
    tenant: str,
    event: dict[str, Any],
    stored_hash: str | None = None,
    skip: int = 0,
    stored_text: str | None = None,
) -> int:
    """Write a row the way a buggy or malicious client of the database might (`skip`
    positions past the end leaves a gap; `stored_text` in place of the payload's C2, the
    hash still the payload's unless `stored_hash` says otherwise)."""
    async with pool.acquire() as conn, conn.transaction():
        position = await conn.fetchval(
            "UPDATE dg_tenants SET last_log_seq = last_log_seq + 1 + $2 WHERE tenant_id = $1 "
            "RETURNING last_log_seq",
            tenant,
            skip,
        )
        await conn.execute(
            """INSERT INTO dg_event_log (tenant_id, log_seq, event_id, trace_id, trace_seq,
               event_type, occurred_at, recorded_at, producer_id, system, actor_type, actor_id,
               idempotency_key, schema_version, payload_json, payload_hash)
               VALUES ($1, $2, $3, $4, $5, $6, $7, 'now', 'p', 's', 'agent', 'a', $8, 1, $9, $10)""",
            tenant,
            position,
            event["event_id"],
            event["trace_id"],
            event["trace_seq"],
            event["event_type"],
            event["occurred_at"],
            event["idempotency_key"],
            stored_text or stored_payload_json(event["payload"]),
            stored_hash or payload_hash(event["payload"]),
        )
        return int(position)


async def shadows_left(pool: asyncpg.Pool) -> list[str]:
    """Shadow tables a bulk run left behind (none should ever be)."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND NOT relispartition "
            "AND relname ~ '^dg_[a-z_]+__[0-9a-f]{16}_'"
        )
    return [row["relname"] for row in rows]


async def rows(pool: asyncpg.Pool, sql: str, *args: Any) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        return [dict(r) for r in await conn.fetch(sql, *args)]


HEALTH = """{ projectionHealth { lastLogSeq projectedTo projections { name cursor pending stale
             status failures { logSeq eventId code message } } } }"""


async def test_invariant_23_hash_mismatch_stops_the_projection(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    await gql.append_ok([started("t"), input_observed("t", 1)])
    bad = input_observed("t", 2)
    position = await insert_behind_the_back(pool, tenant, bad, "sha256:" + "0" * 64)
    await gql.append_ok([started("u")])
    result = await project(pool, tenant)
    assert result.failure is not None and result.failure.event.log_seq == position
    assert result.failure.error.code == "DG_ERR_CONFLICT"
    health = (await gql.data(HEALTH))["projectionHealth"]
    spec = [state for state in health["projections"] if state["name"] != "workflows"]
    assert len(spec) == 3
    # The workflow projection reads decision events only: a tampered input is not its own.
    assert [s["status"] for s in health["projections"] if s["name"] == "workflows"] == ["READY"]
    for state in spec:
        assert state["cursor"] == position - 1 and state["status"] == "FAILING"
        assert state["failures"][0]["code"] == "DG_ERR_CONFLICT"
        assert state["failures"][0]["message"].startswith(
            f"Payload hash mismatch for event {bad['event_id']}: expected sha256:000"
        )
    again = await project(pool, tenant)  # stays stopped: never skipped
    assert again.applied == 0 and again.failure is not None


async def test_invariant_24_trace_seq_gaps_stop_and_restarts_resume(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    await gql.append_ok([started("t"), input_observed("t", 1), input_observed("t", 2)])
    await project(pool, tenant)
    await gql.append_ok([input_observed("t", 3)])
    fresh = await projection.catch_up(PostgresProjections(pool), None, tenant)  # "restart"
    assert fresh.failure is None and fresh.cursors["context_graph"] == 4
    await insert_behind_the_back(pool, tenant, input_observed("t", 6, idempotency_key="gap"))
    gap = await project(pool, tenant)
    assert gap.failure is not None
    assert gap.failure.error.code == "DG_ERR_EVENT_SEQUENCE_INVALID"
    assert gap.failure.error.message == "trace_seq gap in trace t: expected 4, got 6"


async def test_invariant_25_cursor_moves_only_past_applied_events(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    await gql.append_ok([started("t")])
    await insert_behind_the_back(pool, tenant, input_observed("t", 1), "sha256:" + "1" * 64)
    result = await project(pool, tenant)
    assert result.cursors == {
        "context_graph": 1,
        "trace_summary": 1,
        "precedent_index": 1,
        "workflows": 2,  # it has no decision event to check, and moves on
    }
    nodes = await rows(pool, "SELECT node_id FROM dg_cg_nodes WHERE scope = $1", tenant)
    assert "input:input:t:1" not in {n["node_id"] for n in nodes}  # nothing of the bad event


async def test_invariant_26_ids_times_and_attrs(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    events = golden_events("dealdesk")
    await gql.append_ok(events)
    await project(pool, tenant)
    occurred = {e["event_id"]: e["occurred_at"] for e in events}
    edges = await rows(
        pool,
        "SELECT edge_id, edge_type, from_node_id, to_node_id, created_at, "
        "metadata_json FROM dg_cg_edges WHERE scope = $1",
        tenant,
    )
    assert edges
    for edge in edges:
        event_id = edge["edge_id"].rsplit(":", 1)[1]
        prefix = f"{edge['edge_type']}:{edge['from_node_id']}:{edge['to_node_id']}:"
        assert edge["edge_id"] == prefix + event_id
        assert edge["created_at"] == occurred[event_id] and edge["metadata_json"] == "{}"
    nodes = await rows(
        pool, "SELECT node_id, node_type, metadata_json FROM dg_cg_nodes WHERE scope = $1", tenant
    )
    assert all(n["node_id"].startswith(n["node_type"] + ":") for n in nodes)
    assert {n["metadata_json"] for n in nodes} == {"{}"}


async def test_invariant_27_first_write_wins_and_placeholders(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    cite = envelope(
        "a",
        1,
        "PrecedentCited",
        {"cited_trace_id": "b", "reason": "similar"},
        occurred_at="2026-01-01T00:00:05Z",
    )
    await gql.append_ok([started("a"), cite, started("b", occurred_at="2026-01-02T00:00:00Z")])
    await project(pool, tenant)
    placeholder = (
        await rows(
            pool,
            "SELECT node_type, trace_id, log_seq, created_at FROM "
            "dg_cg_nodes WHERE scope = $1 AND node_id = 'trace:b'",
            tenant,
        )
    )[0]
    assert placeholder == {
        "node_type": "trace",
        "trace_id": "b",
        "log_seq": 2,
        "created_at": "2026-01-01T00:00:05Z",
    }
    shared = (
        await rows(
            pool,
            "SELECT trace_id, log_seq FROM dg_cg_nodes WHERE scope = $1 "
            "AND node_id = 'entity:account:acct-1'",
            tenant,
        )
    )[0]
    assert shared == {"trace_id": "a", "log_seq": 1}


async def test_invariant_28_summary_touched_by_start_and_finish_only(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    await gql.append_ok([started("t"), input_observed("t", 1), input_observed("t", 2)])
    await project(pool, tenant)
    open_row = (
        await rows(
            pool,
            "SELECT event_count, last_log_seq, outcome FROM dg_trace_summary WHERE scope = $1",
            tenant,
        )
    )[0]
    assert open_row == {"event_count": 1, "last_log_seq": 1, "outcome": None}
    await gql.append_ok([finished("t", 3, "failure")])
    await project(pool, tenant)
    done = (
        await rows(
            pool,
            "SELECT event_count, last_log_seq, outcome FROM dg_trace_summary WHERE scope = $1",
            tenant,
        )
    )[0]
    assert done == {"event_count": 2, "last_log_seq": 4, "outcome": "failure"}


async def test_invariant_29_precedents_appear_when_the_trace_finishes(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    policy = {
        "policy": {"policy_id": "cap", "policy_version": "1"},
        "inputs": [],
        "decision": "require_exception",
    }
    exception = {
        "exception_id": "ex1",
        "reason": "r",
        "policy": {"policy_id": "cap", "policy_version": "1"},
    }
    await gql.append_ok(
        [
            started("t"),
            envelope("t", 1, "PolicyEvaluated", policy),
            envelope("t", 2, "ExceptionRequested", exception),
        ]
    )
    await project(pool, tenant)
    assert await rows(pool, "SELECT 1 FROM dg_precedent_index WHERE scope = $1", tenant) == []
    await gql.append_ok([finished("t", 3)])
    await project(pool, tenant)
    found = await rows(
        pool,
        "SELECT exception_id, policy_id, primary_entity_type, "
        "primary_entity_system, primary_entity_id, log_seq FROM "
        "dg_precedent_index WHERE scope = $1 ORDER BY log_seq",
        tenant,
    )
    assert found == [
        {
            "exception_id": None,
            "policy_id": "cap",
            "primary_entity_type": "account",
            "primary_entity_system": "crm",
            "primary_entity_id": "acct-1",
            "log_seq": 2,
        },
        {
            "exception_id": "ex1",
            "policy_id": "cap",
            "primary_entity_type": "account",
            "primary_entity_system": "crm",
            "primary_entity_id": "acct-1",
            "log_seq": 3,
        },
    ]


DIGESTS = """{ projectionHealth { digests { contextGraph traceSummary precedentIndex
               fullProjection } } }"""


def as_spec(digests: dict[str, str]) -> dict[str, str]:
    return {
        "context_graph": digests["contextGraph"],
        "trace_summary": digests["traceSummary"],
        "precedent_index": digests["precedentIndex"],
        "full_projection": digests["fullProjection"],
    }


@pytest.mark.parametrize("scenario", ["dealdesk", "renewal", "support"])
async def test_invariant_30_golden_scenarios(
    gql: GraphQLClient, pool: asyncpg.Pool, scenario: str
) -> None:
    await gql.append_ok(golden_events(scenario))
    await project(pool, gql.tenant or "")
    digests = (await gql.data(DIGESTS))["projectionHealth"]["digests"]
    assert as_spec(digests) == golden_digests(scenario)


async def test_invariant_31_rebuild_equals_incremental_and_recorded_at_is_ignored(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    events = [e for s in ("dealdesk", "renewal", "support") for e in golden_events(s)]
    for i in range(0, len(events), 5):  # incremental, in several catch-ups
        await gql.append_ok(events[i : i + 5])
        await project(pool, tenant)
    incremental = (await gql.data(DIGESTS))["projectionHealth"]["digests"]
    store = PostgresProjections(pool, batch_size=7)
    await store.reset(tenant, ("context_graph", "trace_summary", "precedent_index"))
    await projection.catch_up(store, None, tenant)
    rebuilt = (await gql.data(DIGESTS))["projectionHealth"]["digests"]
    assert rebuilt == incremental
    # The derived expectations were computed with other recorded_at values entirely.
    combined = derived_expectations()["combined_store_digests"]
    (expected,) = combined.values()
    assert as_spec(rebuilt) == expected["digests"]


async def test_invariant_32_full_digest_and_what_is_not_digested(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    await gql.append_ok(golden_events("renewal"))
    await project(pool, tenant)
    before = (await gql.data(DIGESTS))["projectionHealth"]["digests"]
    text = f"{before['contextGraph']}:{before['traceSummary']}:{before['precedentIndex']}"
    assert before["fullProjection"] == "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM dg_policy_eval_index WHERE scope = $1", tenant)
    _, fresh = await PostgresProjections(pool).digests(tenant, use_cache=False)
    assert fresh["context_graph"] == before["contextGraph"]
    assert fresh["precedent_index"] == before["precedentIndex"]


async def test_invariant_33_stale_reads_and_log_reads(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    await gql.append_ok([started("t")])
    await project(pool, tenant)
    stored = await gql.append_ok([input_observed("t", 1)])
    query = """query($n: Long!) { contextGraph(nodeType: "trace", nodeId: "t", atLeast: $n)
               { nodes { nodeId } } }"""
    body = await gql.execute(query, {"n": stored[0]["logSeq"]})
    assert body["errors"][0]["extensions"]["code"] == "DG_ERR_PROJECTION_OUT_OF_DATE"
    assert body["errors"][0]["message"] == "Projections at log_seq=1, events at 2"
    # without atLeast the read answers from current state and says how far it reaches
    now = await gql.data('{ contextGraph(nodeType: "trace", nodeId: "t") { projectedTo } }')
    assert now["contextGraph"]["projectedTo"] == 1
    # the log itself is never stale
    assert (
        len(
            (await gql.data('{ trace(traceId: "t") { events { edges { cursor } } } }'))["trace"][
                "events"
            ]["edges"]
        )
        == 2
    )


async def test_invariant_34_unknown_traces(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    await gql.append_ok([started("t")])
    await project(pool, tenant)
    data = await gql.data(
        '{ a: trace(traceId: "nope") { traceId } '
        'b: trace(traceId: "t") { summary { traceId } events(afterTraceSeq: 5) '
        "{ edges { cursor } } } }"
    )
    # The API answers "no such trace" with null (spec/api.md), not an error; paging past
    # the end of a trace is an empty page.
    assert data["a"] is None
    assert data["b"] == {"summary": {"traceId": "t"}, "events": {"edges": []}}


@pytest.mark.parametrize(
    "query",
    [
        "{ events(first: 10001) { edges { cursor } } }",
        '{ trace(traceId: "t") { events(first: 10001) { edges { cursor } } } }',
        "{ precedents(first: 10001) { traceId } }",
    ],
)
async def test_invariant_35_limits(gql: GraphQLClient, query: str) -> None:
    await gql.append_ok([started("t")])
    body = await gql.execute(query)
    assert body["errors"][0]["extensions"]["code"] == "DG_ERR_INVALID_ARGUMENT"
    assert "10000" in body["errors"][0]["message"]


GRAPH = """query($t: String!, $id: String!, $d: Int!, $n: Int!, $e: Int!, $et: [String!],
                 $nt: [String!]) {
  contextGraph(nodeType: $t, nodeId: $id, maxDepth: $d, maxNodes: $n, maxEdges: $e,
               edgeTypes: $et, nodeTypes: $nt) {
    center nodes { nodeId nodeType traceId logSeq createdAt attrs }
    edges { edgeId edgeType fromNodeId toNodeId } truncated } }"""


async def graph(
    gql: GraphQLClient,
    node_type: str,
    node_id: str,
    depth: int = 1,
    nodes: int = 100,
    edges: int = 500,
    edge_types: Any = None,
    node_types: Any = None,
) -> dict[str, Any]:
    data = await gql.data(
        GRAPH,
        {
            "t": node_type,
            "id": node_id,
            "d": depth,
            "n": nodes,
            "e": edges,
            "et": edge_types,
            "nt": node_types,
        },
    )
    result: dict[str, Any] = data["contextGraph"]
    return result


async def test_invariant_36_subgraph_order_depth_zero_and_missing_center(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    await gql.append_ok(golden_events("renewal"))
    await project(pool, tenant)
    trace = golden_events("renewal")[0]["trace_id"]
    full = await graph(gql, "trace", trace, depth=3)
    ids = [n["nodeId"] for n in full["nodes"]]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    edge_ids = [e["edgeId"] for e in full["edges"]]
    assert edge_ids == sorted(edge_ids) and len(edge_ids) == len(set(edge_ids))
    zero = await graph(gql, "trace", trace, depth=0)
    assert [n["nodeId"] for n in zero["nodes"]] == [f"trace:{trace}"] and zero["edges"] == []
    missing = await graph(gql, "trace", "nope", depth=3)
    assert missing == {"center": "trace:nope", "nodes": [], "edges": [], "truncated": False}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"d": 11}, "max_depth must be <= 10"),
        ({"d": -1}, "max_depth must be non-negative"),
        ({"n": 0}, "max_nodes must be positive"),
        ({"e": 0}, "max_edges must be positive"),
        ({"et": []}, "edge_types must not be empty if specified"),
        ({"nt": []}, "node_types must not be empty if specified"),
    ],
)
async def test_invariant_37_graph_filter_rules(
    gql: GraphQLClient, args: dict[str, Any], message: str
) -> None:
    variables = {"t": "trace", "id": "x", "d": 1, "n": 100, "e": 500, "et": None, "nt": None} | args
    body = await gql.execute(GRAPH, variables)
    assert body["errors"][0]["extensions"]["code"] == "DG_ERR_INVALID_ARGUMENT"
    assert body["errors"][0]["message"] == message


def reference_bfs(
    edges: list[tuple[str, str, str]],
    center: str,
    node_ids: set[str],
    depth: int,
    max_nodes: int,
    max_edges: int,
    node_types: set[str] | None,
) -> tuple[list[str], list[str], bool]:
    """§7.5 written out independently of server/core/graph_query.py."""
    visited_nodes, visited_edges = {center}, []
    frontier, level, truncated = {center}, 0, False
    while frontier and not truncated and level < depth:
        nxt: set[str] = set()
        for edge_id, a, b in sorted(e for e in edges if e[1] in frontier or e[2] in frontier):
            if edge_id in visited_edges:
                continue
            if len(visited_edges) >= max_edges:
                truncated = True
                break
            visited_edges.append(edge_id)
            for end in (a, b):
                if end in visited_nodes:
                    continue
                if node_types and (end.split(":", 1)[0] if ":" in end else "") not in node_types:
                    continue
                if len(visited_nodes) >= max_nodes:
                    truncated = True
                    break
                visited_nodes.add(end)
                nxt.add(end)
            if truncated:
                break
        frontier, level = nxt, level + 1
    return sorted(n for n in visited_nodes if n in node_ids), sorted(visited_edges), truncated


@pytest.mark.parametrize(
    ("depth", "max_nodes", "max_edges", "node_types"),
    [
        (2, 100, 500, None),
        (3, 5, 500, None),
        (3, 100, 4, None),
        (2, 3, 3, None),
        (3, 100, 500, ["entity", "actor"]),
        (1, 1, 500, None),
    ],
)
async def test_invariant_38_truncation_matches_the_reference(
    gql: GraphQLClient,
    pool: asyncpg.Pool,
    tenant: str,
    depth: int,
    max_nodes: int,
    max_edges: int,
    node_types: list[str] | None,
) -> None:
    events = [e for s in ("dealdesk", "renewal", "support") for e in golden_events(s)]
    await gql.append_ok(events)
    await project(pool, tenant)
    oracle = InMemoryProjector()
    oracle.apply_all(
        [
            row_to_event(r)
            for r in await pool.fetch(
                f"SELECT {EVENT_COLUMNS} FROM dg_event_log WHERE tenant_id = $1 ORDER BY log_seq",
                tenant,
            )
        ]
    )  # type: ignore[arg-type]
    edges = [(e.edge_id, e.from_node_id, e.to_node_id) for e in oracle.edges.values()]
    center = f"trace:{events[0]['trace_id']}"
    want = reference_bfs(
        edges,
        center,
        set(oracle.nodes),
        depth,
        max_nodes,
        max_edges,
        set(node_types) if node_types else None,
    )
    got = await graph(
        gql, "trace", events[0]["trace_id"], depth, max_nodes, max_edges, node_types=node_types
    )
    assert (
        [n["nodeId"] for n in got["nodes"]],
        [e["edgeId"] for e in got["edges"]],
        got["truncated"],
    ) == want


EDGES = """query($id: String!, $d: EdgeDirection!, $first: Int!, $after: String) {
  nodeEdges(nodeType: "entity", nodeId: $id, direction: $d, first: $first, after: $after) {
    edges { node { edgeId logSeq } cursor } pageInfo { hasNextPage endCursor } } }"""


async def test_invariant_39_edge_pages(gql: GraphQLClient, pool: asyncpg.Pool, tenant: str) -> None:
    for i in range(7):
        await gql.append_ok([started(f"t{i}")])  # each trace involves entity account:acct-1
    await project(pool, tenant)
    seen: list[tuple[int, str]] = []
    after = None
    while True:
        page = (
            await gql.data(
                EDGES, {"id": "account:acct-1", "d": "INCOMING", "first": 3, "after": after}
            )
        )["nodeEdges"]
        seen += [(e["node"]["logSeq"], e["node"]["edgeId"]) for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 7
    outgoing = await gql.execute(
        EDGES, {"id": "account:acct-1", "d": "OUTGOING", "first": 3, "after": after}
    )
    assert outgoing["errors"][0]["message"] == "cursor.direction must match direction argument"
    zero = await gql.execute(EDGES, {"id": "account:acct-1", "d": "BOTH", "first": 0})
    assert zero["errors"][0]["message"] == "limit must be positive, got 0"


PRECEDENTS = """query($p: String, $v: String, $o: String) { precedents(policyId: $p,
  policyVersion: $v, outcome: $o) { traceId outcome policyId policyVersion lastLogSeq } }"""


async def test_invariant_40_precedent_order_and_ranking(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    def policy(trace: str, seq: int, version: str) -> dict[str, Any]:
        return envelope(
            trace,
            seq,
            "PolicyEvaluated",
            {
                "policy": {"policy_id": "cap", "policy_version": version},
                "inputs": [],
                "decision": "deny",
            },
        )

    def exception(trace: str, seq: int, version: str) -> dict[str, Any]:
        return envelope(
            trace,
            seq,
            "ExceptionRequested",
            {
                "exception_id": f"ex-{trace}",
                "reason": "r",
                "policy": {"policy_id": "cap", "policy_version": version},
            },
        )

    await gql.append_ok(
        [started("a"), exception("a", 1, "1"), policy("a", 2, "2"), finished("a", 3)]
    )
    await gql.append_ok(
        [started("b"), policy("b", 1, "1"), policy("b", 2, "3"), finished("b", 3, "failure")]
    )
    await gql.append_ok([started("c"), policy("c", 1, "1")])  # never finishes
    await project(pool, tenant)
    hits = (await gql.data(PRECEDENTS, {"p": "cap"}))["precedents"]
    assert [(h["traceId"], h["policyVersion"]) for h in hits] == [("b", "3"), ("a", "1")]
    assert [h["lastLogSeq"] for h in hits] == [8, 4]
    assert (await gql.data(PRECEDENTS, {"p": "cap", "v": "1", "o": "success"}))["precedents"][0][
        "traceId"
    ] == "a"
    everything = (await gql.data("{ precedents { traceId policyId } }"))["precedents"]
    assert everything == [{"traceId": "b", "policyId": None}, {"traceId": "a", "policyId": None}]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ('policyVersion: "1"', "policy_version requires policy_id"),
        ('entityId: "x"', "entity_id requires entity_type"),
        ("first: 0", "limit must be positive"),
    ],
)
async def test_invariant_41_precedent_query_rules(
    gql: GraphQLClient, args: str, message: str
) -> None:
    body = await gql.execute(f"{{ precedents({args}) {{ traceId }} }}")
    assert body["errors"][0]["extensions"]["code"] == "DG_ERR_INVALID_ARGUMENT"
    assert body["errors"][0]["message"] == message


async def test_invariant_42_health_arithmetic(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    await gql.append_ok([started("t"), input_observed("t", 1)])
    await project(pool, tenant)
    await gql.append_ok([input_observed("t", 2), input_observed("t", 3), input_observed("t", 4)])
    health = (await gql.data(HEALTH))["projectionHealth"]
    assert health["lastLogSeq"] == 5 and health["projectedTo"] == 2
    for state in health["projections"]:
        assert (state["cursor"], state["pending"], state["stale"], state["status"]) == (
            2,
            3,
            True,
            "CATCHING_UP",
        )
    await project(pool, tenant)
    health = (await gql.data(HEALTH))["projectionHealth"]
    assert all(
        (s["pending"], s["stale"], s["status"]) == (0, False, "READY")
        for s in health["projections"]
    )
    digests = (await gql.data(DIGESTS))["projectionHealth"]["digests"]
    assert set(digests) == {"contextGraph", "traceSummary", "precedentIndex", "fullProjection"}
    assert json.dumps(digests)  # all four are present and strings
    assert all(v.startswith("sha256:") and len(v) == 71 for v in digests.values())


async def test_a_gap_in_positions_does_not_stall_a_projection(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    """Batches are windows of positions (cursor, cursor + batch]; a gap wider than a batch,
    which only a write behind our back can leave, is stepped over, not waited at."""
    stored = await gql.append_ok([started("gap"), input_observed("gap", 1)])
    event = input_observed("gap", 2)
    position = await insert_behind_the_back(pool, tenant, event, skip=9)  # batches are 4
    assert position == stored[-1]["logSeq"] + 10
    result = await project(pool, tenant)
    assert result.failure is None
    cursors = await PostgresProjections(pool).cursors(tenant)
    assert all(cursors[name] == position for name in ("context_graph", "trace_summary",
                                                       "precedent_index"))  # fmt: skip


def _forged_from_own_text(event: dict[str, Any]) -> str:
    """A stored hash that matches what a fast encoder writes for the payload, floats and
    all: only the float check tells it from a genuine one."""
    import msgspec

    text = msgspec.json.Encoder(order="sorted").encode(event["payload"])
    return "sha256:" + hashlib.sha256(text).hexdigest()


@pytest.mark.parametrize(
    "poison",
    [
        "hash mismatch",
        "float with a forged hash",
        "stored text edited",
        "edited inside a string only where spacing differs",
        "respaced, same value",
    ],
)
async def test_a_bulk_rebuild_stops_where_catch_up_stops(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str, poison: str
) -> None:
    """REBUILD's bulk path (store/bulk_rebuild.py) meets a poison event exactly as the
    incremental path does: same rows before it, same cursors, same open failure. The
    bulk path checks hashes on the stored text (ADR 0016): an edit of the text is caught
    wherever it is, and a text that only spaces the same value differently still passes
    (by the exact check), as it does incrementally."""
    await gql.append_ok([started("t"), input_observed("t", 1), started("v")])
    bad = input_observed("t", 2)
    if poison == "hash mismatch":
        position = await insert_behind_the_back(pool, tenant, bad, "sha256:" + "0" * 64)
    elif poison == "stored text edited":
        edited = stored_payload_json(dict(bad["payload"], input_id="input:other"))
        position = await insert_behind_the_back(pool, tenant, bad, stored_text=edited)
    elif poison == "edited inside a string only where spacing differs":
        # A space after ':' inside a string: stripping the whitespace outside strings
        # must not strip it, or the edited text would hash like the original.
        bad["payload"]["input_id"] = "a:b"
        edited = stored_payload_json(dict(bad["payload"], input_id="a: b"))
        position = await insert_behind_the_back(pool, tenant, bad, stored_text=edited)
    elif poison == "respaced, same value":
        respaced = json.dumps(bad["payload"], indent=1)
        position = await insert_behind_the_back(pool, tenant, bad, stored_text=respaced)
    else:
        bad["payload"]["facts"][0]["value"] = {"type": "number", "value": 20.5}
        position = await insert_behind_the_back(pool, tenant, bad, _forged_from_own_text(bad))
    await gql.append_ok([input_observed("v", 1)])
    incremental = await project(pool, tenant)
    if poison == "respaced, same value":
        assert incremental.failure is None
    else:
        assert incremental.failure is not None and incremental.failure.event.log_seq == position
    store = PostgresProjections(pool)
    positions, digests = await store.digests(tenant, use_cache=False)

    async def progress(_: int) -> bool:
        return True

    names = ("context_graph", "trace_summary", "precedent_index")
    outcome = await store.rebuild(tenant, names, progress)
    assert await store.digests(tenant, use_cache=False) == (positions, digests)
    # The native pass steps aside for every poison (the Python projector then finds it),
    # and for a text that is no poison but not C2 in key order either (respaced here).
    assert not outcome.native
    if incremental.failure is None:
        assert outcome.failure is None and await store.failures(tenant) == []
        return
    assert outcome.failure is not None and outcome.failure.event.log_seq == position
    assert outcome.failure.error.code == incremental.failure.error.code
    assert outcome.failure.error.message == incremental.failure.error.message
    assert {f.projection: f.log_seq for f in await store.failures(tenant)} == dict.fromkeys(
        names, position
    )


async def test_a_poison_event_deep_in_a_large_log_hands_the_rebuild_to_python(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    """The native pass meets the poison in its pipelined load (not in the swap's tail):
    it steps aside mid-stream, its shadows go, and the Python pass ends exactly where
    catch-up ends, with the same failure."""
    from server.store import bulk_rebuild

    await gql.append_ok([started("t"), input_observed("t", 1)])
    bad = input_observed("t", 2)
    position = await insert_behind_the_back(pool, tenant, bad, "sha256:" + "0" * 64)
    events = [started("u")] + [input_observed("u", n) for n in range(1, 3 * bulk_rebuild.TAIL)]
    for first in range(0, len(events), 500):
        await gql.append_ok(events[first : first + 500])
    incremental = await project(pool, tenant)
    assert incremental.failure is not None and incremental.failure.event.log_seq == position
    store = PostgresProjections(pool, small_table=0)
    before = await store.digests(tenant, use_cache=False)

    async def progress(_: int) -> bool:
        return True

    names = ("context_graph", "trace_summary", "precedent_index")
    outcome = await store.rebuild(tenant, names, progress)
    assert not outcome.native
    assert outcome.failure is not None and outcome.failure.event.log_seq == position
    assert outcome.failure.error.message == incremental.failure.error.message
    assert await store.digests(tenant, use_cache=False) == before
    assert await shadows_left(pool) == []  # neither pass left one behind


async def test_catch_up_remakes_a_partition_that_went_missing(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    """An adapter that made sure of a scope's partitions once does not look again; if a
    row then finds none (a partition dropped behind its back here), the batch is retried
    once after making sure again, instead of failing every catch-up from then on."""
    from server.store.partitions import partition_name

    await gql.append_ok([started("t"), input_observed("t", 1)])
    store = PostgresProjections(pool)
    await store.catch_up(tenant)  # the adapter now takes the partitions for granted
    await gql.append_ok([input_observed("t", 2)])
    missing = partition_name("dg_cg_edges", tenant)
    async with pool.acquire() as conn:
        await conn.execute(f"ALTER TABLE dg_cg_edges DETACH PARTITION {missing}")
        await conn.execute(f"DROP TABLE {missing}")
    report = await store.catch_up(tenant)
    assert report.failure is None and min(report.cursors.values()) == 3
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", missing)


@pytest.mark.parametrize("in_memory", [True, False])
async def test_scratch_digests_equal_the_live_ones_in_memory_or_in_shadow_tables(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str, in_memory: bool
) -> None:
    """VERIFY's two ways to scratch state (memory for small logs, shadow tables for large
    ones) give the live digests, up to each projection's own target."""
    events = [e for s in ("renewal", "dealdesk", "support") for e in golden_events(s)]
    await gql.append_ok(events)
    await project(pool, tenant)
    store = PostgresProjections(pool, verify_in_memory=10**9 if in_memory else 0)
    positions, live = await store.digests(tenant, use_cache=False)
    names = ("context_graph", "trace_summary", "precedent_index")

    async def progress(_: int) -> bool:
        return True

    outcome = await store.scratch_digests(tenant, names, {n: positions[n] for n in names}, progress)
    assert outcome.failure is None and not outcome.cancelled
    assert outcome.digests == {name: live[name] for name in names}
    assert outcome.native == native_projection.AVAILABLE
    python = PostgresProjections(pool, verify_in_memory=store._verify_in_memory, native_pass=False)
    by_python = await python.scratch_digests(
        tenant, names, {n: positions[n] for n in names}, progress
    )
    assert by_python.digests == outcome.digests and not by_python.native
    assert await shadows_left(pool) == []  # nothing left behind either way


async def _projected_past_the_tail(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> PostgresProjections:
    """A log longer than a swap's tail, projected; a store whose REBUILD puts every table
    through a shadow, so that its swap exchanges partitions under exclusive locks."""
    from server.store import bulk_rebuild

    for trace in ("a", "b", "c"):
        events = [started(trace)] + [input_observed(trace, n) for n in range(1, 800)]
        for first in range(0, len(events), 400):
            await gql.append_ok(events[first : first + 400])
    assert bulk_rebuild.TAIL < 3 * 800
    await project(pool, tenant)
    return PostgresProjections(pool, small_table=0)


_SPEC_PROJECTIONS = ("context_graph", "trace_summary", "precedent_index")


async def _always(_: int) -> bool:
    return True


@contextlib.asynccontextmanager
async def _digest_held_open(
    store: PostgresProjections, scope: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[asyncio.Task[tuple[dict[str, int], dict[str, str]]]]:
    """A digest of `scope` stopped right after it took its locks and its snapshot (it has
    read the cursors, no row yet), until the block ends; yields the digest's task."""
    from server.store import projection_reads

    snapshot_taken, go_on = asyncio.Event(), asyncio.Event()
    real_cursors = projection_reads.cursors

    async def cursors_then_wait(conn: asyncpg.Connection, scope: str) -> dict[str, int]:
        found = await real_cursors(conn, scope)  # the snapshot exists from here on
        snapshot_taken.set()
        await go_on.wait()
        return found

    monkeypatch.setattr(projection_reads, "cursors", cursors_then_wait)
    reading = asyncio.create_task(store.digests(scope, use_cache=False))
    await snapshot_taken.wait()
    monkeypatch.setattr(projection_reads, "cursors", real_cursors)
    try:
        yield reading
    finally:
        go_on.set()
        await asyncio.gather(reading, return_exceptions=True)


async def test_a_digest_never_mixes_the_rows_of_a_swap_with_the_cursors_before_it(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A digest reads the cursors and then the rows in one REPEATABLE READ snapshot. A
    REBUILD that swaps its shadows in between must wait: otherwise the old snapshot reads
    the new partitions, whose rows it cannot see, and the digest of empty tables is cached
    under the (unchanged) cursor."""
    store = await _projected_past_the_tail(gql, pool, tenant)
    _, before = await store.digests(tenant, use_cache=False)
    async with _digest_held_open(store, tenant, monkeypatch) as reading:
        rebuilding = asyncio.create_task(store.rebuild(tenant, _SPEC_PROJECTIONS, _always))
        await asyncio.sleep(1.0)  # time enough to reach its swap, which must wait for the read
    _, during = await reading
    assert (await rebuilding).failure is None
    assert {n: during[n] for n in _SPEC_PROJECTIONS} == {n: before[n] for n in _SPEC_PROJECTIONS}
    _, after = await store.digests(tenant, use_cache=False)
    assert after == before


async def test_a_digest_of_one_tenant_never_delays_the_swap_of_another(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A digest share-locks its own scope's partitions, not the parents: another tenant's
    REBUILD swaps in while the digest is still reading (it used to wait for the digest to
    end, and a VERIFY of a large tenant digests for many seconds)."""
    from server.store import bulk_rebuild

    other = new_tenant()
    digesting = await _projected_past_the_tail(gql, pool, tenant)
    rebuilding = await _projected_past_the_tail(dataclasses.replace(gql, tenant=other), pool, other)
    _, before = await rebuilding.digests(other, use_cache=False)
    monkeypatch.setattr(bulk_rebuild, "SWAP_PATIENCE", 1.0)  # a wait fails the run
    async with _digest_held_open(digesting, tenant, monkeypatch) as reading:
        outcome = await rebuilding.rebuild(other, _SPEC_PROJECTIONS, _always)
        assert not reading.done()
    assert outcome.failure is None
    _, after = await rebuilding.digests(other, use_cache=False)
    assert after == before


async def _rebuild_behind_a_share_lock(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str, held_for: float
) -> tuple[Any, dict[str, str], dict[str, str]]:
    """A REBUILD whose swap meets another session's share lock on a parent (what a long
    digest or read of any tenant holds) for `held_for` seconds: (outcome or the error it
    raised, live digests before, after)."""
    store = await _projected_past_the_tail(gql, pool, tenant)
    _, before = await store.digests(tenant, use_cache=False)
    locked, release = asyncio.Event(), asyncio.Event()

    async def long_reader() -> None:
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            await conn.execute("LOCK TABLE ONLY dg_cg_edges IN ACCESS SHARE MODE")
            locked.set()
            await release.wait()

    async def progress(_: int) -> bool:
        return True

    reader = asyncio.create_task(long_reader())
    await locked.wait()
    names = ("context_graph", "trace_summary", "precedent_index")
    rebuilding = asyncio.create_task(store.rebuild(tenant, names, progress))
    await asyncio.sleep(held_for)
    release.set()
    await reader
    outcome: Any
    try:
        outcome = await rebuilding
    except Exception as error:
        outcome = error
    _, after = await store.digests(tenant, use_cache=False)
    return outcome, before, after


async def test_a_rebuild_swap_waits_out_a_long_share_lock(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    """Many times the swap's lock timeout later, the swap still gets its locks."""
    outcome, before, after = await _rebuild_behind_a_share_lock(gql, pool, tenant, 2.0)
    assert not isinstance(outcome, Exception) and outcome.failure is None, outcome
    assert after == before


async def test_a_rebuild_that_cannot_swap_in_time_fails_cleanly(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past its patience a REBUILD gives up with a storage error that says why, and
    leaves the live projection as it was and no shadow table behind."""
    from server.core.errors import STORAGE
    from server.store import bulk_rebuild

    monkeypatch.setattr(bulk_rebuild, "SWAP_PATIENCE", 0.5)
    outcome, before, after = await _rebuild_behind_a_share_lock(gql, pool, tenant, 2.0)
    assert getattr(outcome, "code", None) == STORAGE, outcome
    assert "could not swap in the rebuilt projection" in str(outcome)
    assert after == before
    assert await shadows_left(pool) == []


async def test_a_load_under_way_holds_no_lock_on_the_parents(
    pool: asyncpg.Pool, tenant: str
) -> None:
    """A shadow is created inside the load's long transaction, from the parent's column
    list and not `LIKE` it: a swap of another scope, which locks the parents exclusively,
    never waits for a load (it did, and every lock request behind it waited too: ~100 ms
    of idle cores at a time)."""
    from server.core.bulk_projection import BulkRows
    from server.core.graph import NodeRow
    from server.store import bulk_rebuild

    tables = bulk_rebuild.shadows(tenant, ["context_graph"], small=0)  # shadow at once
    rows = BulkRows(nodes=[NodeRow("trace:t", "trace", "t", 1, "2026-12-06T00:00:00Z")])
    async with pool.acquire() as loading:
        await bulk_rebuild.prepare(loading, tables)
    async with pool.acquire() as loading, loading.transaction():
        await bulk_rebuild.copy(loading, tables, rows, grow=True, final=True)
        assert [t.created for t in tables] == [True, False]
        async with pool.acquire() as swapping, swapping.transaction():
            for parent in ("dg_cg_nodes", "dg_cg_edges"):  # NOWAIT: fails if held
                await swapping.execute(f"LOCK TABLE ONLY {parent} IN ACCESS EXCLUSIVE MODE NOWAIT")
    async with pool.acquire() as conn:
        assert await conn.fetchval(f"SELECT count(*) FROM {tables[0].name}") == 1
        await bulk_rebuild.drop(conn, tables)


async def test_a_swap_waiting_for_a_lock_holds_none_that_another_swap_needs(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """This tenant's swap rewrites its trace summaries in place and exchanges its graph
    tables; the other session plays a swap that rewrote its edges in place (it holds the
    edges parent shared) and now exchanges its summaries. Each needs a lock the other's
    kind holds; the waiting swap must hold nothing meanwhile, so the other gets its lock
    and both finish. (With the in-place writes before the locks, this swap kept the
    summary parent share-locked while it retried, and the other waited until it gave
    up: two such REBUILDs at once retried for SWAP_PATIENCE and failed.)"""
    from server.store import bulk_rebuild

    await _projected_past_the_tail(gql, pool, tenant)  # 3 summaries, 2,400+ graph rows
    store = PostgresProjections(pool)  # the default SMALL_TABLE: summaries in place
    _, before = await store.digests(tenant, use_cache=False)
    monkeypatch.setattr(bulk_rebuild, "SWAP_PATIENCE", 60.0)
    async with pool.acquire() as conn:
        # Writing a partition share-locks its parent when the backend (re)computes the
        # partition's constraint, as after any change to the partition: make that happen.
        summaries = bulk_rebuild.partition_name("dg_trace_summary", tenant)
        await conn.execute(f"ALTER TABLE {summaries} SET (autovacuum_enabled = true)")
    waiting = """SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                 WHERE c.relname = 'dg_cg_edges' AND NOT l.granted"""
    async with pool.acquire() as other, other.transaction():
        await other.execute("LOCK TABLE ONLY dg_cg_edges IN ACCESS SHARE MODE")
        rebuilding = asyncio.create_task(store.rebuild(tenant, _SPEC_PROJECTIONS, _always))
        async with pool.acquire() as watcher:
            for _ in range(2000):  # until this tenant's swap waits for the edges parent
                if await watcher.fetchval(waiting) or rebuilding.done():
                    break
                await asyncio.sleep(0.005)
        assert not rebuilding.done()
        await other.execute("SET LOCAL lock_timeout = '5s'")
        await other.execute("LOCK TABLE ONLY dg_trace_summary IN ACCESS EXCLUSIVE MODE")
    outcome = await rebuilding
    assert outcome.failure is None
    _, after = await store.digests(tenant, use_cache=False)
    assert after == before


async def test_a_rebuild_drops_what_an_earlier_attempt_left_and_nothing_else(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    """A worker killed between a load's commit and the swap leaves its shadows behind;
    the scope's next REBUILD drops them, and only them."""
    from server.store import bulk_rebuild

    store = await _projected_past_the_tail(gql, pool, tenant)
    other = new_tenant()
    crashed = bulk_rebuild.shadows(tenant, _SPEC_PROJECTIONS, small=0)
    bystander = bulk_rebuild.shadows(other, ["context_graph"], small=0)
    async with pool.acquire() as conn:
        await bulk_rebuild.prepare(conn, [*crashed, *bystander])
        await bulk_rebuild.create(conn, [*crashed, *bystander])  # and committed
    assert len(await shadows_left(pool)) == len(crashed) + len(bystander)
    outcome = await store.rebuild(tenant, _SPEC_PROJECTIONS, _always)
    assert outcome.failure is None
    assert sorted(await shadows_left(pool)) == sorted(s.name for s in bystander)
    async with pool.acquire() as conn:
        await bulk_rebuild.drop(conn, bystander)


async def test_a_tenant_with_one_projection_rebuilt_still_lags_in_the_others(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    """A REBUILD of one projection writes its cursor alone; the sweep must still see the
    tenant behind in the projections that have no cursor row yet (they are at 0)."""
    await gql.append_ok([started("t"), input_observed("t", 1)])
    store = PostgresProjections(pool)
    assert (tenant, 2) in await store.lagging_tenants()
    outcome = await store.rebuild(tenant, ["context_graph"], _always)
    assert outcome.failure is None
    assert (tenant, 2) in await store.lagging_tenants()
    await project(pool, tenant)
    assert tenant not in {t for t, _ in await store.lagging_tenants()}


async def test_a_load_that_dies_leaves_no_table_behind(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    """A load creates its shadows in its own transaction, so a load that dies (here its
    progress report fails after the first chunk) takes them with it: no cleanup needed,
    none for a worker killed mid-load to leave behind."""
    from server.core.native_projection import NativeProjector
    from server.store import bulk_rebuild

    await _projected_past_the_tail(gql, pool, tenant)
    tables = bulk_rebuild.shadows(tenant, _SPEC_PROJECTIONS, small=0)

    async def dies(_: int) -> bool:
        for _ in range(1000):  # once the writer has made its first shadow
            if any(t.created for t in tables):
                break
            await asyncio.sleep(0.005)
        assert any(t.created for t in tables)
        raise RuntimeError("worker gone")

    async with pool.acquire() as conn:
        await bulk_rebuild.prepare(conn, tables)
        end = await bulk_rebuild.log_end(conn, tenant)
    with pytest.raises(RuntimeError, match="worker gone"):
        await bulk_rebuild.load(pool, tenant, tables, NativeProjector(tenant), 0, end, dies)
    assert await shadows_left(pool) == []
    assert not any(t.created for t in tables)


async def test_runs_of_one_process_learning_the_tables_at_once_both_swap(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker process learns the parents' columns and indexes on its first run; two
    runs that start together both learn them (each once, not twice: the second copy of
    an index list had every shadow get two primary keys, and both runs failed)."""
    from server.store import bulk_rebuild

    monkeypatch.setattr(bulk_rebuild, "_layouts", {})
    monkeypatch.setattr(bulk_rebuild, "_indexes", {})
    other = new_tenant()
    first = await _projected_past_the_tail(gql, pool, tenant)
    second = await _projected_past_the_tail(dataclasses.replace(gql, tenant=other), pool, other)
    _, before = await second.digests(other, use_cache=False)
    outcomes = await asyncio.gather(
        first.rebuild(tenant, _SPEC_PROJECTIONS, _always),
        second.rebuild(other, _SPEC_PROJECTIONS, _always),
    )
    assert [o.failure for o in outcomes] == [None, None]
    _, after = await second.digests(other, use_cache=False)
    assert after == before
    assert await shadows_left(pool) == []


async def test_a_bulk_writer_that_fails_fails_the_load_at_once(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader queues chunks for the writer; when the writer dies (a COPY error), the
    load fails with its error instead of waiting forever to queue the next chunk."""
    from server.core.native_projection import NativeProjector
    from server.store import bulk_rebuild

    await _projected_past_the_tail(gql, pool, tenant)
    monkeypatch.setattr(bulk_rebuild, "CHUNK", 100)  # many more chunks than the queue holds

    async def fails(_: object) -> None:
        raise RuntimeError("COPY failed")

    async with pool.acquire() as conn:
        end = await bulk_rebuild.log_end(conn, tenant)
    streaming = bulk_rebuild.stream(pool, tenant, NativeProjector(tenant), 0, end, _always, fails)
    with pytest.raises(RuntimeError, match="COPY failed"):
        await asyncio.wait_for(streaming, timeout=20)
    async with pool.acquire() as conn:  # and the pool's connections are fine
        assert await conn.fetchval("SELECT 1") == 1


async def test_windows_of_the_log_are_read_by_position_not_sorted(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    """With no statistics on tenant columns PostgreSQL guesses ~100 rows for any window of
    the log and, left alone, reads it by a bitmap scan and a sort of the whole window
    (2-2.4x the CPU). A catch-up batch and the bulk reader read windows by the primary key."""
    from server.store import bulk_rebuild, projection_writer

    await _projected_past_the_tail(gql, pool, tenant)
    async with pool.acquire() as conn:  # statistics as a live log has them
        await conn.execute("ANALYZE dg_event_log")

    async def plan(conn: asyncpg.Connection, sql: str, *args: object) -> str:
        rows = await conn.fetch(f"EXPLAIN {sql}", *args)
        return "\n".join(r[0] for r in rows)

    window = (projection_writer.EVENTS_IN_WINDOW, tenant, 500, 2500)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_sort TO DEFAULT")
        left_alone = await plan(conn, *window)
        await conn.fetch(projection_writer._TRY_LOCKS, tenant, ["context_graph"])
        in_a_batch = await plan(conn, *window)
    async with pool.acquire() as conn:
        await conn.execute(bulk_rebuild._READ_IN_LOG_ORDER)
        try:
            by_the_reader = await plan(conn, bulk_rebuild._FACTS_IN_WINDOW, tenant, 500, 2500)
        finally:
            await conn.execute(bulk_rebuild._READ_SORTING_AGAIN)
    assert "Sort" in left_alone  # what the guess leads to (the reason for the setting)
    for chosen in (in_a_batch, by_the_reader):
        assert "Index Scan using dg_event_log_pkey" in chosen and "Sort" not in chosen, chosen


async def test_a_window_projected_in_parts_rebuilds_the_same_projection(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bulk reader projects each window a PART at a time, turning the event loop
    between parts so that the sockets keep moving: parts that end anywhere in a window
    (7 events, windows of 100) rebuild and verify exactly what the incremental projection
    built, and the pass really was called part by part."""
    from server.core.native_projection import NativeProjector
    from server.store import bulk_rebuild

    store = await _projected_past_the_tail(gql, pool, tenant)
    _, before = await store.digests(tenant, use_cache=False)
    monkeypatch.setattr(bulk_rebuild, "CHUNK", 100)
    monkeypatch.setattr(bulk_rebuild, "PART", 7)
    starts: list[int] = []
    feed_part = NativeProjector.feed_part

    def spied(self: NativeProjector, data: bytes, start: int = 0, limit: int = 0) -> Any:
        starts.append(start)
        return feed_part(self, data, start, limit)

    monkeypatch.setattr(NativeProjector, "feed_part", spied)
    outcome = await store.rebuild(tenant, _SPEC_PROJECTIONS, _always)
    assert outcome.failure is None and outcome.native
    _, after = await store.digests(tenant, use_cache=False)
    assert after == before
    assert len(starts) > 2 * 3 * 800 // 100 and starts.count(0) < len(starts) // 10


async def test_a_load_reads_the_next_windows_on_two_connections_in_log_order(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A load keeps READERS windows in flight, each on its own connection, and projects
    them in log order: every window once, consecutive windows on different readers."""
    from server.store import bulk_rebuild

    store = await _projected_past_the_tail(gql, pool, tenant)
    _, before = await store.digests(tenant, use_cache=False)
    monkeypatch.setattr(bulk_rebuild, "CHUNK", 100)
    read_window = bulk_rebuild.read_window
    reads: list[tuple[int, int]] = []

    async def spied(conn: asyncpg.Connection, *args: Any) -> Any:
        pid = conn.get_server_pid()
        window = await read_window(conn, *args)
        reads.append((args[2], pid))  # (low, backend), as each read ends
        return window

    monkeypatch.setattr(bulk_rebuild, "read_window", spied)
    outcome = await store.rebuild(tenant, _SPEC_PROJECTIONS, _always)
    assert outcome.failure is None
    _, after = await store.digests(tenant, use_cache=False)
    assert after == before
    loaded = sorted(reads)  # nothing was appended meanwhile: the swap reads no tail
    assert [low for low, _ in loaded] == list(range(0, 100 * len(loaded), 100))
    assert len({pid for _, pid in loaded}) == bulk_rebuild.READERS == 2
    assert all(a != b for (_, a), (_, b) in itertools.pairwise(loaded))


async def test_a_reader_whose_setting_cannot_be_reset_never_goes_back_to_the_pool(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The readers turn sorting off for their sessions and back on at the end; a reader
    whose reset fails is closed, and so is every reader after it, so that no connection of
    the pool keeps reading without sorts for whoever takes it next."""
    from server.core.native_projection import NativeProjector
    from server.store import bulk_rebuild

    await _projected_past_the_tail(gql, pool, tenant)
    monkeypatch.setattr(bulk_rebuild, "_READ_SORTING_AGAIN", "SELECT 1 / 0")
    async with pool.acquire() as conn:
        end = await bulk_rebuild.log_end(conn, tenant)

    async def keep(_: object) -> None:
        pass

    with pytest.raises(asyncpg.DivisionByZeroError):
        await bulk_rebuild.stream(pool, tenant, NativeProjector(tenant), 0, end, _always, keep)
    taken = [await pool.acquire() for _ in range(pool.get_max_size())]
    try:
        assert {await conn.fetchval("SHOW enable_sort") for conn in taken} == {"on"}
    finally:
        for conn in taken:
            await pool.release(conn)


async def test_a_rebuild_sends_asyncpg_no_type_to_learn(
    gql: GraphQLClient,
    pool: asyncpg.Pool,
    tenant: str,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """asyncpg has codecs of its own for text[] and oid[] only and learns any other type it
    meets with a catalog query, once per connection (~5 ms of PostgreSQL planning it): a
    REBUILD (shadows, index builds, swap, cursors) and its workflow part, on fresh
    connections, send none."""
    from server.store import bulk_rebuild

    await _projected_past_the_tail(gql, pool, tenant)
    monkeypatch.setattr(bulk_rebuild, "_layouts", {})  # learnt again, on a fresh connection
    monkeypatch.setattr(bulk_rebuild, "_indexes", {})
    learnt: list[str] = []

    async def watch(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(
            lambda query: learnt.append(query.query) if "typeinfo" in query.query else None
        )

    fresh = await asyncpg.create_pool(
        settings.require_database_url, min_size=1, max_size=8, init=watch
    )
    try:
        store = PostgresProjections(fresh, small_table=0)
        assert (await store.rebuild(tenant, _SPEC_PROJECTIONS, _always)).failure is None
        assert (await store.rebuild_workflows(tenant)).failure is None
        assert (await store.cursors(tenant))["context_graph"] == 3 * 800
    finally:
        await fresh.close()
    assert learnt == []
