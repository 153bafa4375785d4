"""Kinds, statuses, journal kinds, SLA numbers and the review templates; ids and times."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from server.core.clock import parse_timestamp
from server.core.errors import invalid_argument

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
