"""Review workflow queries, mutations and the `workflowChanged` subscription."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from server.auth.principal import Permission
from server.core.errors import DecisionGraphError, invalid_argument
from server.core.replay import ALL_PROJECTIONS
from server.core.workflow import PRIORITIES, TEMPLATES, WORKFLOWS, InboxFilter, inbox_order
from server.graphql.context import authorize, context_of, services_of
from server.graphql.errors import user_errors
from server.graphql.relay import decode_cursor, encode_cursor, page_info
from server.graphql.scalars import JSON, Long
from server.graphql.workflows.types import (
    PolicySimulation,
    ReviewDecision,
    Workflow,
    WorkflowActionKind,
    WorkflowChange,
    WorkflowConnection,
    WorkflowEdge,
    WorkflowKind,
    WorkflowPayload,
    WorkflowStatus,
    WorkflowSummary,
    WorkflowTemplate,
    change_of,
    deps_of,
    simulation_of,
    template_of,
    workflow_of,
)
from server.observability.metrics import SUBSCRIPTIONS
from server.service import live, projection
from server.service import workflows as service
from server.service.queries import check_first
from server.service.workflows import Actor


def _actor(info: Info[Any, Any]) -> Actor:
    principal = context_of(info).principal
    assert principal is not None  # authorize() ran first
    return Actor(account_id=principal.key_id, name=principal.name or principal.key_id)


async def _ready(info: Info[Any, Any], tenant: str, at_least: int | None) -> int:
    """Wait until `at_least` for every projection a workflow read may show: the workflow
    projection, and the precedent index behind its `precedents` and `simulation` (waiting
    for the workflows alone let a fresh review show no precedent while its index lagged)."""
    services = services_of(info)
    cursors = await projection.wait_for(
        services.projections,
        services.log,
        tenant,
        ALL_PROJECTIONS,
        at_least,
        within=services.settings.read_wait_seconds,
    )
    return cursors[WORKFLOWS]


def _payload(tenant: str, item: Any, **extra: Any) -> WorkflowPayload:
    return WorkflowPayload(workflow=workflow_of(tenant, item), errors=[], **extra)


def _refused(error: DecisionGraphError) -> WorkflowPayload:
    return WorkflowPayload(workflow=None, errors=user_errors([error]))


@strawberry.type
class WorkflowQuery:
    @strawberry.field(
        description="The review inbox: overdue open items first, then by priority, then "
        "oldest; filters combine with AND."
    )
    async def workflows(
        self,
        info: Info[Any, Any],
        only_open: bool = False,
        status: list[WorkflowStatus] | None = None,
        assigned_account_id: str | None = None,
        assigned_role: str | None = None,
        priority: Annotated[
            str | None, strawberry.argument(description="urgent, high, normal or low")
        ] = None,
        trace_id: str | None = None,
        kind: WorkflowKind | None = None,
        overdue: bool = False,
        first: int = 50,
        after: str | None = None,
        at_least: Long | None = None,
    ) -> WorkflowConnection:
        tenant = authorize(info, Permission.READ)
        projected_to = await _ready(info, tenant, at_least)
        check_first(first)
        if priority is not None and priority not in PRIORITIES:
            raise invalid_argument(f"priority must be one of {', '.join(PRIORITIES)}")
        if status is not None and not status:
            raise invalid_argument("status must not be empty if specified")
        offset = decode_cursor("workflow", after) if after else 0
        now = datetime.now(UTC)
        filters = InboxFilter(
            statuses=tuple(s.value for s in status) if status else None,
            only_open=only_open,
            only_overdue=overdue,
            assigned_account_id=assigned_account_id,
            assigned_role=assigned_role,
            priority=priority,
            trace_id=trace_id,
            kind=kind.value if kind else None,
        )
        items = await services_of(info).workflows.items(tenant, filters, now)
        items.sort(key=lambda item: inbox_order(item, now))
        page = items[offset : offset + first]
        edges = [
            WorkflowEdge(
                node=workflow_of(tenant, item), cursor=encode_cursor("workflow", offset + i + 1)
            )
            for i, item in enumerate(page)
        ]
        counts = {status: sum(1 for i in items if i.status == status) for status in
                  ("requested", "in_review", "changes_requested", "escalated", "approved",
                   "rejected", "overridden")}  # fmt: skip
        return WorkflowConnection(
            edges=edges,
            page_info=page_info([e.cursor for e in edges], offset + first < len(items), offset > 0),
            total_count=len(items),
            summary=WorkflowSummary(
                total=len(items),
                open=sum(1 for i in items if i.is_open),
                overdue=sum(1 for i in items if i.overdue(now)),
                **counts,
            ),
            projected_to=Long(projected_to),
        )

    @strawberry.field(description="One workflow, with its history, notifications and context.")
    async def workflow(
        self, info: Info[Any, Any], workflow_id: str, at_least: Long | None = None
    ) -> Workflow:
        tenant = authorize(info, Permission.READ)
        await _ready(info, tenant, at_least)
        return workflow_of(tenant, await service.get(deps_of(info), tenant, workflow_id))

    @strawberry.field(description="The built-in review templates.")
    def workflow_templates(self, info: Info[Any, Any]) -> list[WorkflowTemplate]:
        authorize(info, Permission.READ)
        return [template_of(t) for t in TEMPLATES.values()]

    @strawberry.field(
        description="Dry run for a trace: risk signals, priority, template, precedents, and "
        "the review it would open (a `failure` outcome counts as unfavourable)."
    )
    async def policy_simulation(
        self, info: Info[Any, Any], trace_id: str, template_id: str | None = None
    ) -> PolicySimulation:
        tenant = authorize(info, Permission.READ)
        if template_id is not None and template_id not in TEMPLATES:
            raise invalid_argument(f"Unknown review template {template_id!r}")
        deps = deps_of(info)
        sim, hits = await service.simulation(deps, tenant, trace_id, template_id)
        existing = await deps.workflows.items(
            tenant, InboxFilter(trace_id=trace_id), datetime.now(UTC)
        )
        overview = await deps.log.trace_overview(tenant, trace_id)
        title = service._trace_title(overview.started) if overview else trace_id
        return simulation_of(
            trace_id, title or trace_id, sim, hits, [workflow_of(tenant, i) for i in existing]
        )

    @strawberry.field(
        description="A self-contained evidence bundle for a trace or a workflow (admin); "
        "`decisiongraph audit verify FILE` re-checks it offline."
    )
    async def audit_export(
        self, info: Info[Any, Any], trace_id: str | None = None, workflow_id: str | None = None
    ) -> JSON:
        tenant = authorize(info, Permission.ADMIN)
        bundle = await service.export_bundle(
            deps_of(info), tenant, trace_id=trace_id, workflow_id=workflow_id
        )
        await services_of(info).audit.record(
            tenant_id=tenant,
            key_id=_actor(info).account_id,
            action="audit_export",
            outcome="accepted",
            target=workflow_id or trace_id,
        )
        return JSON(bundle)


@strawberry.type
class WorkflowMutation:
    @strawberry.mutation(
        description="Approve or reject: appends ApprovalRecorded to the trace (or, once the "
        "trace is finished, to its review trace `review:<traceId>`)."
    )
    async def review_workflow(
        self,
        info: Info[Any, Any],
        workflow_id: str,
        decision: ReviewDecision,
        rationale: str,
        evidence: list[JSON] | None = None,
        request_id: Annotated[
            str | None,
            strawberry.argument(description="Makes a retry of this decision idempotent."),
        ] = None,
    ) -> WorkflowPayload:
        try:
            tenant = authorize(info, Permission.REVIEW)
            item, event = await service.decide(
                deps_of(info), tenant, workflow_id, decision.value, rationale, evidence,
                _actor(info), request_id=request_id,
            )  # fmt: skip
        except DecisionGraphError as error:
            return _refused(error)
        return _payload(tenant, item, appended_event_id=event.event_id)

    @strawberry.mutation(
        description="CLAIM (-> in review, assigned to you), COMMENT, REQUEST_CHANGES, "
        "REASSIGN, ESCALATE, or OVERRIDE (admin; `confirmation` must read "
        "'OVERRIDE <WORKFLOW ID IN UPPER CASE>')."
    )
    async def workflow_action(
        self,
        info: Info[Any, Any],
        workflow_id: str,
        action: WorkflowActionKind,
        reason: str | None = None,
        note: str | None = None,
        evidence: list[JSON] | None = None,
        assigned_account_id: str | None = None,
        assigned_role: str | None = None,
        confirmation: str | None = None,
        request_id: Annotated[
            str | None,
            strawberry.argument(description="Makes a retry of this action idempotent."),
        ] = None,
    ) -> WorkflowPayload:
        try:
            if action is WorkflowActionKind.OVERRIDE:
                tenant = authorize(info, Permission.ADMIN)
                item, event = await service.decide(
                    deps_of(info), tenant, workflow_id, "override", reason, evidence,
                    _actor(info), confirmation=confirmation, request_id=request_id,
                )  # fmt: skip
                return _payload(tenant, item, appended_event_id=event.event_id)
            tenant = authorize(info, Permission.REVIEW)
            request = {
                "reason": reason,
                "note": note,
                "evidence": evidence,
                "assigned_account_id": assigned_account_id,
                "assigned_role": assigned_role,
            }
            item = await service.act(
                deps_of(info), tenant, workflow_id, action.value, request, _actor(info),
                request_id=request_id,
            )  # fmt: skip
        except DecisionGraphError as error:
            return _refused(error)
        return _payload(tenant, item)

    @strawberry.mutation(
        description="Open a review of a trace from a template (appends "
        "WorkflowReviewRequested); returns the open one if it exists (`created: false`)."
    )
    async def start_trace_review(
        self,
        info: Info[Any, Any],
        trace_id: str,
        reason: str,
        template_id: str | None = None,
    ) -> WorkflowPayload:
        try:
            tenant = authorize(info, Permission.REVIEW)
            item, created = await service.start_review(
                deps_of(info), tenant, trace_id, template_id, reason, _actor(info)
            )
        except DecisionGraphError as error:
            return _refused(error)
        return _payload(tenant, item, created=created)


@strawberry.type
class WorkflowSubscription:
    @strawberry.subscription(
        description="Workflow changes in order (new reviews, decisions, claims, comments, "
        "escalations by people or by the SLA timer). Without `afterSeq`, changes from now "
        "on; with it, everything after it first (resume with the last `seq` received)."
    )
    async def workflow_changed(
        self, info: Info[Any, Any], after_seq: Long | None = None
    ) -> AsyncGenerator[WorkflowChange, None]:
        tenant = authorize(info, Permission.READ)
        services = services_of(info)
        stream = live.follow_workflow_changes(services.live, services.workflows, tenant, after_seq)
        SUBSCRIPTIONS.inc()
        try:
            async for seq, action, status in stream:
                yield change_of(seq, action, status)
        finally:
            SUBSCRIPTIONS.dec()
