"""What people and timers do to an open review (claim, comment, request changes,
reassign, escalate, SLA escalations and warnings), and the checks people pass first."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from server.core.errors import conflict, invalid_argument
from server.core.workflow.fields import assignment_notice, text_or_none
from server.core.workflow.items import ActionRow, JournalEntry, NotificationRow, Step, WorkflowItem
from server.core.workflow.templates import (
    CHANGES_REQUESTED,
    CLAIM,
    COMMENT,
    DEADLINE_RISK,
    ESCALATE,
    ESCALATED,
    ESCALATION_ROLE,
    EXCEPTION_REVIEW,
    IN_REVIEW,
    MANUAL_ACTIONS,
    OVERRIDE,
    REASSIGN,
    REQUEST_CHANGES,
    SLA_ESCALATE,
    TERMINAL,
    normalize_evidence,
)

# -- people and timers ----------------------------------------------------------------


def check_action(item: WorkflowItem, kind: str, request: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a manual action against the item; the cleaned input for the journal.

    Raises DG_ERR_CONFLICT for a transition the state does not allow and
    DG_ERR_INVALID_ARGUMENT for missing or bad input.
    """
    if kind not in MANUAL_ACTIONS:
        raise invalid_argument(f"Unknown workflow action {kind!r}")
    if item.status in TERMINAL and kind != COMMENT:
        raise conflict(f"Workflow {item.workflow_id} is already {item.status}")
    reason = text_or_none((request.get("reason") or "").strip() if request.get("reason") else None)
    note = (
        text_or_none((request.get("note") or "").strip() if request.get("note") else None) or reason
    )
    evidence = normalize_evidence(request.get("evidence"))
    if kind == COMMENT:
        if note is None:
            raise invalid_argument("A comment needs a note")
        return {"note": note, "evidence": evidence}
    if kind == CLAIM:
        return {"note": note, "evidence": evidence}
    if kind == REQUEST_CHANGES:
        if reason is None:
            raise invalid_argument("Requesting changes needs a reason")
        return {"reason": reason, "evidence": evidence}
    if kind == ESCALATE:
        if item.status == ESCALATED:
            raise conflict(f"Workflow {item.workflow_id} is already escalated")
        if reason is None:
            raise invalid_argument("Escalating needs a reason")
        return {"reason": reason, "evidence": evidence}
    # REASSIGN
    account = text_or_none(request.get("assigned_account_id"))
    role = text_or_none(request.get("assigned_role"))
    if account is None and role is None:
        raise invalid_argument("Reassigning needs an account or a role")
    if (account, role) == (item.assigned_account_id, item.assigned_role):
        raise invalid_argument(
            f"Workflow {item.workflow_id} is already assigned to {item.assignee()}"
        )
    return {"assigned_account_id": account, "assigned_role": role, "note": note}


def check_decision(item: WorkflowItem, decision: str, rationale: str | None) -> str:
    """Validate an approve/reject/override; the cleaned rationale."""
    if item.status in TERMINAL:
        raise conflict(f"Workflow {item.workflow_id} is already {item.status}")
    if decision == OVERRIDE and item.kind != EXCEPTION_REVIEW:
        raise invalid_argument("Override is only supported for exception review workflows")
    text = (rationale or "").strip()
    if not text:
        raise invalid_argument("A rationale is required")
    return text


def apply_entry(item: WorkflowItem, entry: JournalEntry) -> Step:
    """A journal entry's effect on its workflow (validated when it was recorded)."""
    kind, data, at = entry.kind, entry.input, entry.at
    status = item.status
    changes: dict[str, Any] = {"last_action_type": kind, "last_action_at": at}
    notices: list[NotificationRow] = []
    action_type = kind
    payload: dict[str, Any] = {"evidence": data.get("evidence", [])}
    note = data.get("note") or data.get("reason")
    if kind == CLAIM:
        status = IN_REVIEW
        changes |= {"assigned_account_id": entry.actor_account_id, "assigned_role": None}
    elif kind == REQUEST_CHANGES:
        status = CHANGES_REQUESTED
        changes |= {"resolved_at": None, "current_reason": data.get("reason")}
    elif kind == REASSIGN:
        changes |= {
            "assigned_account_id": data.get("assigned_account_id"),
            "assigned_role": data.get("assigned_role"),
        }
        payload = {"source": "manual_reassign"}
    elif kind in (ESCALATE, SLA_ESCALATE):
        automatic = kind == SLA_ESCALATE
        reason = "SLA deadline passed" if automatic else data.get("reason")
        note = reason
        action_type = ESCALATE
        count = item.escalation_count + 1
        status = ESCALATED
        changes |= {
            "assigned_account_id": None,
            "assigned_role": ESCALATION_ROLE,
            "current_reason": reason,
            "escalation_count": count,
            "metadata": item.metadata
            | {
                "escalation_count": count,
                "escalated_at": at,
                "escalation_reason": reason,
                "previous_assignment": {
                    "assigned_account_id": item.assigned_account_id,
                    "assigned_role": item.assigned_role,
                },
            },
        }
        payload |= {"source": "automatic_sla_escalation" if automatic else "manual_escalation"}
    elif kind == DEADLINE_RISK:
        changes = {}
        action_type = DEADLINE_RISK
        note = f"SLA due at {item.sla_due_at}"
        payload = {"sla_due_at": item.sla_due_at}
    updated = replace(item, status=status, **changes)
    action = ActionRow(
        action_id=f"wfa:journal:{entry.journal_id}",
        workflow_id=item.workflow_id,
        trace_id=item.trace_id,
        action_type=action_type,
        actor_id=entry.actor_id,
        actor_type=entry.actor_type,
        actor_account_id=entry.actor_account_id,
        note=note,
        payload=payload,
        source_event_id=None,
        resulting_status=updated.status,
        created_at=at,
        position=entry.position,
    )
    if kind == REASSIGN:
        notices.append(assignment_notice(updated, at, "manual_reassign", "reassigned to"))
    elif kind in (ESCALATE, SLA_ESCALATE):
        notices.append(
            NotificationRow(
                dedupe_key=f"escalation:{item.workflow_id}:{updated.escalation_count}",
                workflow_id=item.workflow_id,
                trace_id=item.trace_id,
                category="escalation",
                message=f"Workflow {item.workflow_id} escalated to {updated.assignee()}",
                recipient_account_id=updated.assigned_account_id,
                recipient_role=updated.assigned_role,
                payload={"source": payload["source"], "reason": note},
                created_at=at,
            )
        )
    elif kind == DEADLINE_RISK:
        notices.append(
            NotificationRow(
                dedupe_key=f"deadline_risk:{item.workflow_id}:{item.sla_due_at}",
                workflow_id=item.workflow_id,
                trace_id=item.trace_id,
                category="deadline_risk",
                message=f"Workflow {item.workflow_id} is nearing its SLA deadline",
                recipient_account_id=item.assigned_account_id,
                recipient_role=item.assigned_role,
                payload={"sla_due_at": item.sla_due_at},
                created_at=at,
            )
        )
    return Step(updated, [action], notices)
