"""Trace summary projection (spec/semantics.md §6.4).

Only TraceStarted creates a row and only TraceFinished updates it, so `event_count` is 1
for an open trace and 2 for a finished one (spec §12 item 1). The golden digests depend
on that quirk; the true number of events is served from the log instead.
"""

from __future__ import annotations

from typing import Any

from msgspec import structs

from server.core.canonical_json import c3_string
from server.core.envelope import ProjectedEvent
from server.core.event_types import TRACE_FINISHED, TRACE_STARTED
from server.core.value import Value


class SummaryRow(Value, frozen=True):
    trace_id: str
    workflow: str
    title: str
    primary_entity_type: str | None
    primary_entity_id: str | None
    outcome: str | None
    started_at: str
    finished_at: str | None
    event_count: int
    last_log_seq: int

    def digest_dict(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "workflow": self.workflow,
            "title": self.title,
            "primary_entity_type": self.primary_entity_type,
            "primary_entity_id": self.primary_entity_id,
            "outcome": self.outcome,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "event_count": self.event_count,
            "last_log_seq": self.last_log_seq,
        }

    def fragment(self) -> str:
        return (
            f'{{"event_count":{self.event_count},"finished_at":{c3_string(self.finished_at)},'
            f'"last_log_seq":{self.last_log_seq},"outcome":{c3_string(self.outcome)},'
            f'"primary_entity_id":{c3_string(self.primary_entity_id)},'
            f'"primary_entity_type":{c3_string(self.primary_entity_type)},'
            f'"started_at":{c3_string(self.started_at)},"title":{c3_string(self.title)},'
            f'"trace_id":{c3_string(self.trace_id)},"workflow":{c3_string(self.workflow)}}}'
        )


def touches_summary(event_type: str) -> bool:
    return event_type in (TRACE_STARTED, TRACE_FINISHED)


def apply_summary(row: SummaryRow | None, event: ProjectedEvent) -> SummaryRow | None:
    """The row after `event`; None when the event leaves the summary untouched."""
    payload: dict[str, Any] = event.payload if isinstance(event.payload, dict) else {}
    if event.event_type == TRACE_STARTED:
        if row is not None:  # unreachable through append validation; mirrors the upsert
            return structs.replace(row, event_count=row.event_count + 1, last_log_seq=event.log_seq)
        entity = payload.get("primary_entity")
        entity = entity if isinstance(entity, dict) and entity else None
        return SummaryRow(
            trace_id=event.trace_id,
            workflow=payload.get("workflow") or "",
            title=payload.get("title") or "",
            primary_entity_type=entity.get("entity_type") if entity else None,
            primary_entity_id=entity.get("entity_id") if entity else None,
            outcome=None,
            started_at=event.occurred_at,
            finished_at=None,
            event_count=1,
            last_log_seq=event.log_seq,
        )
    if event.event_type == TRACE_FINISHED and row is not None:
        return structs.replace(
            row,
            outcome=payload.get("outcome") or "success",
            finished_at=event.occurred_at,
            event_count=row.event_count + 1,
            last_log_seq=event.log_seq,
        )
    return None
