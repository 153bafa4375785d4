"""The PostgreSQL log's write paths: a plan made outside the lock, then shifted or re-planned."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from server.core.envelope import envelope_from_dict
from server.core.errors import BatchItemError
from server.core.validation import validate_envelope
from server.store import event_log
from server.store.event_log import PostgresEventLog
from tests.support import input_observed, new_tenant, started

pytestmark = pytest.mark.anyio
RECORDED = "2026-01-01T00:00:00.000000Z"


def batch(*events: dict[str, Any]) -> list[Any]:
    return [validate_envelope(envelope_from_dict(e)) for e in events]


async def stale_plan(
    log: PostgresEventLog, pool: asyncpg.Pool, tenant: str, events: list[Any]
) -> Any:
    request = event_log._Request(events, RECORDED, asyncio.get_running_loop().create_future())
    async with pool.acquire() as conn:
        state, _ = await log._read_state(conn, tenant, events)
    return request, event_log._plan_group([request], state)


async def positions(pool: asyncpg.Pool, tenant: str) -> list[tuple[int, str, int]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT log_seq, trace_id, trace_seq FROM dg_event_log WHERE tenant_id = $1 "
            "ORDER BY log_seq",
            tenant,
        )
    return [(r["log_seq"], r["trace_id"], r["trace_seq"]) for r in rows]


async def test_an_unrelated_write_in_between_only_shifts_positions(pool: asyncpg.Pool) -> None:
    tenant, log, other = new_tenant(), PostgresEventLog(pool), PostgresEventLog(pool)
    await log.append(tenant, batch(started("a")), RECORDED)
    mine = batch(input_observed("a", 1), input_observed("a", 2))
    request, plan = await stale_plan(log, pool, tenant, mine)
    await other.append(tenant, batch(started("b"), input_observed("b", 1)), RECORDED)
    async with pool.acquire() as conn:
        written = await log._write_planned(conn, tenant, [request], mine, plan)
    assert [p.event.log_seq for _, planned in written.accepted for p in planned] == [4, 5]
    assert await positions(pool, tenant) == [
        (1, "a", 0),
        (2, "b", 0),
        (3, "b", 1),
        (4, "a", 1),
        (5, "a", 2),
    ]


async def test_a_write_to_the_same_trace_in_between_forces_a_new_plan(pool: asyncpg.Pool) -> None:
    tenant, log, other = new_tenant(), PostgresEventLog(pool), PostgresEventLog(pool)
    await log.append(tenant, batch(started("a")), RECORDED)
    mine = batch(input_observed("a", 1, idempotency_key="mine"))
    request, plan = await stale_plan(log, pool, tenant, mine)
    await other.append(tenant, batch(input_observed("a", 1, idempotency_key="theirs")), RECORDED)
    async with pool.acquire() as conn:
        replanned = await log._write_planned(conn, tenant, [request], mine, plan)
    assert replanned.accepted == []
    ((_, error),) = replanned.refused
    assert isinstance(error, BatchItemError) and error.message == "Expected trace_seq 2, got 1"
    assert await positions(pool, tenant) == [(1, "a", 0), (2, "a", 1)]


async def test_a_replay_of_what_was_written_in_between_is_recognised(pool: asyncpg.Pool) -> None:
    tenant, log, other = new_tenant(), PostgresEventLog(pool), PostgresEventLog(pool)
    mine = batch(started("a"))
    request, plan = await stale_plan(log, pool, tenant, mine)
    await other.append(tenant, mine, RECORDED)  # the very same event, through another replica
    async with pool.acquire() as conn:
        replanned = await log._write_planned(conn, tenant, [request], mine, plan)
    ((_, planned),) = replanned.accepted
    assert planned[0].replay and planned[0].event.log_seq == 1
    assert await positions(pool, tenant) == [(1, "a", 0)]


# What another writer commits between planning and writing, clashing with the plan on
# a trace, an event id or an idempotency scope (each probed by its own row of p_probes).
CLASHES = {
    "trace": (input_observed("a", 1), input_observed("a", 1, idempotency_key="x"), "a"),
    "event id": (started("b", event_id="shared"), started("c", event_id="shared"), "c"),
    "idempotency scope": (
        started("b", idempotency_key="k"),
        started("c", idempotency_key="k"),
        "c",
    ),
}


@pytest.mark.parametrize("clash", CLASHES)
async def test_the_append_function_refuses_a_clashing_plan_and_writes_nothing(
    pool: asyncpg.Pool, clash: str
) -> None:
    tenant, log, other = new_tenant(), PostgresEventLog(pool), PostgresEventLog(pool)
    await log.append(tenant, batch(started("a")), RECORDED)
    planned, meanwhile, meanwhile_trace = CLASHES[clash]
    _, plan = await stale_plan(log, pool, tenant, batch(planned))
    await other.append(tenant, batch(meanwhile), RECORDED)
    async with pool.acquire() as conn:
        position = await conn.fetchval(
            event_log._APPEND,
            tenant,
            plan.from_position,
            plan.started_traces,
            *plan.row_arguments(),
            *plan.probe_keys(),
        )
        last = await conn.fetchval(
            "SELECT last_log_seq FROM dg_tenants WHERE tenant_id = $1", tenant
        )
    assert position is None  # what the plan depends on moved since it was made
    assert last == 2
    written = await positions(pool, tenant)
    assert written == [(1, "a", 0), (2, meanwhile_trace, meanwhile["trace_seq"])]


# dg_append (migration 3) takes every column as its own array; the previous release calls
# it, so it must keep working while servers are upgraded one by one.
PREVIOUS_APPEND = "SELECT dg_append(" + ", ".join(f"${n}" for n in range(1, 27)) + ")"


@pytest.mark.parametrize("function", ["dg_append_matrix", "dg_append"])
async def test_the_append_function_writes_an_unmoved_plan_as_planned(
    pool: asyncpg.Pool, function: str
) -> None:
    tenant, log = new_tenant(), PostgresEventLog(pool)
    await log.append(tenant, batch(started("a")), RECORDED)
    mine = batch(input_observed("a", 1), input_observed("a", 2))
    _, plan = await stale_plan(log, pool, tenant, mine)
    traces, (producers, keys, event_ids) = plan.probe_keys()
    async with pool.acquire() as conn:
        if function == "dg_append":
            arguments = [*plan.columns, traces, event_ids, producers, keys]
            position = await conn.fetchval(PREVIOUS_APPEND, tenant, plan.from_position,
                                           plan.started_traces, *arguments)  # fmt: skip
        else:
            position = await conn.fetchval(
                event_log._APPEND,
                tenant,
                plan.from_position,
                plan.started_traces,
                *plan.row_arguments(),
                traces,
                [producers, keys, event_ids],
            )
    assert position == plan.from_position == 1
    assert await positions(pool, tenant) == [(1, "a", 0), (2, "a", 1), (3, "a", 2)]
