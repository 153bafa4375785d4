"""Review workflows: the state machine of spec/platform.md §4, as a fold.

A workflow's state is a pure function of two ordered inputs:

* decision events in the log: `ExceptionRequested` opens an exception review,
  `WorkflowReviewRequested` opens an incident review, `ApprovalRecorded` closes one
  (approve, reject, or override);
* journal entries: what people and timers did that is not a decision event (claim,
  comment, request changes, reassign, escalate, an SLA escalation, a deadline warning),
  each recorded with the log position the workflow projection had reached when it was
  taken.

Folding the log with the journal entries merged in at their positions reproduces the
live state exactly, which is what lets REBUILD and VERIFY treat workflows like any other
projection. Nothing here reads a clock: the caller passes `now`.

Decisions on a finished trace cannot go into the trace (its lock is the point of
finishing it). They go into its companion review trace `review:<trace_id>`, an ordinary
trace whose events name the reviewed trace in `payload.reviewed_trace_id`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final

from server.core.canonical_json import digest_json
from server.core.clock import parse_timestamp
from server.core.digest import DigestWriter
from server.core.envelope import StoredEvent
from server.core.errors import conflict, invalid_argument
from server.core.event_types import (
    APPROVAL_RECORDED,
    EXCEPTION_REQUESTED,
    WORKFLOW_REVIEW_REQUESTED,
)

WORKFLOWS: Final = "workflows"  # the projection's name (cursor, replays, health)

EXCEPTION_REVIEW: Final = "exception_review"
INCIDENT_REVIEW: Final = "incident_review"
OVERRIDE_REVIEW: Final = "override_review"
KINDS: Final = (EXCEPTION_REVIEW, INCIDENT_REVIEW, OVERRIDE_REVIEW)

REQUESTED: Final = "requested"
IN_REVIEW: Final = "in_review"
CHANGES_REQUESTED: Final = "changes_requested"
ESCALATED: Final = "escalated"
APPROVED: Final = "approved"
REJECTED: Final = "rejected"
OVERRIDDEN: Final = "overridden"
OPEN: Final = (REQUESTED, IN_REVIEW, CHANGES_REQUESTED, ESCALATED)
TERMINAL: Final = (APPROVED, REJECTED, OVERRIDDEN)
STATUSES: Final = OPEN + TERMINAL
# Escalated items are never escalated again by the timer (spec §4.4).
SLA_WATCHED: Final = (REQUESTED, IN_REVIEW, CHANGES_REQUESTED)

PRIORITIES: Final = ("urgent", "high", "normal", "low")

# Journal kinds: people...
CLAIM: Final = "claim"
COMMENT: Final = "comment"
REQUEST_CHANGES: Final = "request_changes"
REASSIGN: Final = "reassign"
ESCALATE: Final = "escalate"
# ... and the SLA timer.
SLA_ESCALATE: Final = "sla_escalate"
DEADLINE_RISK: Final = "deadline_risk"
MANUAL_ACTIONS: Final = (CLAIM, COMMENT, REQUEST_CHANGES, REASSIGN, ESCALATE)
JOURNAL_KINDS: Final = (*MANUAL_ACTIONS, SLA_ESCALATE, DEADLINE_RISK)

# Decisions, recorded as ApprovalRecorded events.
APPROVE: Final = "approve"
REJECT: Final = "reject"
OVERRIDE: Final = "override"

EXCEPTION_SLA_HOURS: Final = 4.0
INCIDENT_SLA_HOURS: Final = 2.0
DEADLINE_RISK_MINUTES: Final = 30
DEFAULT_ROLE: Final = "admin"
ESCALATION_ROLE: Final = "admin"
SLA_ACTOR: Final = ("workflow-sla", "system")
REVIEW_TRACE_PREFIX: Final = "review:"


@dataclass(frozen=True, slots=True)
class Template:
    template_id: str
    title: str
    kind: str
    reviewer_role: str
    default_priority: str
    default_sla_hours: float
    tags: tuple[str, ...]
    description: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "template_id": self.template_id,
            "title": self.title,
            "workflow_kind": self.kind,
            "reviewer_role": self.reviewer_role,
            "default_priority": self.default_priority,
            "default_sla_hours": self.default_sla_hours,
            "tags": list(self.tags),
            "description": self.description,
        }


TEMPLATES: Final[dict[str, Template]] = {
    t.template_id: t
    for t in (
        Template(
            "incident_triage",
            "Incident Triage Review",
            INCIDENT_REVIEW,
            "admin",
            "high",
            2,
            ("incident", "replay", "human_review"),
            "Operator-led triage for a trace that needs replay, precedent review, and "
            "explicit follow-up.",
        ),
        Template(
            "exception_follow_up",
            "Exception Follow-Up",
            INCIDENT_REVIEW,
            "admin",
            "urgent",
            1,
            ("exception", "approval", "sla"),
            "Escalated follow-up for traces that already produced exception requests or "
            "unresolved manual approvals.",
        ),
        Template(
            "precedent_gap_review",
            "Precedent Gap Review",
            INCIDENT_REVIEW,
            "writer",
            "normal",
            6,
            ("precedent", "analysis", "dry_run"),
            "Review path for traces whose closest precedents disagree or provide weak "
            "operator confidence.",
        ),
    )
}


def review_trace_id(trace_id: str) -> str:
    """The companion trace that holds decisions taken after `trace_id` finished."""
    return REVIEW_TRACE_PREFIX + trace_id


def workflow_id_of(trace_id: str, subject_type: str, subject_id: str) -> str:
    return f"{trace_id}:{subject_type}:{subject_id}"


def override_phrase(workflow_id: str) -> str:
    return "OVERRIDE " + workflow_id.upper()


def sla_due(occurred_at: str, hours: float) -> str | None:
    moment = parse_timestamp(occurred_at)
    if moment is None:
        return None
    return format_seconds(moment + timedelta(hours=hours))


def format_seconds(moment: datetime) -> str:
    """RFC 3339 UTC to the second, the form SLA times are shown in."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def normalize_evidence(evidence: Any) -> list[Any]:
    """A list; objects kept as they are, anything else wrapped as {"value": text}."""
    if evidence is None:
        return []
    if not isinstance(evidence, list):
        raise invalid_argument("evidence must be a list")
    return [item if isinstance(item, dict) else {"value": str(item)} for item in evidence]


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


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _policy(payload: Mapping[str, Any]) -> tuple[str | None, str | None]:
    policy = payload.get("policy")
    if isinstance(policy, dict):
        return _text(policy.get("policy_id")), _text(policy.get("policy_version"))
    return _text(payload.get("policy_id")), _text(payload.get("policy_version"))


def _priority(value: Any, fallback: str) -> str:
    return value if value in PRIORITIES else fallback


def target_trace(event: StoredEvent) -> str:
    """The trace a decision event is about: its own, or the one its review trace reviews."""
    payload = event.payload if isinstance(event.payload, dict) else {}
    reviewed = payload.get("reviewed_trace_id")
    if isinstance(reviewed, str) and event.trace_id == review_trace_id(reviewed):
        return reviewed
    return event.trace_id


def _assignment_notice(item: WorkflowItem, at: str, source: str, verb: str) -> NotificationRow:
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


def _event_action(
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
        note=_text(note),
        payload={"source_event_type": event.event_type, "log_seq": event.log_seq},
        source_event_id=event.event_id,
        resulting_status=item.status,
        created_at=event.occurred_at,
        position=event.log_seq,
    )


def apply_event(
    items: Mapping[str, WorkflowItem], event: StoredEvent, trace: TraceInfo | None
) -> Step:
    """A decision event's effect; other events (and malformed ones) change nothing."""
    payload = event.payload if isinstance(event.payload, dict) else {}
    if event.event_type == EXCEPTION_REQUESTED:
        return _exception_requested(items, event, payload, trace)
    if event.event_type == WORKFLOW_REVIEW_REQUESTED:
        return _review_requested(items, event, payload, trace)
    if event.event_type == APPROVAL_RECORDED:
        return _approval_recorded(items, event, payload, trace)
    return Step()


def _exception_requested(
    items: Mapping[str, WorkflowItem],
    event: StoredEvent,
    payload: Mapping[str, Any],
    trace: TraceInfo | None,
) -> Step:
    exception_id = _text(payload.get("exception_id"))
    if exception_id is None:
        return Step()
    trace_id = target_trace(event)
    workflow_id = workflow_id_of(trace_id, "exception", exception_id)
    reason = _text(payload.get("reason"))
    policy_id, policy_version = _policy(payload)
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
            priority=_priority(payload.get("priority"), existing.priority),
            current_reason=reason or existing.current_reason,
            last_action_type="re_requested",
            last_action_at=event.occurred_at,
            last_source_log_seq=event.log_seq,
            metadata=existing.metadata | metadata,
        )
        return Step(item, [_event_action(item, event, "re_requested", actor, reason)])
    fallback = "urgent" if reason and "urgent" in reason.lower() else "high"
    item = WorkflowItem(
        workflow_id=workflow_id,
        trace_id=trace_id,
        kind=EXCEPTION_REVIEW,
        name=trace.workflow if trace else "unknown",
        subject_type="exception",
        subject_id=exception_id,
        status=REQUESTED,
        priority=_priority(payload.get("priority"), fallback),
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
        [_event_action(item, event, "requested", actor, reason)],
        [_assignment_notice(item, event.occurred_at, "exception_requested", "assigned to")],
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


def _review_requested(
    items: Mapping[str, WorkflowItem],
    event: StoredEvent,
    payload: Mapping[str, Any],
    trace: TraceInfo | None,
) -> Step:
    template_id = _text(payload.get("template_id")) or "incident_triage"
    template = TEMPLATES.get(template_id)
    subject = _object(payload.get("subject"))
    subject_type = _text(subject.get("subject_type")) or "trace_review"
    subject_id = _text(subject.get("subject_id")) or template_id
    trace_id = target_trace(event)
    workflow_id = workflow_id_of(trace_id, subject_type, subject_id)
    assignee = _object(payload.get("assignee"))
    role = _text(assignee.get("role")) or (template.reviewer_role if template else DEFAULT_ROLE)
    kind = payload.get("workflow_kind")
    kind = kind if kind in KINDS else INCIDENT_REVIEW
    default_hours = template.default_sla_hours if template else INCIDENT_SLA_HOURS
    hours = _sla_hours(payload.get("sla_hours"), default_hours)
    default_priority = template.default_priority if template else "high"
    policy_id, policy_version = _policy(payload)
    title = _text(payload.get("title")) or (
        f"Incident review for {trace.title}" if trace and trace.title else f"Review of {trace_id}"
    )
    reason = _text(payload.get("reason"))
    metadata = {
        "entrypoint": "workflow_studio",
        "review_template": template.as_dict() if template else {"template_id": template_id},
        "simulation": _object(payload.get("simulation")) or None,
        "source_event_id": event.event_id,
        "reason": reason,
    }
    actor = (event.actor.actor_id, event.actor.actor_type)
    existing = items.get(workflow_id)
    base = {
        "status": REQUESTED,
        "priority": _priority(payload.get("priority"), default_priority),
        "title": title,
        "policy_id": policy_id,
        "policy_version": policy_version,
        "assigned_account_id": _text(assignee.get("account_id")),
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
        action = _event_action(item, event, "review_reopened", actor, reason)
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
        action = _event_action(item, event, "incident_review_requested", actor, reason)
    return Step(
        item,
        [action],
        [_assignment_notice(item, event.occurred_at, "review_requested", "assigned to")],
    )


_DECISIONS: Final = {
    "approved": APPROVED,
    "approve": APPROVED,
    "rejected": REJECTED,
    "reject": REJECTED,
    "denied": REJECTED,
    "deny": REJECTED,
}


def _approval_recorded(
    items: Mapping[str, WorkflowItem],
    event: StoredEvent,
    payload: Mapping[str, Any],
    trace: TraceInfo | None,
) -> Step:
    subject = _object(payload.get("subject"))
    subject_type = _text(subject.get("subject_type"))
    subject_id = _text(subject.get("subject_id"))
    decision = _DECISIONS.get(str(payload.get("decision", "")).lower())
    if subject_type is None or subject_id is None or decision is None:
        return Step()
    override = subject_type == "override"
    trace_id = target_trace(event)
    workflow_id = subject_id if override else workflow_id_of(trace_id, subject_type, subject_id)
    approver = _object(payload.get("approver"))
    actor = (
        _text(approver.get("actor_id")) or event.actor.actor_id,
        _text(approver.get("actor_type")) or event.actor.actor_type,
    )
    reason = _text(payload.get("reason"))
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
    return Step(item, [_event_action(item, event, action_type, actor, reason)], [notice])


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
    reason = _text((request.get("reason") or "").strip() if request.get("reason") else None)
    note = _text((request.get("note") or "").strip() if request.get("note") else None) or reason
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
    account = _text(request.get("assigned_account_id"))
    role = _text(request.get("assigned_role"))
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
        notices.append(_assignment_notice(updated, at, "manual_reassign", "reassigned to"))
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


# -- the studio: a heuristic dry run (spec §4.7, with `failure` counted as unfavourable) ---

UNFAVOURABLE: Final = ("failure", "failed", "rejected", "deny", "denied", "abandoned")


@dataclass(frozen=True, slots=True)
class Simulation:
    template: Template
    risk_signals: tuple[str, ...]
    priority: str
    recommended_reason: str
    replay_projection: str
    workflow_id: str


def simulate(
    trace_id: str,
    title: str,
    outcome: str | None,
    finished: bool,
    has_exception: bool,
    precedent_outcomes: Sequence[str | None],
    template_id: str | None = None,
) -> Simulation:
    unfavourable = outcome is not None and outcome.lower() in UNFAVOURABLE
    distinct = {o for o in precedent_outcomes if o is not None}
    signals = []
    if has_exception:
        signals.append("exception requested")
    if unfavourable:
        signals.append("unfavorable outcome")
    if not finished:
        signals.append("trace still active")
    if not precedent_outcomes:
        signals.append("no close precedents")
    elif len(distinct) > 1 or (outcome is not None and distinct and outcome not in distinct):
        signals.append("precedent divergence")
    if has_exception or unfavourable:
        priority = "urgent"
    elif "precedent divergence" in signals or not finished:
        priority = "high"
    else:
        priority = "normal"
    if template_id in TEMPLATES:
        template = TEMPLATES[template_id]
    elif has_exception:
        template = TEMPLATES["exception_follow_up"]
    elif unfavourable:
        template = TEMPLATES["incident_triage"]
    else:
        template = TEMPLATES["precedent_gap_review"]
    reason = (
        f"{template.title} opened for {title}: {', '.join(signals)}"
        if signals
        else "operator review requested"
    )
    return Simulation(
        template=template,
        risk_signals=tuple(signals),
        priority=priority,
        recommended_reason=reason,
        replay_projection="all" if len(signals) > 2 else "trace_summary",
        workflow_id=workflow_id_of(trace_id, "trace_review", template.template_id),
    )


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


def decision_targets(event: StoredEvent) -> str | None:
    """The workflow a decision event may touch (so a batch can load it first)."""
    payload = event.payload if isinstance(event.payload, dict) else {}
    trace_id = target_trace(event)
    if event.event_type == EXCEPTION_REQUESTED:
        exception_id = _text(payload.get("exception_id"))
        return workflow_id_of(trace_id, "exception", exception_id) if exception_id else None
    subject = _object(payload.get("subject"))
    if event.event_type == WORKFLOW_REVIEW_REQUESTED:
        template_id = _text(payload.get("template_id")) or "incident_triage"
        return workflow_id_of(
            trace_id,
            _text(subject.get("subject_type")) or "trace_review",
            _text(subject.get("subject_id")) or template_id,
        )
    if event.event_type == APPROVAL_RECORDED:
        subject_type, subject_id = (
            _text(subject.get("subject_type")),
            _text(subject.get("subject_id")),
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
