"""Reading decision-event payloads defensively, and the rows every event handler writes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.core.envelope import StoredEvent
from server.core.workflow.items import ActionRow, NotificationRow, WorkflowItem
from server.core.workflow.templates import PRIORITIES, review_trace_id


def as_object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def policy_of(payload: Mapping[str, Any]) -> tuple[str | None, str | None]:
    policy = payload.get("policy")
    if isinstance(policy, dict):
        return text_or_none(policy.get("policy_id")), text_or_none(policy.get("policy_version"))
    return text_or_none(payload.get("policy_id")), text_or_none(payload.get("policy_version"))


def priority_or(value: Any, fallback: str) -> str:
    return value if value in PRIORITIES else fallback


def target_trace(event: StoredEvent) -> str:
    """The trace a decision event is about: its own, or the one its review trace reviews."""
    payload = event.payload if isinstance(event.payload, dict) else {}
    reviewed = payload.get("reviewed_trace_id")
    if isinstance(reviewed, str) and event.trace_id == review_trace_id(reviewed):
        return reviewed
    return event.trace_id


def assignment_notice(item: WorkflowItem, at: str, source: str, verb: str) -> NotificationRow:
    target = item.assigned_account_id or item.assigned_role or "unassigned"
    return NotificationRow(
        dedupe_key=f"assignment:{item.workflow_id}:{target}",
        workflow_id=item.workflow_id,
        trace_id=item.trace_id,
        category="assignment",
        message=f"Workflow {item.workflow_id} {verb} {item.assignee()}",
        recipient_account_id=item.assigned_account_id,
        recipient_role=item.assigned_role,
        payload={"source": source},
        created_at=at,
    )


def event_action(
    item: WorkflowItem, event: StoredEvent, action_type: str, actor: tuple[str, str], note: Any
) -> ActionRow:
    return ActionRow(
        action_id=f"wfa:event:{event.event_id}",
        workflow_id=item.workflow_id,
        trace_id=item.trace_id,
        action_type=action_type,
        actor_id=actor[0],
        actor_type=actor[1],
        actor_account_id=None,
        note=text_or_none(note),
        payload={"source_event_type": event.event_type, "log_seq": event.log_seq},
        source_event_id=event.event_id,
        resulting_status=item.status,
        created_at=event.occurred_at,
        position=event.log_seq,
    )
