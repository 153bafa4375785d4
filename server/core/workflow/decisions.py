"""Closing reviews: ApprovalRecorded (approve, reject, override)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final

from server.core.envelope import StoredEvent
from server.core.workflow.fields import as_object, event_action, target_trace, text_or_none
from server.core.workflow.items import NotificationRow, Step, TraceInfo, WorkflowItem
from server.core.workflow.templates import (
    APPROVE,
    APPROVED,
    DEFAULT_ROLE,
    EXCEPTION_REVIEW,
    OVERRIDDEN,
    OVERRIDE,
    OVERRIDE_REVIEW,
    REJECT,
    REJECTED,
    REQUESTED,
    normalize_evidence,
    workflow_id_of,
)

_DECISIONS: Final = {
    "approved": APPROVED,
    "approve": APPROVED,
    "rejected": REJECTED,
    "reject": REJECTED,
    "denied": REJECTED,
    "deny": REJECTED,
}


def approval_recorded(
    items: Mapping[str, WorkflowItem],
    event: StoredEvent,
    payload: Mapping[str, Any],
    trace: TraceInfo | None,
) -> Step:
    subject = as_object(payload.get("subject"))
    subject_type = text_or_none(subject.get("subject_type"))
    subject_id = text_or_none(subject.get("subject_id"))
    decision = _DECISIONS.get(str(payload.get("decision", "")).lower())
    if subject_type is None or subject_id is None or decision is None:
        return Step()
    override = subject_type == "override"
    trace_id = target_trace(event)
    workflow_id = subject_id if override else workflow_id_of(trace_id, subject_type, subject_id)
    approver = as_object(payload.get("approver"))
    actor = (
        text_or_none(approver.get("actor_id")) or event.actor.actor_id,
        text_or_none(approver.get("actor_type")) or event.actor.actor_type,
    )
    reason = text_or_none(payload.get("reason"))
    existing = items.get(workflow_id)
    if existing is None:
        existing = WorkflowItem(
            workflow_id=workflow_id,
            trace_id=trace_id,
            kind=OVERRIDE_REVIEW if override else EXCEPTION_REVIEW,
            name=trace.workflow if trace else "unknown",
            subject_type=subject_type,
            subject_id=subject_id,
            status=REQUESTED,
            priority="high",
            title=trace.title if trace and trace.title else f"Workflow review for {trace_id}",
            policy_id=None,
            policy_version=None,
            requested_by_id=actor[0],
            requested_by_type=actor[1],
            assigned_account_id=None,
            assigned_role=DEFAULT_ROLE,
            requested_at=event.occurred_at,
            sla_due_at=None,
            resolved_at=None,
            last_action_type="requested",
            last_action_at=event.occurred_at,
            current_decision=None,
            current_reason=None,
            approval_event_id=None,
            created_from_event_id=event.event_id,
            last_source_log_seq=event.log_seq,
        )
    if override:
        status, label, action_type = OVERRIDDEN, f"override_{decision}", OVERRIDE
    else:
        status, label = decision, decision
        action_type = APPROVE if decision == APPROVED else REJECT
    item = replace(
        existing,
        status=status,
        resolved_at=event.occurred_at,
        last_action_type=action_type,
        last_action_at=event.occurred_at,
        current_decision=label,
        current_reason=reason,
        approval_event_id=event.event_id,
        last_source_log_seq=event.log_seq,
        metadata=existing.metadata
        | {
            "approval_event_id": event.event_id,
            "approval_reason": reason,
            "approver": {"actor_id": actor[0], "actor_type": actor[1]},
            # kept apart from the request's evidence, which an approval must not erase
            "approval_evidence": normalize_evidence(payload.get("evidence"))
            if isinstance(payload.get("evidence"), list)
            else [],
        },
    )
    notice = NotificationRow(
        dedupe_key=f"approval:{workflow_id}:{event.event_id}",
        workflow_id=workflow_id,
        trace_id=item.trace_id,
        category="approval",
        message=f"Workflow {workflow_id} recorded {label.replace('_', ' ')}",
        recipient_account_id=item.assigned_account_id,
        recipient_role=item.assigned_role,
        payload={"decision": label, "event_id": event.event_id},
        created_at=event.occurred_at,
    )
    return Step(item, [event_action(item, event, action_type, actor, reason)], [notice])
