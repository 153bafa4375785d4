"""Read use cases over the event log (never stale: the log is the source of truth)."""

from __future__ import annotations

from typing import Final

from server.core.envelope import StoredEvent
from server.core.errors import invalid_argument
from server.service.ports import EventLog, TraceOverview

MAX_QUERY_LIMIT: Final = 10_000


def check_first(first: int) -> int:
    if first < 0:
        raise invalid_argument(f"first must be >= 0, got {first}")
    if first > MAX_QUERY_LIMIT:
        raise invalid_argument(f"limit must be <= {MAX_QUERY_LIMIT}, got {first}")
    return first


def check_position(name: str, value: int, minimum: int = 0) -> int:
    if value < minimum:
        raise invalid_argument(f"{name} must be >= {minimum}, got {value}")
    return value


async def list_events(
    log: EventLog,
    tenant_id: str,
    *,
    after_log_seq: int,
    first: int,
    event_type: str | None = None,
    trace_id: str | None = None,
) -> tuple[list[StoredEvent], bool]:
    """A page of the tenant's log after a position, and whether more follow."""
    check_position("afterLogSeq", after_log_seq)
    check_first(first)
    rows = await log.list_events(
        tenant_id,
        after_log_seq=after_log_seq,
        event_type=event_type,
        trace_id=trace_id,
        limit=first + 1,
    )
    return rows[:first], len(rows) > first


async def trace_events(
    log: EventLog, tenant_id: str, trace_id: str, *, after_trace_seq: int, first: int
) -> tuple[list[StoredEvent], bool]:
    check_position("afterTraceSeq", after_trace_seq, minimum=-1)
    check_first(first)
    rows = await log.trace_events(
        tenant_id, trace_id, after_trace_seq=after_trace_seq, limit=first + 1
    )
    return rows[:first], len(rows) > first


async def trace_overview(log: EventLog, tenant_id: str, trace_id: str) -> TraceOverview | None:
    return await log.trace_overview(tenant_id, trace_id)
