"""Folding decision events and journal entries into workflow state, and its digest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from server.core.digest import DigestWriter
from server.core.envelope import StoredEvent
from server.core.event_types import (
    APPROVAL_RECORDED,
    EXCEPTION_REQUESTED,
    WORKFLOW_REVIEW_REQUESTED,
)
from server.core.workflow.actions import apply_entry
from server.core.workflow.decisions import approval_recorded
from server.core.workflow.fields import as_object, target_trace, text_or_none
from server.core.workflow.items import (
    ActionRow,
    JournalEntry,
    NotificationRow,
    Step,
    TraceInfo,
    WorkflowItem,
)
from server.core.workflow.requests import exception_requested, review_requested
from server.core.workflow.templates import workflow_id_of


def apply_event(
    items: Mapping[str, WorkflowItem], event: StoredEvent, trace: TraceInfo | None
) -> Step:
    """A decision event's effect; other events (and malformed ones) change nothing."""
    payload = event.payload if isinstance(event.payload, dict) else {}
    if event.event_type == EXCEPTION_REQUESTED:
        return exception_requested(items, event, payload, trace)
    if event.event_type == WORKFLOW_REVIEW_REQUESTED:
        return review_requested(items, event, payload, trace)
    if event.event_type == APPROVAL_RECORDED:
        return approval_recorded(items, event, payload, trace)
    return Step()


def decision_targets(event: StoredEvent) -> str | None:
    """The workflow a decision event may touch (so a batch can load it first)."""
    payload = event.payload if isinstance(event.payload, dict) else {}
    trace_id = target_trace(event)
    if event.event_type == EXCEPTION_REQUESTED:
        exception_id = text_or_none(payload.get("exception_id"))
        return workflow_id_of(trace_id, "exception", exception_id) if exception_id else None
    subject = as_object(payload.get("subject"))
    if event.event_type == WORKFLOW_REVIEW_REQUESTED:
        template_id = text_or_none(payload.get("template_id")) or "incident_triage"
        return workflow_id_of(
            trace_id,
            text_or_none(subject.get("subject_type")) or "trace_review",
            text_or_none(subject.get("subject_id")) or template_id,
        )
    if event.event_type == APPROVAL_RECORDED:
        subject_type, subject_id = (
            text_or_none(subject.get("subject_type")),
            text_or_none(subject.get("subject_id")),
        )
        if subject_type is None or subject_id is None:
            return None
        return (
            subject_id
            if subject_type == "override"
            else workflow_id_of(trace_id, subject_type, subject_id)
        )
    return None


DECISION_EVENT_TYPES: Final = (EXCEPTION_REQUESTED, WORKFLOW_REVIEW_REQUESTED, APPROVAL_RECORDED)


@dataclass
class FoldResult:
    """Every change a batch of inputs made, in application order."""

    items: dict[str, WorkflowItem] = field(default_factory=dict)
    actions: list[ActionRow] = field(default_factory=list)
    notifications: list[NotificationRow] = field(default_factory=list)


def fold(
    items: Mapping[str, WorkflowItem],
    events: Sequence[StoredEvent],
    entries: Sequence[JournalEntry],
    traces: Mapping[str, TraceInfo],
) -> FoldResult:
    """Apply decision events and journal entries merged by position (events first at a
    position: an entry recorded at position p was taken after event p was applied)."""
    state = dict(items)
    result = FoldResult()
    merged: list[tuple[int, int, int, StoredEvent | JournalEntry]] = [
        (e.log_seq, 0, i, e) for i, e in enumerate(events)
    ] + [(j.position, 1, j.journal_id, j) for j in entries]
    merged.sort(key=lambda m: (m[0], m[1], m[2]))
    for _, _, _, source in merged:
        if isinstance(source, JournalEntry):
            item = state.get(source.workflow_id)
            if item is None:
                continue  # cannot happen for entries recorded against a live item
            step = apply_entry(item, source)
        else:
            step = apply_event(state, source, traces.get(target_trace(source)))
        if step.item is not None:
            state[step.item.workflow_id] = step.item
            result.items[step.item.workflow_id] = step.item
        result.actions += step.actions
        result.notifications += step.notifications
    return result


def projection_digest(items: Sequence[WorkflowItem], actions: Sequence[ActionRow]) -> str:
    """The workflow projection's digest: C3 of {"actions": [in order], "items": [by id]}."""
    writer = DigestWriter()
    writer.text('{"actions":[')
    for action in actions:
        writer.element(action.fragment())
    writer.text('],"items":[')
    for item in sorted(items, key=lambda i: i.workflow_id):
        writer.element(item.fragment())
    writer.text("]}")
    return writer.hexdigest()


def rebuild_in_memory(
    events: Sequence[StoredEvent], entries: Sequence[JournalEntry] = ()
) -> tuple[FoldResult, str]:
    """The whole projection from a tenant's log (in order) and journal: the oracle the
    PostgreSQL projection is tested against, and what an audit bundle is checked with."""
    traces = {}
    for event in events:
        if event.trace_seq == 0 and isinstance(event.payload, dict):
            title, workflow = event.payload.get("title"), event.payload.get("workflow")
            traces[event.trace_id] = TraceInfo(
                title=title if isinstance(title, str) else "",
                workflow=workflow if isinstance(workflow, str) and workflow else "unknown",
            )
    decisions = [e for e in events if e.event_type in DECISION_EVENT_TYPES]
    result = fold({}, decisions, entries, traces)
    return result, projection_digest(list(result.items.values()), result.actions)
