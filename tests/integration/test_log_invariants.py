"""Invariants 1-22 of spec/semantics.md §11, each through the GraphQL API on real PostgreSQL."""

from __future__ import annotations

import copy
from typing import Any

import asyncpg
import pytest

from server.core.canonical_json import payload_hash
from server.core.event_types import CORE_EVENT_TYPES
from tests.support import (
    GraphQLClient,
    derived_expectations,
    envelope,
    finished,
    input_observed,
    started,
)

pytestmark = pytest.mark.anyio

EVENTS_PAGE = """
query($after: Long!, $first: Int!) {
  events(afterLogSeq: $after, first: $first) {
    edges { node { logSeq eventId traceId traceSeq eventType } cursor }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def row_count(pool: asyncpg.Pool, tenant: str) -> int:
    async with pool.acquire() as conn:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM dg_event_log WHERE tenant_id = $1", tenant
        )
        return count


def only_error(result: dict[str, Any]) -> dict[str, Any]:
    assert result["events"] == []
    assert len(result["errors"]) == 1, result["errors"]
    error: dict[str, Any] = result["errors"][0]
    return error


async def test_invariant_01_exactly_the_known_event_types(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    assert len(CORE_EVENT_TYPES) == 10
    error = only_error(await gql.append([envelope("t", 0, "TraceBegun", {"x": "1"})]))
    assert error["code"] == "DG_ERR_SCHEMA_VIOLATION"
    assert error["message"] == "Unknown event_type 'TraceBegun'"
    assert await row_count(pool, tenant) == 0


async def test_invariant_02_payload_hash_is_canonical_and_envelope_free(gql: GraphQLClient) -> None:
    a = started("t-a")
    b = started("t-b", source={"producer_id": "other", "system": "x", "subsystem": "y"})
    b["payload"] = dict(reversed(list(b["payload"].items())))
    b["payload"]["title"] = a["payload"]["title"]
    stored = await gql.append_ok([a, b])
    assert stored[0]["payloadHash"] == stored[1]["payloadHash"] == payload_hash(a["payload"])


async def test_invariant_03_ssot_example_hash_through_the_api(gql: GraphQLClient) -> None:
    ssot = derived_expectations()["ssot_example_payload_hash"]
    event = envelope("t-ssot", 1, "PolicyEvaluated", ssot["payload"])
    stored = await gql.append_ok([started("t-ssot"), event])
    assert stored[1]["payloadHash"] == ssot["expected_from_SPEC_v1.0.3_section_2.2"]


@pytest.mark.parametrize("value", [0.0, 2.5, -1e-9])
async def test_invariant_04_any_float_is_a_schema_violation(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str, value: float
) -> None:
    event = started("t-f")
    event["payload"]["context"] = {"deep": [{"x": value}]}
    error = only_error(await gql.append([event]))
    assert error["code"] == "DG_ERR_SCHEMA_VIOLATION"
    assert error["message"].startswith("Float found at '$.context.deep[0].x'")
    assert await row_count(pool, tenant) == 0


async def test_invariant_05_stored_payload_keeps_raw_text(gql: GraphQLClient) -> None:
    event = started("t-u")
    event["payload"]["title"] = "Zürich renewal 😀"
    stored = await gql.append_ok([event])
    assert stored[0]["payloadHash"] == payload_hash(event["payload"])
    data = await gql.data(
        '{ trace(traceId: "t-u") { title events { edges { node { payload } } } } }'
    )
    assert data["trace"]["title"] == "Zürich renewal 😀"


@pytest.mark.parametrize(
    ("key", "ok"),
    [("", False), ("a\u0000b", False), ("k" * 200, True), ("k" * 201, False), ("  ", True)],
)
async def test_invariant_06_idempotency_key_rules(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str, key: str, ok: bool
) -> None:
    result = await gql.append([started("t-k", idempotency_key=key)])
    if ok:
        assert result["errors"] == []
        assert await row_count(pool, tenant) == 1
    else:
        assert only_error(result)["code"] == "DG_ERR_INVALID_ARGUMENT"
        assert await row_count(pool, tenant) == 0


async def test_invariant_07_required_keys_name_their_path(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    event = started("t-r")
    event["payload"]["primary_entity"]["entity_id"] = ""
    error = only_error(await gql.append([event]))
    assert error == {
        "code": "DG_ERR_SCHEMA_VIOLATION",
        "message": "Missing or invalid string for '$.primary_entity.entity_id'",
        "index": 0,
        "field": None,
    }
    event["payload"]["primary_entity"] = ["not", "an", "object"]
    error = only_error(await gql.append([event]))
    assert error["message"] == "Missing or invalid object for '$.primary_entity'"
    assert await row_count(pool, tenant) == 0


async def test_invariant_08_pii_guard_scope(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    refused = [
        started("t-p", tags=["ok", "Bearer abc"]),
        started("t-p", actor={"actor_type": "agent", "actor_id": "AKIAXYZ"}),
        started("t-p", correlation_id="x-secret=1"),
    ]
    for event in refused:
        error = only_error(await gql.append([event]))
        assert error["code"] == "DG_ERR_PII_POLICY_VIOLATION"
    # ids, type and time are not scanned
    ok = started("token=trace", event_id="sk-event", occurred_at="AKIA", idempotency_key="k")
    ok["payload"]["title"] = "clean title"
    await gql.append_ok([ok])
    assert await row_count(pool, tenant) == 1


async def test_invariant_09_validation_precedes_idempotent_match(gql: GraphQLClient) -> None:
    event = started("t-v")
    await gql.append_ok([event])
    replay = copy.deepcopy(event)
    replay["payload"]["note"] = 1.5  # same key; would be a conflict, but the float wins
    assert only_error(await gql.append([replay]))["code"] == "DG_ERR_SCHEMA_VIOLATION"
    replay["payload"]["note"] = "password=x"
    assert only_error(await gql.append([replay]))["code"] == "DG_ERR_PII_POLICY_VIOLATION"


async def test_invariant_10_same_envelope_twice_is_one_row(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    event = started("t-i")
    first = (await gql.append_ok([event]))[0]
    again = (await gql.append_ok([event]))[0]
    assert (again["logSeq"], again["eventId"]) == (first["logSeq"], first["eventId"])
    assert (first["idempotentReplay"], again["idempotentReplay"]) == (False, True)
    assert again["recordedAt"] == first["recordedAt"]
    assert await row_count(pool, tenant) == 1


async def test_invariant_11_key_reuse_with_another_payload(gql: GraphQLClient) -> None:
    event = started("t-c")
    await gql.append_ok([event])
    changed = copy.deepcopy(event)
    changed["payload"]["title"] = "another"
    error = only_error(await gql.append([changed]))
    assert error["code"] == "DG_ERR_IDEMPOTENCY_CONFLICT"
    assert error["message"] == (
        f"Idempotency key '{event['idempotency_key']}' already used with different payload"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("trace_id", "t-other"),
        ("event_type", "TraceFinished"),
        ("source", {"producer_id": "test-producer", "system": "elsewhere", "subsystem": None}),
        ("actor", {"actor_type": "person", "actor_id": "agent-7"}),
        ("correlation_id", "corr-1"),
        ("causation_event_id", "cause-1"),
        ("schema_version", 2),
        ("tags", ["x"]),
    ],
)
async def test_invariant_12_key_reuse_with_other_metadata(
    gql: GraphQLClient, field: str, value: Any
) -> None:
    event = started("t-m")
    event["payload"]["outcome"] = "success"  # valid as TraceStarted and as TraceFinished
    await gql.append_ok([event])
    changed = copy.deepcopy(event) | {field: value}
    error = only_error(await gql.append([changed]))
    assert error["code"] == "DG_ERR_IDEMPOTENCY_CONFLICT"
    assert error["message"].endswith(f"already used with different metadata: {field}")


async def test_invariant_12_all_mismatches_listed_in_order(gql: GraphQLClient) -> None:
    event = started("t-m2")
    await gql.append_ok([event])
    changed = event | {"tags": ["b"], "correlation_id": "c", "trace_id": "t-z"}
    error = only_error(await gql.append([changed]))
    assert error["message"].endswith("different metadata: trace_id, correlation_id, tags")


async def test_invariant_13_seq_id_and_time_are_not_compared(gql: GraphQLClient) -> None:
    first = started("t-n")
    stored = (await gql.append_ok([first]))[0]
    retry = first | {"trace_seq": 5, "event_id": "fresh-id", "occurred_at": "2030-01-01T00:00:00Z"}
    again = (await gql.append_ok([retry]))[0]
    assert again["eventId"] == stored["eventId"] and again["traceSeq"] == 0
    assert again["idempotentReplay"] is True


async def test_invariant_14_key_scope_includes_the_producer(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    a = started("t-s1", idempotency_key="same")
    b = started(
        "t-s2",
        idempotency_key="same",
        source={"producer_id": "another", "system": "tests", "subsystem": None},
    )
    stored = await gql.append_ok([a, b])
    assert [e["idempotentReplay"] for e in stored] == [False, False]
    assert await row_count(pool, tenant) == 2


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([input_observed("t-q", 0)], "First event must be TraceStarted, got InputObserved"),
        ([input_observed("t-q", 1)], "Expected trace_seq 0, got 1"),
        ([started("t-q") | {"trace_seq": 1}], "Expected trace_seq 0, got 1"),
        (
            [started("t-q"), started("t-q", idempotency_key="k2") | {"trace_seq": 1}],
            "TraceStarted must have trace_seq=0",
        ),
    ],
)
async def test_invariant_15_first_event_rules_and_precedence(
    gql: GraphQLClient, events: list[dict[str, Any]], message: str
) -> None:
    error = only_error(await gql.append(events))
    assert (error["code"], error["message"]) == ("DG_ERR_EVENT_SEQUENCE_INVALID", message)
    assert error["index"] == len(events) - 1


async def test_invariant_16_trace_seq_is_contiguous_per_trace(gql: GraphQLClient) -> None:
    await gql.append_ok([started("t-1"), started("t-2"), input_observed("t-1", 1)])
    gap = only_error(await gql.append([input_observed("t-1", 3)]))
    assert gap["message"] == "Expected trace_seq 2, got 3"
    repeat = only_error(await gql.append([input_observed("t-1", 1, idempotency_key="again")]))
    assert repeat["message"] == "Expected trace_seq 2, got 1"
    await gql.append_ok([input_observed("t-2", 1), input_observed("t-1", 2)])


async def test_invariant_17_finished_traces_are_locked(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    done = [started("t-l"), input_observed("t-l", 1), finished("t-l", 2)]
    await gql.append_ok(done)
    error = only_error(await gql.append([input_observed("t-l", 3)]))
    assert error == {
        "code": "DG_ERR_CONFLICT",
        "message": "Trace 't-l' is already finished",
        "index": 0,
        "field": None,
    }
    second_finish = only_error(await gql.append([finished("t-l", 3, idempotency_key="f2")]))
    assert second_finish["code"] == "DG_ERR_CONFLICT"
    # an idempotent replay of a stored event is still answered
    replayed = await gql.append_ok([done[1]])
    assert replayed[0]["idempotentReplay"] is True
    # and the database refuses a direct insert behind the application's back
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.PostgresError, match="trace_finished"):
            await conn.execute(
                """INSERT INTO dg_event_log (tenant_id, log_seq, event_id, trace_id, trace_seq,
                   event_type, occurred_at, recorded_at, producer_id, system, actor_type,
                   actor_id, idempotency_key, schema_version, payload_json, payload_hash)
                   VALUES ($1, 99, 'x', 't-l', 3, 'InputObserved', 'now', 'now', 'p', 's',
                   'agent', 'a', 'direct', 1, '{}', 'sha256:0')""",
                tenant,
            )
    assert await row_count(pool, tenant) == 3


async def test_invariant_18_idempotency_before_the_finish_lock(gql: GraphQLClient) -> None:
    await gql.append_ok([started("t-o"), finished("t-o", 1, idempotency_key="finish:t-o")])
    again = finished("t-o", 1, outcome="failure", idempotency_key="finish:t-o")
    error = only_error(await gql.append([again]))
    assert error["code"] == "DG_ERR_IDEMPOTENCY_CONFLICT"


async def test_invariant_19_log_seq_is_gapless_and_survives_restarts(
    gql: GraphQLClient, settings: Any, admin_token: str, tenant: str
) -> None:
    await gql.append_ok([started("t-g1")])
    failed = await gql.append([input_observed("t-g1", 7)])  # refused: must not burn a position
    assert failed["errors"]
    await gql.append_ok([input_observed("t-g1", 1), started("t-g2")])
    # a brand-new application instance (a restart) continues the same sequence
    from httpx import AsyncClient
    from httpx_ws.transport import ASGIWebSocketTransport

    from server.app import create_app

    restarted = create_app(settings)
    async with (
        restarted.lifespan(),
        AsyncClient(
            transport=ASGIWebSocketTransport(app=restarted), base_url="http://test"
        ) as http,
    ):
        other = GraphQLClient(http, admin_token, tenant)
        await other.append_ok([input_observed("t-g2", 1)])
        data = await other.data(EVENTS_PAGE, {"after": 0, "first": 100})
    positions = [edge["node"]["logSeq"] for edge in data["events"]["edges"]]
    assert positions == [1, 2, 3, 4]


async def test_invariant_20_empty_tenant_and_unknown_trace(gql: GraphQLClient) -> None:
    data = await gql.data(EVENTS_PAGE, {"after": 0, "first": 10})
    assert data["events"]["edges"] == []
    assert data["events"]["pageInfo"] == {"hasNextPage": False, "endCursor": None}
    assert (await gql.data('{ trace(traceId: "nope") { traceId } }'))["trace"] is None
    # a fresh trace starts at 0
    await gql.append_ok([started("nope")])


async def test_invariant_21_orderings_and_exclusive_bounds(gql: GraphQLClient) -> None:
    await gql.append_ok(
        [
            started("a"),
            started("b"),
            input_observed("a", 1),
            input_observed("b", 1),
            input_observed("a", 2),
        ]
    )
    page = await gql.data(EVENTS_PAGE, {"after": 2, "first": 2})
    assert [e["node"]["logSeq"] for e in page["events"]["edges"]] == [3, 4]
    trace = await gql.data(
        '{ trace(traceId: "a") { events(afterTraceSeq: 0) { edges { node { traceSeq logSeq } } } } }'
    )
    assert [
        (e["node"]["traceSeq"], e["node"]["logSeq"]) for e in trace["trace"]["events"]["edges"]
    ] == [(1, 3), (2, 5)]


async def test_invariant_22_paging_yields_every_event_once_in_order(gql: GraphQLClient) -> None:
    events = [started("p")] + [input_observed("p", i) for i in range(1, 23)]
    await gql.append_ok(events)
    seen: list[int] = []
    cursor: str | None = None
    while True:
        query = """query($after: String) { events(first: 5, after: $after) {
                     edges { node { logSeq } } pageInfo { hasNextPage endCursor } } }"""
        page = (await gql.data(query, {"after": cursor}))["events"]
        seen += [edge["node"]["logSeq"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        cursor = page["pageInfo"]["endCursor"]
    assert seen == list(range(1, 24))
