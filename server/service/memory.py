"""In-memory twin of the EventLog port, for unit and contract tests of pure logic only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from server.core.append_plan import LogState, PlannedEvent, TraceHead, plan_batch
from server.core.envelope import StoredEvent
from server.core.event_types import TRACE_FINISHED, TRACE_STARTED
from server.core.validation import ValidatedEvent
from server.service.ports import LogStats, TraceOverview


@dataclass
class _TenantLog:
    events: list[StoredEvent] = field(default_factory=list)


class InMemoryEventLog:
    def __init__(self) -> None:
        self._tenants: dict[str, _TenantLog] = {}

    def _log(self, tenant_id: str) -> _TenantLog:
        return self._tenants.setdefault(tenant_id, _TenantLog())

    async def append(
        self, tenant_id: str, batch: Sequence[ValidatedEvent], recorded_at: str
    ) -> list[PlannedEvent]:
        log = self._log(tenant_id)
        traces = {v.envelope.trace_id for v in batch}
        heads: dict[str, TraceHead] = {}
        for event in log.events:
            if event.trace_id in traces:
                head = heads.get(event.trace_id, TraceHead())
                heads[event.trace_id] = TraceHead(
                    max(head.next_seq, event.trace_seq + 1),
                    head.finished or event.event_type == TRACE_FINISHED,
                )
        state = LogState(
            last_log_seq=len(log.events),
            by_scope={e.idempotency_scope: e for e in log.events},
            heads=heads,
            existing_event_ids=frozenset(e.event_id for e in log.events),
        )
        planned = plan_batch(batch, state, recorded_at)
        log.events.extend(p.event for p in planned if not p.replay)
        return planned

    async def stats(self, tenant_id: str) -> LogStats:
        events = self._log(tenant_id).events
        started = sum(1 for e in events if e.event_type == TRACE_STARTED)
        return LogStats(last_log_seq=len(events), trace_count=started)

    async def list_events(
        self,
        tenant_id: str,
        *,
        after_log_seq: int = 0,
        until_log_seq: int | None = None,
        event_type: str | None = None,
        trace_id: str | None = None,
        limit: int | None = None,
    ) -> list[StoredEvent]:
        selected = [
            e
            for e in self._log(tenant_id).events
            if e.log_seq > after_log_seq
            and (until_log_seq is None or e.log_seq <= until_log_seq)
            and (event_type is None or e.event_type == event_type)
            and (trace_id is None or e.trace_id == trace_id)
        ]
        return selected if limit is None else selected[:limit]

    async def trace_events(
        self,
        tenant_id: str,
        trace_id: str,
        *,
        after_trace_seq: int = -1,
        limit: int | None = None,
    ) -> list[StoredEvent]:
        selected = sorted(
            (
                e
                for e in self._log(tenant_id).events
                if e.trace_id == trace_id and e.trace_seq > after_trace_seq
            ),
            key=lambda e: e.trace_seq,
        )
        return selected if limit is None else selected[:limit]

    async def trace_overview(self, tenant_id: str, trace_id: str) -> TraceOverview | None:
        events = await self.trace_events(tenant_id, trace_id)
        if not events:
            return None
        finished = next((e for e in events if e.event_type == TRACE_FINISHED), None)
        return TraceOverview(events[0], finished, len(events), events[-1].log_seq)
