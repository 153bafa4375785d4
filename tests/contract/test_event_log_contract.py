"""The EventLog port's contract, run against the in-memory twin and PostgreSQL alike."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from server.core.envelope import envelope_from_dict
from server.core.errors import BatchItemError
from server.core.validation import validate_envelope
from server.service.memory import InMemoryEventLog
from server.service.ports import EventLog
from server.store.event_log import PostgresEventLog
from tests.support import finished, golden_events, input_observed, new_tenant, started

pytestmark = pytest.mark.anyio
RECORDED = "2026-01-01T00:00:00.000000Z"


@pytest.fixture(params=["memory", "postgres", "postgres-locked"])
def log(request: pytest.FixtureRequest, pool: asyncpg.Pool) -> EventLog:
    if request.param == "memory":
        return InMemoryEventLog()
    # "locked" plans every group under the tenant's lock (the re-planning path).
    return PostgresEventLog(pool, plan_under_lock=request.param.endswith("locked"))


def batch(*events: dict[str, Any]) -> list[Any]:
    return [validate_envelope(envelope_from_dict(e)) for e in events]


async def test_positions_are_one_to_n_per_tenant(log: EventLog) -> None:
    a, b = new_tenant(), new_tenant()
    first = await log.append(a, batch(started("x"), started("y")), RECORDED)
    other = await log.append(b, batch(started("x")), RECORDED)
    more = await log.append(a, batch(input_observed("x", 1)), RECORDED)
    assert [p.event.log_seq for p in first + more] == [1, 2, 3]
    assert [p.event.log_seq for p in other] == [1]
    assert (await log.stats(a)).event_count == 3
    assert (await log.stats(a)).trace_count == 2
    assert (await log.stats(new_tenant())).last_log_seq == 0


async def test_replays_return_the_stored_event(log: EventLog) -> None:
    tenant = new_tenant()
    event = started("x")
    (first,) = await log.append(tenant, batch(event), RECORDED)
    (again,) = await log.append(tenant, batch(event), "2030-01-01T00:00:00.000000Z")
    assert again.replay and not first.replay
    assert again.event == first.event


async def test_a_failing_batch_writes_nothing(log: EventLog) -> None:
    tenant = new_tenant()
    with pytest.raises(BatchItemError) as caught:
        await log.append(tenant, batch(started("x"), input_observed("x", 2)), RECORDED)
    assert caught.value.index == 1
    assert (await log.stats(tenant)).last_log_seq == 0
    assert await log.list_events(tenant) == []


async def test_list_events_bounds_and_filters(log: EventLog) -> None:
    tenant = new_tenant()
    await log.append(
        tenant,
        batch(
            started("a"),
            started("b"),
            input_observed("a", 1),
            finished("b", 1),
            input_observed("a", 2),
        ),
        RECORDED,
    )
    seqs = lambda events: [e.log_seq for e in events]  # noqa: E731
    assert seqs(await log.list_events(tenant, after_log_seq=1, until_log_seq=3)) == [2, 3]
    assert seqs(await log.list_events(tenant, event_type="InputObserved")) == [3, 5]
    assert seqs(await log.list_events(tenant, trace_id="b")) == [2, 4]
    assert seqs(await log.list_events(tenant, after_log_seq=0, limit=2)) == [1, 2]


async def test_trace_reads(log: EventLog) -> None:
    tenant = new_tenant()
    await log.append(
        tenant,
        batch(started("a"), started("b"), input_observed("a", 1), finished("a", 2)),
        RECORDED,
    )
    events = await log.trace_events(tenant, "a", after_trace_seq=0)
    assert [e.trace_seq for e in events] == [1, 2]
    overview = await log.trace_overview(tenant, "a")
    assert overview is not None
    assert overview.event_count == 3 and overview.last_log_seq == 4
    assert overview.finished is not None and overview.finished.payload == {"outcome": "success"}
    assert await log.trace_overview(tenant, "missing") is None


async def test_stored_events_round_trip_exactly(log: EventLog) -> None:
    tenant = new_tenant()
    raw = golden_events("support")
    await log.append(tenant, batch(*raw), RECORDED)
    stored = await log.list_events(tenant)
    for original, event in zip(raw, stored, strict=True):
        assert event.payload == original["payload"]
        assert event.event_id == original["event_id"]
        assert event.source.subsystem == original["source"]["subsystem"]
        assert list(event.tags) == original["tags"]
        assert event.recorded_at == RECORDED


async def test_concurrent_appends_are_atomic_each_and_gapless_together(log: EventLog) -> None:
    """Group commit: neighbours in one write do not share each other's fate."""
    tenant = new_tenant()
    good = [batch(started(f"g{i}"), input_observed(f"g{i}", 1)) for i in range(6)]
    bad = batch(started("b"), input_observed("b", 5))  # a gap: refused as a whole
    results = await asyncio.gather(
        *(log.append(tenant, b, RECORDED) for b in [*good[:3], bad, *good[3:]]),
        return_exceptions=True,
    )
    assert isinstance(results[3], BatchItemError) and results[3].index == 1
    written = [r for r in results if not isinstance(r, BaseException)]
    positions = sorted(p.event.log_seq for planned in written for p in planned)
    assert positions == list(range(1, 13))
    assert await log.trace_overview(tenant, "b") is None
    for planned in written:
        assert planned[1].event.log_seq == planned[0].event.log_seq + 1
