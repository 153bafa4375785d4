"""The fold's values: workflow items, action rows, notifications, journal entries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from server.core.canonical_json import digest_json
from server.core.clock import parse_timestamp
from server.core.workflow.templates import OPEN


@dataclass(frozen=True, slots=True)
class TraceInfo:
    """What a workflow borrows from its trace's TraceStarted."""

    title: str
    workflow: str


@dataclass(frozen=True, slots=True)
class WorkflowItem:
    workflow_id: str
    trace_id: str
    kind: str
    name: str
    subject_type: str
    subject_id: str
    status: str
    priority: str
    title: str
    policy_id: str | None
    policy_version: str | None
    requested_by_id: str
    requested_by_type: str
    assigned_account_id: str | None
    assigned_role: str | None
    requested_at: str
    sla_due_at: str | None
    resolved_at: str | None
    last_action_type: str
    last_action_at: str
    current_decision: str | None
    current_reason: str | None
    approval_event_id: str | None
    created_from_event_id: str
    last_source_log_seq: int
    escalation_count: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    def overdue(self, now: datetime) -> bool:
        due = parse_timestamp(self.sla_due_at) if self.sla_due_at else None
        return self.is_open and due is not None and due < now

    def digest_dict(self) -> dict[str, Any]:
        return {
            "workflow_id": self.workflow_id,
            "trace_id": self.trace_id,
            "workflow_kind": self.kind,
            "workflow_name": self.name,
            "subject_type": self.subject_type,
            "subject_id": self.subject_id,
            "status": self.status,
            "priority": self.priority,
            "title": self.title,
            "policy_id": self.policy_id,
            "policy_version": self.policy_version,
            "requested_by_actor_id": self.requested_by_id,
            "requested_by_actor_type": self.requested_by_type,
            "assigned_account_id": self.assigned_account_id,
            "assigned_role": self.assigned_role,
            "requested_at": self.requested_at,
            "sla_due_at": self.sla_due_at,
            "resolved_at": self.resolved_at,
            "last_action_type": self.last_action_type,
            "last_action_at": self.last_action_at,
            "current_decision": self.current_decision,
            "current_reason": self.current_reason,
            "approval_event_id": self.approval_event_id,
            "created_from_event_id": self.created_from_event_id,
            "last_source_log_seq": self.last_source_log_seq,
            "escalation_count": self.escalation_count,
            "metadata": self.metadata,
        }

    def fragment(self) -> str:
        return digest_json(self.digest_dict())

    def assignee(self) -> str:
        if self.assigned_account_id:
            return f"account {self.assigned_account_id}"
        if self.assigned_role:
            return f"role {self.assigned_role}"
        return "unassigned"


@dataclass(frozen=True, slots=True)
class ActionRow:
    action_id: str
    workflow_id: str
    trace_id: str
    action_type: str
    actor_id: str
    actor_type: str
    actor_account_id: str | None
    note: str | None
    payload: dict[str, Any]
    source_event_id: str | None
    resulting_status: str
    created_at: str
    position: int  # the log position the workflow projection had reached

    def fragment(self) -> str:
        return digest_json(
            {
                "action_id": self.action_id,
                "workflow_id": self.workflow_id,
                "action_type": self.action_type,
                "actor_id": self.actor_id,
                "actor_type": self.actor_type,
                "actor_account_id": self.actor_account_id,
                "note": self.note,
                "payload": self.payload,
                "source_event_id": self.source_event_id,
                "resulting_status": self.resulting_status,
                "created_at": self.created_at,
            }
        )


@dataclass(frozen=True, slots=True)
class NotificationRow:
    dedupe_key: str
    workflow_id: str
    trace_id: str
    category: str
    message: str
    recipient_account_id: str | None
    recipient_role: str | None
    payload: dict[str, Any]
    created_at: str

    @property
    def notification_id(self) -> str:
        return "wfn:" + self.dedupe_key


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A workflow input that is not a decision event, as recorded when it happened."""

    journal_id: int
    position: int
    kind: str
    workflow_id: str
    actor_id: str
    actor_type: str
    actor_account_id: str | None
    input: dict[str, Any]
    at: str


@dataclass
class Step:
    """What one input changed."""

    item: WorkflowItem | None = None
    actions: list[ActionRow] = field(default_factory=list)
    notifications: list[NotificationRow] = field(default_factory=list)
