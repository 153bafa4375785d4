"""Inbox order and the SLA timers that are due."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from server.core.clock import parse_timestamp
from server.core.workflow.items import WorkflowItem
from server.core.workflow.templates import (
    DEADLINE_RISK,
    DEADLINE_RISK_MINUTES,
    OPEN,
    PRIORITIES,
    SLA_ESCALATE,
    SLA_WATCHED,
)


@dataclass(frozen=True, slots=True)
class InboxFilter:
    statuses: tuple[str, ...] | None = None
    only_open: bool = False
    only_overdue: bool = False
    assigned_account_id: str | None = None
    assigned_role: str | None = None
    priority: str | None = None
    trace_id: str | None = None
    kind: str | None = None


@dataclass(frozen=True, slots=True)
class DueTimer:
    """An open review whose SLA timer owes something now."""

    tenant_id: str
    workflow_id: str
    kind: str
    sla_due_at: str


def timer_kind(item: WorkflowItem, now: datetime, warned: bool) -> str | None:
    """What the SLA timer owes this item now: an escalation, a warning, or nothing."""
    due = parse_timestamp(item.sla_due_at) if item.sla_due_at else None
    if due is None or item.status not in OPEN:
        return None
    if item.status in SLA_WATCHED and due < now:
        return SLA_ESCALATE
    if not warned and now < due <= now + timedelta(minutes=DEADLINE_RISK_MINUTES):
        return DEADLINE_RISK
    return None


def inbox_order(item: WorkflowItem, now: datetime) -> tuple[int, int, str, str]:
    """Overdue open items first, then by priority, then oldest, then by id (spec §1.3)."""
    rank = PRIORITIES.index(item.priority) if item.priority in PRIORITIES else len(PRIORITIES)
    return (0 if item.overdue(now) else 1, rank, item.requested_at, item.workflow_id)
