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

The package has one module per idea: `templates` (kinds, statuses, SLA numbers, ids),
`items` (the values), `fields` (payload reading), `requests` and `decisions` (the event
handlers), `actions` (what people and timers do), `sla` (inbox order, due timers),
`simulation` (the studio's dry run), `codecs` (stored forms) and `fold` (the fold itself).
This module exports what the service layer and adapters use.
"""

from server.core.workflow.actions import (
    apply_entry,
    check_action,
    check_decision,
)
from server.core.workflow.codecs import (
    action_dict,
    action_from_dict,
    item_from_dict,
    notification_dict,
    notification_from_dict,
)
from server.core.workflow.fields import (
    target_trace,
)
from server.core.workflow.fold import (
    DECISION_EVENT_TYPES,
    FoldResult,
    apply_event,
    decision_targets,
    fold,
    projection_digest,
    rebuild_in_memory,
)
from server.core.workflow.items import (
    ActionRow,
    JournalEntry,
    NotificationRow,
    Step,
    TraceInfo,
    WorkflowItem,
)
from server.core.workflow.simulation import (
    UNFAVOURABLE,
    Simulation,
    simulate,
)
from server.core.workflow.sla import (
    DueTimer,
    InboxFilter,
    inbox_order,
    timer_kind,
)
from server.core.workflow.templates import (
    APPROVE,
    APPROVED,
    CHANGES_REQUESTED,
    CLAIM,
    COMMENT,
    DEADLINE_RISK,
    DEADLINE_RISK_MINUTES,
    DEFAULT_ROLE,
    ESCALATE,
    ESCALATED,
    ESCALATION_ROLE,
    EXCEPTION_REVIEW,
    EXCEPTION_SLA_HOURS,
    IN_REVIEW,
    INCIDENT_REVIEW,
    INCIDENT_SLA_HOURS,
    JOURNAL_KINDS,
    KINDS,
    MANUAL_ACTIONS,
    OPEN,
    OVERRIDDEN,
    OVERRIDE,
    OVERRIDE_REVIEW,
    PRIORITIES,
    REASSIGN,
    REJECT,
    REJECTED,
    REQUEST_CHANGES,
    REQUESTED,
    REVIEW_TRACE_PREFIX,
    SLA_ACTOR,
    SLA_ESCALATE,
    SLA_WATCHED,
    STATUSES,
    TEMPLATES,
    TERMINAL,
    WORKFLOWS,
    Template,
    format_seconds,
    normalize_evidence,
    override_phrase,
    review_trace_id,
    sla_due,
    workflow_id_of,
)

__all__ = [
    "APPROVE",
    "APPROVED",
    "CHANGES_REQUESTED",
    "CLAIM",
    "COMMENT",
    "DEADLINE_RISK",
    "DEADLINE_RISK_MINUTES",
    "DECISION_EVENT_TYPES",
    "DEFAULT_ROLE",
    "ESCALATE",
    "ESCALATED",
    "ESCALATION_ROLE",
    "EXCEPTION_REVIEW",
    "EXCEPTION_SLA_HOURS",
    "INCIDENT_REVIEW",
    "INCIDENT_SLA_HOURS",
    "IN_REVIEW",
    "JOURNAL_KINDS",
    "KINDS",
    "MANUAL_ACTIONS",
    "OPEN",
    "OVERRIDDEN",
    "OVERRIDE",
    "OVERRIDE_REVIEW",
    "PRIORITIES",
    "REASSIGN",
    "REJECT",
    "REJECTED",
    "REQUESTED",
    "REQUEST_CHANGES",
    "REVIEW_TRACE_PREFIX",
    "SLA_ACTOR",
    "SLA_ESCALATE",
    "SLA_WATCHED",
    "STATUSES",
    "TEMPLATES",
    "TERMINAL",
    "UNFAVOURABLE",
    "WORKFLOWS",
    "ActionRow",
    "DueTimer",
    "FoldResult",
    "InboxFilter",
    "JournalEntry",
    "NotificationRow",
    "Simulation",
    "Step",
    "Template",
    "TraceInfo",
    "WorkflowItem",
    "action_dict",
    "action_from_dict",
    "apply_entry",
    "apply_event",
    "check_action",
    "check_decision",
    "decision_targets",
    "fold",
    "format_seconds",
    "inbox_order",
    "item_from_dict",
    "normalize_evidence",
    "notification_dict",
    "notification_from_dict",
    "override_phrase",
    "projection_digest",
    "rebuild_in_memory",
    "review_trace_id",
    "simulate",
    "sla_due",
    "target_trace",
    "timer_kind",
    "workflow_id_of",
]
