"""GraphQL types of review workflows (spec/platform.md §4; api.md "Review workflows")."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Any

import strawberry
from strawberry.types import Info

from server.core import workflow as wf
from server.core.precedent_query import PrecedentHit
from server.core.workflow import ActionRow, NotificationRow, Simulation, Template, WorkflowItem
from server.graphql.context import services_of
from server.graphql.errors import UserError
from server.graphql.precedent.types import ScoredPrecedents, ranked_of
from server.graphql.projections.types import Precedent, precedent_of
from server.graphql.relay import PageInfo
from server.graphql.scalars import JSON, Long
from server.graphql.traces.types import Event, event_of
from server.service import workflows as service
from server.service.workflows import Deps


@strawberry.enum(description="Statuses of spec/platform.md §4.3, upper-cased.")
class WorkflowStatus(Enum):
    REQUESTED = "requested"
    IN_REVIEW = "in_review"
    CHANGES_REQUESTED = "changes_requested"
    ESCALATED = "escalated"
    APPROVED = "approved"
    REJECTED = "rejected"
    OVERRIDDEN = "overridden"


@strawberry.enum
class WorkflowKind(Enum):
    EXCEPTION_REVIEW = "exception_review"
    INCIDENT_REVIEW = "incident_review"
    OVERRIDE_REVIEW = "override_review"


@strawberry.enum
class ReviewDecision(Enum):
    APPROVE = "approve"
    REJECT = "reject"


@strawberry.enum
class WorkflowActionKind(Enum):
    CLAIM = "claim"
    COMMENT = "comment"
    REQUEST_CHANGES = "request_changes"
    REASSIGN = "reassign"
    ESCALATE = "escalate"
    OVERRIDE = "override"


@strawberry.type
class WorkflowActor:
    actor_id: str
    actor_type: str


@strawberry.type(description="One step of a workflow's history.")
class WorkflowActionRecord:
    seq: Long
    action_id: str
    action: str = strawberry.field(description="requested, claim, approve, escalate, ...")
    actor_id: str
    actor_type: str
    actor_account_id: str | None
    note: str | None
    payload: JSON
    source_event_id: str | None
    resulting_status: WorkflowStatus
    at: str


def action_of(seq: int, action: ActionRow) -> WorkflowActionRecord:
    return WorkflowActionRecord(
        seq=Long(seq),
        action_id=action.action_id,
        action=action.action_type,
        actor_id=action.actor_id,
        actor_type=action.actor_type,
        actor_account_id=action.actor_account_id,
        note=action.note,
        payload=JSON(action.payload),
        source_event_id=action.source_event_id,
        resulting_status=WorkflowStatus(action.resulting_status),
        at=action.created_at,
    )


@strawberry.type
class WorkflowNotification:
    notification_id: str
    category: str = strawberry.field(
        description="assignment, approval, deadline_risk or escalation"
    )
    message: str
    recipient_account_id: str | None
    recipient_role: str | None
    payload: JSON
    created_at: str


def notification_of(notice: NotificationRow) -> WorkflowNotification:
    return WorkflowNotification(
        notification_id=notice.notification_id,
        category=notice.category,
        message=notice.message,
        recipient_account_id=notice.recipient_account_id,
        recipient_role=notice.recipient_role,
        payload=JSON(notice.payload),
        created_at=notice.created_at,
    )


@strawberry.type
class WorkflowTemplate:
    template_id: str
    title: str
    kind: WorkflowKind
    reviewer_role: str
    default_priority: str
    default_sla_hours: float
    tags: list[str]
    description: str


def template_of(template: Template) -> WorkflowTemplate:
    return WorkflowTemplate(
        template_id=template.template_id,
        title=template.title,
        kind=WorkflowKind(template.kind),
        reviewer_role=template.reviewer_role,
        default_priority=template.default_priority,
        default_sla_hours=template.default_sla_hours,
        tags=list(template.tags),
        description=template.description,
    )


@strawberry.type
class ReplaySuggestion:
    mode: str
    projection: str
    reason: str


@strawberry.type(description="The dry run of spec/platform.md §4.7 (no policy is re-run).")
class PolicySimulation:
    trace_id: str
    template: WorkflowTemplate
    risk_signals: list[str]
    priority: str
    recommended_reason: str
    draft_workflow_id: str
    replay_suggestion: ReplaySuggestion
    precedent_preview: list[Precedent]
    existing_workflows: list[Workflow]


def simulation_of(
    trace_id: str, title: str, sim: Simulation, hits: list[PrecedentHit], existing: list[Workflow]
) -> PolicySimulation:
    return PolicySimulation(
        trace_id=trace_id,
        template=template_of(sim.template),
        risk_signals=list(sim.risk_signals),
        priority=sim.priority,
        recommended_reason=sim.recommended_reason,
        draft_workflow_id=sim.workflow_id,
        replay_suggestion=ReplaySuggestion(
            mode="CATCH_UP",
            projection=sim.replay_projection.upper(),
            reason=f"workflow studio review for {title}",
        ),
        precedent_preview=[precedent_of(h) for h in hits],
        existing_workflows=existing,
    )


def deps_of(info: Info[Any, Any]) -> Deps:
    services = services_of(info)
    return Deps(
        log=services.log,
        projections=services.projections,
        workflows=services.workflows,
        publisher=services.publisher,
        clock=services.clock,
        limits=services.limits,
    )


@strawberry.type(description="A review workflow: an exception, incident or override review.")
class Workflow:
    item: strawberry.Private[WorkflowItem]
    tenant_id: strawberry.Private[str]

    @strawberry.field
    def workflow_id(self) -> str:
        return self.item.workflow_id

    @strawberry.field
    def trace_id(self) -> str:
        return self.item.trace_id

    @strawberry.field
    def kind(self) -> WorkflowKind:
        return WorkflowKind(self.item.kind)

    @strawberry.field
    def workflow_name(self) -> str:
        return self.item.name

    @strawberry.field
    def subject_type(self) -> str:
        return self.item.subject_type

    @strawberry.field
    def subject_id(self) -> str:
        return self.item.subject_id

    @strawberry.field
    def status(self) -> WorkflowStatus:
        return WorkflowStatus(self.item.status)

    @strawberry.field(description="urgent, high, normal or low")
    def priority(self) -> str:
        return self.item.priority

    @strawberry.field
    def title(self) -> str:
        return self.item.title

    @strawberry.field
    def policy_id(self) -> str | None:
        return self.item.policy_id

    @strawberry.field
    def policy_version(self) -> str | None:
        return self.item.policy_version

    @strawberry.field
    def requested_by(self) -> WorkflowActor:
        return WorkflowActor(
            actor_id=self.item.requested_by_id, actor_type=self.item.requested_by_type
        )

    @strawberry.field
    def assigned_account_id(self) -> str | None:
        return self.item.assigned_account_id

    @strawberry.field
    def assigned_role(self) -> str | None:
        return self.item.assigned_role

    @strawberry.field
    def requested_at(self) -> str:
        return self.item.requested_at

    @strawberry.field
    def sla_due_at(self) -> str | None:
        return self.item.sla_due_at

    @strawberry.field
    def resolved_at(self) -> str | None:
        return self.item.resolved_at

    @strawberry.field
    def last_action_type(self) -> str:
        return self.item.last_action_type

    @strawberry.field
    def last_action_at(self) -> str:
        return self.item.last_action_at

    @strawberry.field
    def current_decision(self) -> str | None:
        return self.item.current_decision

    @strawberry.field
    def current_reason(self) -> str | None:
        return self.item.current_reason

    @strawberry.field
    def approval_event_id(self) -> str | None:
        return self.item.approval_event_id

    @strawberry.field
    def created_from_event_id(self) -> str:
        return self.item.created_from_event_id

    @strawberry.field
    def escalation_count(self) -> int:
        return self.item.escalation_count

    @strawberry.field
    def metadata(self) -> JSON:
        return JSON(self.item.metadata)

    @strawberry.field(description="Open, and its SLA due time has passed.")
    def overdue(self) -> bool:
        return self.item.overdue(datetime.now(UTC))

    @strawberry.field(description="Every action on the workflow, oldest first.")
    async def history(self, info: Info[Any, Any]) -> list[WorkflowActionRecord]:
        rows = await deps_of(info).workflows.actions(self.tenant_id, self.item.workflow_id)
        return [action_of(seq, action) for seq, action in rows]

    @strawberry.field(description="Notifications, newest first.")
    async def notifications(
        self, info: Info[Any, Any], first: int = 50
    ) -> list[WorkflowNotification]:
        rows = await deps_of(info).workflows.notifications(
            self.tenant_id, self.item.workflow_id, limit=max(1, min(first, 1000))
        )
        return [notification_of(n) for _, n in rows]

    @strawberry.field(description="The trace's events and its review trace's, in log order.")
    async def timeline(self, info: Info[Any, Any]) -> list[Event]:
        log = deps_of(info).log
        events = await log.trace_events(self.tenant_id, self.item.trace_id)
        events += await log.trace_events(self.tenant_id, wf.review_trace_id(self.item.trace_id))
        return [event_of(e) for e in sorted(events, key=lambda e: e.log_seq)]

    @strawberry.field(description="The trace's latest PolicyEvaluated payload (its policy basis).")
    async def policy_basis(self, info: Info[Any, Any]) -> JSON | None:
        events = await deps_of(info).log.trace_events(self.tenant_id, self.item.trace_id)
        basis = service.latest_policy(events)
        return None if basis is None else JSON(basis)

    @strawberry.field(description="Precedent context: similar finished traces and outcomes.")
    async def precedents(self, info: Info[Any, Any]) -> list[Precedent]:
        _, hits = await service.simulation(deps_of(info), self.tenant_id, self.item.trace_id)
        return [precedent_of(h) for h in hits]

    @strawberry.field(
        description="Scored precedent for this workflow's trace, with a warning for each "
        "decision that would go against the strongest precedent (docs/precedent.md)."
    )
    async def scored_precedents(self, info: Info[Any, Any], first: int = 5) -> ScoredPrecedents:
        ranked = await services_of(info).precedent.rank(self.tenant_id, self.item.trace_id, first)
        return ranked_of(ranked)

    @strawberry.field(description="The studio's dry run for this workflow's trace.")
    async def simulation(self, info: Info[Any, Any]) -> PolicySimulation:
        deps = deps_of(info)
        sim, hits = await service.simulation(deps, self.tenant_id, self.item.trace_id)
        return simulation_of(self.item.trace_id, self.item.title, sim, hits, [])


def workflow_of(tenant_id: str, item: WorkflowItem) -> Workflow:
    return Workflow(item=item, tenant_id=tenant_id)


@strawberry.type
class WorkflowEdge:
    node: Workflow
    cursor: str


@strawberry.type
class WorkflowSummary:
    total: int
    open: int
    overdue: int
    requested: int
    in_review: int
    changes_requested: int
    escalated: int
    approved: int
    rejected: int
    overridden: int


@strawberry.type
class WorkflowConnection:
    edges: list[WorkflowEdge]
    page_info: PageInfo
    total_count: int
    summary: WorkflowSummary
    projected_to: Long


@strawberry.type
class WorkflowPayload:
    workflow: Workflow | None
    errors: list[UserError]
    appended_event_id: str | None = None
    created: bool | None = None


@strawberry.type(description="A change to a workflow, in the order the changes happened.")
class WorkflowChange:
    seq: Long = strawberry.field(description="Resume `workflowChanged(afterSeq:)` from here.")
    workflow_id: str
    trace_id: str
    status: WorkflowStatus
    action: str
    actor_id: str
    at: str
    note: str | None


def change_of(seq: int, action: ActionRow, status: str) -> WorkflowChange:
    return WorkflowChange(
        seq=Long(seq),
        workflow_id=action.workflow_id,
        trace_id=action.trace_id,
        status=WorkflowStatus(status),
        action=action.action_type,
        actor_id=action.actor_id,
        at=action.created_at,
        note=action.note,
    )
