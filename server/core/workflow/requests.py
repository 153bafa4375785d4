"""Opening reviews: ExceptionRequested and WorkflowReviewRequested."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from server.core.envelope import StoredEvent
from server.core.workflow.fields import (
    as_object,
    assignment_notice,
    event_action,
    policy_of,
    priority_or,
    target_trace,
    text_or_none,
)
from server.core.workflow.items import Step, TraceInfo, WorkflowItem
from server.core.workflow.templates import (
    CHANGES_REQUESTED,
    DEFAULT_ROLE,
    EXCEPTION_REVIEW,
    EXCEPTION_SLA_HOURS,
    INCIDENT_REVIEW,
    INCIDENT_SLA_HOURS,
    KINDS,
    REQUESTED,
    TEMPLATES,
    normalize_evidence,
    sla_due,
    workflow_id_of,
)


def exception_requested(
    items: Mapping[str, WorkflowItem],
    event: StoredEvent,
    payload: Mapping[str, Any],
    trace: TraceInfo | None,
) -> Step:
    exception_id = text_or_none(payload.get("exception_id"))
    if exception_id is None:
        return Step()
    trace_id = target_trace(event)
    workflow_id = workflow_id_of(trace_id, "exception", exception_id)
    reason = text_or_none(payload.get("reason"))
    policy_id, policy_version = policy_of(payload)
    metadata = {
        "evidence": normalize_evidence(payload.get("evidence"))
        if isinstance(payload.get("evidence"), list)
        else [],
        "exception_reason": reason,
        "policy": {"policy_id": policy_id, "policy_version": policy_version},
        "request_event_id": event.event_id,
        "workflow": trace.workflow if trace else "unknown",
    }
    existing = items.get(workflow_id)
    actor = (event.actor.actor_id, event.actor.actor_type)
    if existing is not None:
        # A repeated request updates the record; it re-opens only a review that asked for
        # changes (a resubmission), never one that was decided.
        status = REQUESTED if existing.status == CHANGES_REQUESTED else existing.status
        item = replace(
            existing,
            status=status,
            priority=priority_or(payload.get("priority"), existing.priority),
            current_reason=reason or existing.current_reason,
            last_action_type="re_requested",
            last_action_at=event.occurred_at,
            last_source_log_seq=event.log_seq,
            metadata=existing.metadata | metadata,
        )
        return Step(item, [event_action(item, event, "re_requested", actor, reason)])
    fallback = "urgent" if reason and "urgent" in reason.lower() else "high"
    item = WorkflowItem(
        workflow_id=workflow_id,
        trace_id=trace_id,
        kind=EXCEPTION_REVIEW,
        name=trace.workflow if trace else "unknown",
        subject_type="exception",
        subject_id=exception_id,
        status=REQUESTED,
        priority=priority_or(payload.get("priority"), fallback),
        title=trace.title if trace and trace.title else f"Workflow review for {trace_id}",
        policy_id=policy_id,
        policy_version=policy_version,
        requested_by_id=event.actor.actor_id,
        requested_by_type=event.actor.actor_type,
        assigned_account_id=None,
        assigned_role=DEFAULT_ROLE,
        requested_at=event.occurred_at,
        sla_due_at=sla_due(event.occurred_at, EXCEPTION_SLA_HOURS),
        resolved_at=None,
        last_action_type="requested",
        last_action_at=event.occurred_at,
        current_decision=None,
        current_reason=reason,
        approval_event_id=None,
        created_from_event_id=event.event_id,
        last_source_log_seq=event.log_seq,
        metadata=metadata,
    )
    return Step(
        item,
        [event_action(item, event, "requested", actor, reason)],
        [assignment_notice(item, event.occurred_at, "exception_requested", "assigned to")],
    )


def _sla_hours(value: Any, fallback: float) -> float:
    if isinstance(value, bool):
        return fallback
    if isinstance(value, int) and value > 0:
        return float(value)
    if isinstance(value, str):
        try:
            hours = float(value)
        except ValueError:
            return fallback
        return hours if hours > 0 else fallback
    return fallback


def review_requested(
    items: Mapping[str, WorkflowItem],
    event: StoredEvent,
    payload: Mapping[str, Any],
    trace: TraceInfo | None,
) -> Step:
    template_id = text_or_none(payload.get("template_id")) or "incident_triage"
    template = TEMPLATES.get(template_id)
    subject = as_object(payload.get("subject"))
    subject_type = text_or_none(subject.get("subject_type")) or "trace_review"
    subject_id = text_or_none(subject.get("subject_id")) or template_id
    trace_id = target_trace(event)
    workflow_id = workflow_id_of(trace_id, subject_type, subject_id)
    assignee = as_object(payload.get("assignee"))
    role = text_or_none(assignee.get("role")) or (
        template.reviewer_role if template else DEFAULT_ROLE
    )
    kind = payload.get("workflow_kind")
    kind = kind if kind in KINDS else INCIDENT_REVIEW
    default_hours = template.default_sla_hours if template else INCIDENT_SLA_HOURS
    hours = _sla_hours(payload.get("sla_hours"), default_hours)
    default_priority = template.default_priority if template else "high"
    policy_id, policy_version = policy_of(payload)
    title = text_or_none(payload.get("title")) or (
        f"Incident review for {trace.title}" if trace and trace.title else f"Review of {trace_id}"
    )
    reason = text_or_none(payload.get("reason"))
    metadata = {
        "entrypoint": "workflow_studio",
        "review_template": template.as_dict() if template else {"template_id": template_id},
        "simulation": as_object(payload.get("simulation")) or None,
        "source_event_id": event.event_id,
        "reason": reason,
    }
    actor = (event.actor.actor_id, event.actor.actor_type)
    existing = items.get(workflow_id)
    base = {
        "status": REQUESTED,
        "priority": priority_or(payload.get("priority"), default_priority),
        "title": title,
        "policy_id": policy_id,
        "policy_version": policy_version,
        "assigned_account_id": text_or_none(assignee.get("account_id")),
        "assigned_role": role,
        "requested_at": event.occurred_at,
        "sla_due_at": sla_due(event.occurred_at, hours),
        "resolved_at": None,
        "last_action_at": event.occurred_at,
        "current_decision": None,
        "current_reason": reason,
        "approval_event_id": None,
        "last_source_log_seq": event.log_seq,
    }
    if existing is not None:
        if existing.is_open:  # the same review asked for again: nothing new to open
            return Step()
        # A decided review asked for again: a new round on the same record.
        item = replace(existing, last_action_type="review_reopened", **base)  # type: ignore[arg-type]
        item = replace(item, metadata=existing.metadata | metadata)
        action = event_action(item, event, "review_reopened", actor, reason)
    else:
        item = WorkflowItem(
            workflow_id=workflow_id,
            trace_id=trace_id,
            kind=kind,
            name=template_id,
            subject_type=subject_type,
            subject_id=subject_id,
            requested_by_id=event.actor.actor_id,
            requested_by_type=event.actor.actor_type,
            last_action_type="incident_review_requested",
            created_from_event_id=event.event_id,
            metadata=metadata,
            **base,  # type: ignore[arg-type]
        )
        action = event_action(item, event, "incident_review_requested", actor, reason)
    return Step(
        item,
        [action],
        [assignment_notice(item, event.occurred_at, "review_requested", "assigned to")],
    )
