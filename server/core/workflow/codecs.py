"""Stored forms of items, actions and notifications (dicts for JSON columns)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.core.workflow.items import ActionRow, NotificationRow, WorkflowItem

# -- stored forms -----------------------------------------------------------------------


def item_from_dict(data: Mapping[str, Any]) -> WorkflowItem:
    return WorkflowItem(
        workflow_id=data["workflow_id"],
        trace_id=data["trace_id"],
        kind=data["workflow_kind"],
        name=data["workflow_name"],
        subject_type=data["subject_type"],
        subject_id=data["subject_id"],
        status=data["status"],
        priority=data["priority"],
        title=data["title"],
        policy_id=data["policy_id"],
        policy_version=data["policy_version"],
        requested_by_id=data["requested_by_actor_id"],
        requested_by_type=data["requested_by_actor_type"],
        assigned_account_id=data["assigned_account_id"],
        assigned_role=data["assigned_role"],
        requested_at=data["requested_at"],
        sla_due_at=data["sla_due_at"],
        resolved_at=data["resolved_at"],
        last_action_type=data["last_action_type"],
        last_action_at=data["last_action_at"],
        current_decision=data["current_decision"],
        current_reason=data["current_reason"],
        approval_event_id=data["approval_event_id"],
        created_from_event_id=data["created_from_event_id"],
        last_source_log_seq=data["last_source_log_seq"],
        escalation_count=data["escalation_count"],
        metadata=dict(data["metadata"]),
    )


def action_dict(action: ActionRow) -> dict[str, Any]:
    return {
        "action_id": action.action_id,
        "workflow_id": action.workflow_id,
        "trace_id": action.trace_id,
        "action_type": action.action_type,
        "actor_id": action.actor_id,
        "actor_type": action.actor_type,
        "actor_account_id": action.actor_account_id,
        "note": action.note,
        "payload": action.payload,
        "source_event_id": action.source_event_id,
        "resulting_status": action.resulting_status,
        "created_at": action.created_at,
        "position": action.position,
    }


def action_from_dict(data: Mapping[str, Any]) -> ActionRow:
    return ActionRow(**data)


def notification_dict(notice: NotificationRow) -> dict[str, Any]:
    return {
        "dedupe_key": notice.dedupe_key,
        "workflow_id": notice.workflow_id,
        "trace_id": notice.trace_id,
        "category": notice.category,
        "message": notice.message,
        "recipient_account_id": notice.recipient_account_id,
        "recipient_role": notice.recipient_role,
        "payload": notice.payload,
        "created_at": notice.created_at,
    }


def notification_from_dict(data: Mapping[str, Any]) -> NotificationRow:
    return NotificationRow(**data)
