"""Review workflow use cases: decide, act, start reviews, run SLA timers, simulate.

Decisions (approve, reject, override) and new reviews are events: they are appended to the
trace through the normal append path (validation, idempotency, sequencing), and the
workflow projection applies them. A trace that is already finished keeps its lock: its
decisions go to the companion review trace `review:<trace_id>` (core/workflow.py). Other
actions (claim, comment, request changes, reassign, escalate) and the SLA timer's
escalations and warnings are journal entries, validated and applied in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from server.core.audit_bundle import build_bundle
from server.core.clock import format_timestamp
from server.core.digest import (
    CONTEXT_GRAPH,
    FULL_PROJECTION,
    PRECEDENT_INDEX,
    TRACE_SUMMARY,
    Digests,
)
from server.core.envelope import ActorRef, EventEnvelope, SourceRef, StoredEvent
from server.core.errors import (
    EVENT_SEQUENCE_INVALID,
    DecisionGraphError,
    invalid_argument,
    not_found,
)
from server.core.event_types import (
    APPROVAL_RECORDED,
    EXCEPTION_REQUESTED,
    POLICY_EVALUATED,
    TRACE_STARTED,
    WORKFLOW_REVIEW_REQUESTED,
)
from server.core.precedent_query import PrecedentHit, PrecedentQuery
from server.core.validation import Limits
from server.core.workflow import (
    APPROVE,
    DEADLINE_RISK,
    DEADLINE_RISK_MINUTES,
    OVERRIDE,
    SLA_ACTOR,
    TEMPLATES,
    InboxFilter,
    Simulation,
    WorkflowItem,
    check_action,
    check_decision,
    normalize_evidence,
    notification_dict,
    override_phrase,
    review_trace_id,
    simulate,
    timer_kind,
)
from server.service.append import append_events
from server.service.ports import Clock, EventLog, Projections, Publisher, Workflows

_log = logging.getLogger(__name__)

SOURCE: Final = SourceRef("workflow-service", "decisiongraph-api", "workflow")
CATCH_UP_WITHIN: Final = 5.0
APPEND_ATTEMPTS: Final = 3


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: an API key, shown by its name."""

    account_id: str
    name: str

    @property
    def journal(self) -> tuple[str, str, str | None]:
        return (self.name, "api_key", self.account_id)

    @property
    def ref(self) -> ActorRef:
        return ActorRef("api_key", self.name)


@dataclass(frozen=True, slots=True)
class Deps:
    log: EventLog
    projections: Projections
    workflows: Workflows
    publisher: Publisher
    clock: Clock
    limits: Limits


async def caught_up(deps: Deps, tenant_id: str, within: float = CATCH_UP_WITHIN) -> None:
    """Bring the workflow projection to the log's end (read-your-writes for decisions)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        report = await deps.workflows.catch_up(tenant_id)
        if report.failure is not None:
            raise report.failure.error
        if not report.more and not report.busy:
            if report.applied:
                await _announce(deps, tenant_id)
            return
        if loop.time() > deadline:
            return  # a worker holds it; the caller reads what is there
        if report.busy:
            await asyncio.sleep(0.01)


async def _announce(deps: Deps, tenant_id: str) -> None:
    try:
        await deps.publisher.workflow_changed(
            tenant_id, await deps.workflows.last_change(tenant_id)
        )
    except Exception:  # notices are best effort
        _log.warning("could not announce a workflow change of %s", tenant_id)


async def get(deps: Deps, tenant_id: str, workflow_id: str) -> WorkflowItem:
    item = await deps.workflows.get(tenant_id, workflow_id)
    if item is None:
        raise not_found(f"Workflow not found: {workflow_id}")
    return item


async def act(
    deps: Deps,
    tenant_id: str,
    workflow_id: str,
    kind: str,
    request: dict[str, Any],
    actor: Actor,
    *,
    request_id: str | None = None,
) -> WorkflowItem:
    """Claim, comment, request changes, reassign or escalate. With a `request_id`, a retry
    of an action already recorded changes nothing and returns the workflow as it is."""
    await caught_up(deps, tenant_id)
    now = format_timestamp(deps.clock.now())
    done = await deps.workflows.act(
        tenant_id,
        workflow_id,
        kind,
        request,
        actor.journal,
        now,
        lambda item: check_action(item, kind, request),
        dedupe_key=None if request_id is None else f"request:{workflow_id}:{request_id}"[:400],
    )
    if done is None:
        return await get(deps, tenant_id, workflow_id)
    await _announce(deps, tenant_id)
    return done[0]


async def decide(
    deps: Deps,
    tenant_id: str,
    workflow_id: str,
    decision: str,
    rationale: str | None,
    evidence: Any,
    actor: Actor,
    *,
    confirmation: str | None = None,
    request_id: str | None = None,
) -> tuple[WorkflowItem, StoredEvent]:
    """Approve, reject or override: an ApprovalRecorded in the trace (or its review trace).

    With a `request_id`, a retry of a decision that was already recorded returns that
    decision's event instead of being refused as a decision on a closed workflow."""
    await caught_up(deps, tenant_id)
    item = await get(deps, tenant_id, workflow_id)
    if request_id is not None:
        earlier = await _recorded(
            deps, tenant_id, item.trace_id, f"workflow:{workflow_id}:{decision}:{request_id}"
        )
        if earlier is not None:
            return item, earlier
    reason = check_decision(item, decision, rationale)
    if decision == OVERRIDE and (confirmation or "").strip() != override_phrase(workflow_id):
        raise invalid_argument(
            f"Overriding needs the confirmation phrase {override_phrase(workflow_id)!r}"
        )
    unique = request_id or uuid.uuid4().hex
    subject = (
        {"subject_type": "override", "subject_id": workflow_id}
        if decision == OVERRIDE
        else {"subject_type": item.subject_type, "subject_id": item.subject_id}
    )
    payload = {
        "approval_id": f"approval:{workflow_id}:{unique}"[:400],
        "approver": {"actor_id": actor.name, "actor_type": "api_key"},
        "decision": "approved" if decision in (APPROVE, OVERRIDE) else "rejected",
        "evidence": normalize_evidence(evidence),
        "reason": reason,
        "subject": subject,
    }
    key = f"workflow:{workflow_id}:{decision}:{unique}"
    stored = await _append_to_trace(
        deps, tenant_id, item.trace_id, APPROVAL_RECORDED, payload, key, actor,
        causation=item.approval_event_id or item.created_from_event_id,
    )  # fmt: skip
    await caught_up(deps, tenant_id)
    return await get(deps, tenant_id, workflow_id), stored


async def start_review(
    deps: Deps,
    tenant_id: str,
    trace_id: str,
    template_id: str | None,
    reason: str | None,
    actor: Actor,
) -> tuple[WorkflowItem, bool]:
    """Open (or find) the trace's review for `template_id`; (workflow, created)."""
    text = (reason or "").strip()
    if not text:
        raise invalid_argument("A reason is required to start a review")
    if template_id is not None and template_id not in TEMPLATES:
        raise invalid_argument(f"Unknown review template {template_id!r}")
    sim, _ = await simulation(deps, tenant_id, trace_id, template_id)
    await caught_up(deps, tenant_id)
    existing = await deps.workflows.get(tenant_id, sim.workflow_id)
    if existing is not None and existing.is_open:
        return existing, False
    template = sim.template
    overview = await deps.log.trace_overview(tenant_id, trace_id)
    assert overview is not None  # simulation() checked
    title = _trace_title(overview.started)
    payload = {
        "assignee": {"account_id": None, "role": template.reviewer_role},
        "priority": template.default_priority if template_id else sim.priority,
        "reason": text,
        "simulation": {
            "risk_signals": list(sim.risk_signals),
            "recommended_reason": sim.recommended_reason,
        },
        "sla_hours": template.default_sla_hours,
        "subject": {"subject_id": template.template_id, "subject_type": "trace_review"},
        "template_id": template.template_id,
        "title": f"{template.title} for {title}" if title else template.title,
        "workflow_kind": template.kind,
    }
    key = f"workflow-review-request:{trace_id}:{template.template_id}:{uuid.uuid4().hex}"
    await _append_to_trace(
        deps, tenant_id, trace_id, WORKFLOW_REVIEW_REQUESTED, payload, key[:200], actor,
        causation=None,
    )  # fmt: skip
    await caught_up(deps, tenant_id)
    return await get(deps, tenant_id, sim.workflow_id), True


async def _recorded(
    deps: Deps, tenant_id: str, trace_id: str, idempotency_key: str
) -> StoredEvent | None:
    """The event a request already appended to the trace or its review trace, if any."""
    for trace in (trace_id, review_trace_id(trace_id)):
        for event in await deps.log.trace_events(tenant_id, trace):
            if event.idempotency_key == idempotency_key:
                return event
    return None


def _trace_title(started: StoredEvent) -> str:
    payload = started.payload if isinstance(started.payload, dict) else {}
    title = payload.get("title")
    return title if isinstance(title, str) else ""


async def _append_to_trace(
    deps: Deps,
    tenant_id: str,
    trace_id: str,
    event_type: str,
    payload: dict[str, Any],
    idempotency_key: str,
    actor: Actor,
    causation: str | None,
) -> StoredEvent:
    """Append to the trace, or to its review trace once it is finished. A concurrent
    writer may take the next trace_seq first: plan again, a few times."""
    last_error: DecisionGraphError | None = None
    for _ in range(APPEND_ATTEMPTS):
        envelopes = await _plan_append(
            deps, tenant_id, trace_id, event_type, payload, idempotency_key, actor, causation
        )
        outcome = await append_events(
            deps.log, deps.publisher, deps.clock, deps.limits, tenant_id, envelopes
        )
        if not outcome.errors:
            return outcome.events[-1].event
        last_error = outcome.errors[0]
        if last_error.code != EVENT_SEQUENCE_INVALID:
            raise last_error
    assert last_error is not None
    raise last_error


async def _plan_append(
    deps: Deps,
    tenant_id: str,
    trace_id: str,
    event_type: str,
    payload: dict[str, Any],
    idempotency_key: str,
    actor: Actor,
    causation: str | None,
) -> list[EventEnvelope]:
    overview = await deps.log.trace_overview(tenant_id, trace_id)
    if overview is None:
        raise not_found(f"Trace not found: {trace_id}")
    now = format_timestamp(deps.clock.now())
    target, body, envelopes = trace_id, dict(payload), []
    next_seq = overview.event_count
    if overview.finished is not None:
        target = review_trace_id(trace_id)
        body["reviewed_trace_id"] = trace_id
        review = await deps.log.trace_overview(tenant_id, target)
        next_seq = review.event_count if review else 0
        if review is None:
            started = {
                "workflow": "decision_review",
                "title": f"Review of {_trace_title(overview.started) or trace_id}",
                "primary_entity": {
                    "entity_type": "trace",
                    "entity_id": trace_id,
                    "system": "decisiongraph",
                },
                "reviewed_trace_id": trace_id,
            }
            key = f"review-trace:{trace_id}"
            envelopes.append(_envelope(target, 0, TRACE_STARTED, started, now, actor, None, key))
            next_seq = 1
    envelopes.append(
        _envelope(target, next_seq, event_type, body, now, actor, causation, idempotency_key)
    )
    return envelopes


def _envelope(
    trace_id: str,
    seq: int,
    event_type: str,
    payload: dict[str, Any],
    now: str,
    actor: Actor,
    causation: str | None,
    idempotency_key: str | None,
) -> EventEnvelope:
    slug = "".join("-" + c.lower() if c.isupper() else c for c in event_type).lstrip("-")
    return EventEnvelope(
        event_id=f"{trace_id}-{slug}-{seq}-{uuid.uuid4().hex[:8]}",
        trace_id=trace_id,
        trace_seq=seq,
        event_type=event_type,
        occurred_at=now,
        source=SOURCE,
        actor=actor.ref,
        idempotency_key=(idempotency_key or f"{event_type}:{trace_id}:{seq}")[:200],
        payload=payload,
        correlation_id=trace_id,
        causation_event_id=causation,
    )


# -- the SLA timer -------------------------------------------------------------------


async def run_timers(deps: Deps, now: datetime | None = None) -> int:
    """Escalate every overdue review and warn about those close to due, across tenants.

    Each firing is a journal entry with a dedupe key (workflow, kind, due time) taken under
    the workflow lock, so a firing happens once however many workers race for it, and a
    restarted worker simply finds it done.
    """
    moment = now or deps.clock.now()
    fired = 0
    for due in await deps.workflows.due(moment, DEADLINE_RISK_MINUTES):

        def check(item: WorkflowItem, kind: str = due.kind) -> dict[str, Any] | None:
            if timer_kind(item, moment, warned=False) not in (kind, DEADLINE_RISK):
                return None  # it moved on meanwhile (decided, escalated, ...)
            return {"sla_due_at": item.sla_due_at}

        done = await deps.workflows.act(
            due.tenant_id,
            due.workflow_id,
            due.kind,
            {},
            (SLA_ACTOR[0], SLA_ACTOR[1], None),
            format_timestamp(moment),
            check,
            dedupe_key=f"{due.kind}:{due.workflow_id}:{due.sla_due_at}",
        )
        if done is not None:
            fired += 1
            _log.info("workflow %s/%s: %s", due.tenant_id, due.workflow_id, due.kind)
            await _announce(deps, due.tenant_id)
    return fired


# -- the studio ----------------------------------------------------------------------


async def simulation(
    deps: Deps, tenant_id: str, trace_id: str, template_id: str | None = None
) -> tuple[Simulation, list[PrecedentHit]]:
    """The dry run of spec §4.7 for a trace, and the precedents it looked at."""
    overview = await deps.log.trace_overview(tenant_id, trace_id)
    if overview is None:
        raise not_found(f"Trace not found: {trace_id}")
    events = await deps.log.trace_events(tenant_id, trace_id)
    started = overview.started.payload if isinstance(overview.started.payload, dict) else {}
    entity = started.get("primary_entity")
    entity = entity if isinstance(entity, dict) else {}
    outcome = None
    if overview.finished is not None and isinstance(overview.finished.payload, dict):
        found = overview.finished.payload.get("outcome")
        outcome = found if isinstance(found, str) else None
    policy = _latest_policy(events)
    hits = await deps.projections.precedents(
        tenant_id,
        PrecedentQuery(
            entity_type=entity.get("entity_type") if policy is None else None,
            entity_id=entity.get("entity_id") if policy is None else None,
            policy_id=policy[0] if policy else None,
            policy_version=policy[1] if policy else None,
            outcome=None,
            limit=6,
        ),
    )
    hits = [h for h in hits if h.trace_id != trace_id]
    sim = simulate(
        trace_id,
        _trace_title(overview.started) or trace_id,
        outcome,
        overview.finished is not None,
        any(e.event_type == EXCEPTION_REQUESTED for e in events),
        [h.outcome for h in hits],
        template_id,
    )
    return sim, hits[:4]


def _latest_policy(events: Sequence[StoredEvent]) -> tuple[str, str] | None:
    for event in reversed(events):
        if event.event_type == POLICY_EVALUATED and isinstance(event.payload, dict):
            policy = event.payload.get("policy")
            if isinstance(policy, dict):
                return str(policy.get("policy_id")), str(policy.get("policy_version"))
    return None


def latest_policy(events: Sequence[StoredEvent]) -> dict[str, Any] | None:
    """The trace's policy basis: its latest PolicyEvaluated payload."""
    for event in reversed(events):
        if event.event_type == POLICY_EVALUATED and isinstance(event.payload, dict):
            return {"event_id": event.event_id, "log_seq": event.log_seq} | event.payload
    return None


# -- evidence ------------------------------------------------------------------------


async def export_bundle(
    deps: Deps, tenant_id: str, *, trace_id: str | None, workflow_id: str | None
) -> dict[str, Any]:
    """The audit bundle (core/audit_bundle.py) of a trace, or of a workflow's trace."""
    if (trace_id is None) == (workflow_id is None):
        raise invalid_argument("Name exactly one of traceId and workflowId")
    await caught_up(deps, tenant_id)
    if workflow_id is not None:
        trace_id = (await get(deps, tenant_id, workflow_id)).trace_id
    assert trace_id is not None
    if await deps.log.trace_overview(tenant_id, trace_id) is None:
        raise not_found(f"Trace not found: {trace_id}")
    events = await deps.log.trace_events(tenant_id, trace_id)
    events += await deps.log.trace_events(tenant_id, review_trace_id(trace_id))
    items = await deps.workflows.items(tenant_id, InboxFilter(trace_id=trace_id), deps.clock.now())
    ids = [i.workflow_id for i in items]
    actions = [a for wid in ids for a in await deps.workflows.actions(tenant_id, wid)]
    actions.sort(key=lambda pair: pair[0])
    notices = [
        {"seq": seq} | notification_dict(n)
        for wid in ids
        for seq, n in await deps.workflows.notifications(tenant_id, wid, limit=10_000)
    ]
    positions, values = await deps.projections.digests(tenant_id)
    spec = Digests(values[CONTEXT_GRAPH], values[TRACE_SUMMARY], values[PRECEDENT_INDEX])
    return build_bundle(
        tenant_id=tenant_id,
        subject_kind="workflow" if workflow_id else "trace",
        subject_id=workflow_id or trace_id,
        exported_at=format_timestamp(deps.clock.now()),
        events=events,
        workflows=items,
        actions=actions,
        notifications=notices,
        journal=await deps.workflows.journal(tenant_id, ids),
        tenant_digests={"positions": positions, **values, FULL_PROJECTION: spec.full_projection},
    )
