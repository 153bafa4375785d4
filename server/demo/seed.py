"""`decisiongraph demo seed`: the release demo of spec/platform.md §7, and its report (§7.7).

The 22 events go through the append use case (validation, idempotency: every event has a
fixed key, so re-seeding writes nothing). The projections are then caught up with the same
function a worker runs, and the SLA timers fire through the same function the worker's
sweep calls, so the two overdue reviews are escalated by the real mechanism (once: a second
seed finds them done). The report is read back from the projections, per tenant, so its
digests and positions are the same on every database.
"""

from __future__ import annotations

from typing import Any, Final

from server.core.digest import (
    CONTEXT_GRAPH,
    FULL_PROJECTION,
    PRECEDENT_INDEX,
    TRACE_SUMMARY,
    full_digest,
)
from server.core.envelope import envelope_from_dict
from server.core.projection_batch import PROJECTIONS
from server.core.workflow import InboxFilter, inbox_order
from server.demo.release_demo import (
    INCIDENT,
    LIVE,
    LIVE_WORKFLOW,
    PRECEDENT,
    PRECEDENT_WORKFLOW,
    REVIEW_WORKFLOW,
    release_demo_events,
)
from server.pubsub.announcer import RedisAnnouncer
from server.pubsub.channels import Channels
from server.pubsub.connection import redis_client
from server.pubsub.queue import JobQueue
from server.service import precedent_cases, projection
from server.service import workflows as workflow_service
from server.service.append import append_events
from server.service.clock import SystemClock
from server.service.scored_precedent import ScoredPrecedents
from server.settings import Settings
from server.store.database import create_pool
from server.store.event_log import PostgresEventLog
from server.store.precedent_cases import PostgresPrecedentCases
from server.store.projections import PostgresProjections

SEED_PROFILE: Final = "release_demo"
SEED_BATCH: Final = 250


def console_paths(tenant_id: str) -> dict[str, str]:
    def link(trace_id: str, workflow_id: str) -> str:
        return f"/?tenant={tenant_id}&trace_id={trace_id}&workflow_id={workflow_id}"

    return {
        "default": link(LIVE, LIVE_WORKFLOW),
        "incident_review": link(INCIDENT, REVIEW_WORKFLOW),
    }


def api_examples() -> dict[str, str]:
    """The report's API examples, as GraphQL operations (spec/api.md "Release demo")."""
    return {
        "export_workflow": (
            f'query ExportWorkflow {{ auditExport(workflowId: "{REVIEW_WORKFLOW}") }}'
        ),
        "projection_health": (
            "query ProjectionHealth { projectionHealth { lastLogSeq projections { name cursor "
            "pending stale status } digests { fullProjection } } }"
        ),
        "recent_workflows": (
            "query RecentWorkflows { workflows(onlyOpen: false, first: 12) { edges { node { "
            "workflowId status priority slaDueAt overdue } } } }"
        ),
        "selected_trace": (
            f'query SelectedTrace {{ trace(traceId: "{LIVE}") {{ traceId title eventCount '
            "events { edges { node { traceSeq eventType logSeq } } } } }"
        ),
    }


async def seed_release_demo(settings: Settings, tenant_id: str = "release-demo") -> dict[str, Any]:
    pool = await create_pool(settings.require_database_url, size=4, application_name="dg-seed")
    redis = redis_client(settings.require_redis_url)
    channels = Channels(settings.namespace)
    announcer = RedisAnnouncer(redis, channels, JobQueue(redis, channels).catch_up)
    announcer.start()
    try:
        log = PostgresEventLog(pool)
        projections = PostgresProjections(pool, SEED_BATCH)
        clock = SystemClock()
        envelopes = [envelope_from_dict(raw) for raw in release_demo_events()]
        outcome = await append_events(log, announcer, clock, settings.limits, tenant_id, envelopes)
        if outcome.errors:
            raise RuntimeError(f"release demo refused: {outcome.errors[0]}")
        await projection.catch_up_to_end(projections, log, announcer, tenant_id)
        cases = PostgresPrecedentCases(pool)
        await precedent_cases.catch_up(cases, tenant_id)
        deps = workflow_service.Deps(
            log=log,
            projections=projections,
            workflows=projections.workflows,
            publisher=announcer,
            clock=clock,
            limits=settings.limits,
        )
        await workflow_service.run_timers(deps)
        report = await _report(deps, tenant_id)
    finally:
        await announcer.stop()
        await redis.aclose()
        await pool.close()
    return report


async def _report(deps: workflow_service.Deps, tenant_id: str) -> dict[str, Any]:
    now = deps.clock.now()
    stats = await deps.log.stats(tenant_id)
    cursors = await deps.projections.cursors(tenant_id)
    _, digests = await deps.projections.digests(tenant_id)
    health = await projection.health(deps.log, deps.projections, tenant_id)
    items = await deps.workflows.items(tenant_id, InboxFilter(), now)
    items.sort(key=lambda item: inbox_order(item, now))
    status = {item.workflow_id: item.status for item in items}
    recent = await deps.projections.recent(tenant_id, limit=24)
    live_events = await deps.log.trace_events(tenant_id, LIVE)
    cited = [
        e.payload["cited_trace_id"]
        for e in live_events
        if e.event_type == "PrecedentCited" and isinstance(e.payload, dict)
    ]
    overdue = sum(1 for item in items if item.overdue(now))
    failures = sum(len(p.failures) for p in health.projections)
    stale = sum(1 for p in health.projections if p.stale)
    # The console's alert rules (ui/views/overview.py): failures, SLA risk, lag.
    alerts = sum(1 for count in (failures, overdue, stale) if count)
    return {
        "api_examples": api_examples(),
        "console_paths": console_paths(tenant_id),
        "console_snapshot": {
            "alert_count": alerts,
            "selected_trace_id": LIVE,
            "selected_workflow_id": LIVE_WORKFLOW,
        },
        "event_count": stats.event_count,
        "highlighted_traces": [
            {
                "title": "Approved precedent",
                "trace_id": PRECEDENT,
                "workflow_id": PRECEDENT_WORKFLOW,
            },
            {"title": "Live exception review", "trace_id": LIVE, "workflow_id": LIVE_WORKFLOW},
            {"title": "Incident review", "trace_id": INCIDENT, "workflow_id": REVIEW_WORKFLOW},
        ],
        "live_trace": {
            "event_count": len(live_events),
            "precedent_trace_ids": cited,
            "trace_id": LIVE,
            "workflow_id": LIVE_WORKFLOW,
            "workflow_status": status.get(LIVE_WORKFLOW),
        },
        "precedent_trace_id": PRECEDENT,
        "projection_digests": {
            CONTEXT_GRAPH: digests[CONTEXT_GRAPH],
            PRECEDENT_INDEX: digests[PRECEDENT_INDEX],
            TRACE_SUMMARY: digests[TRACE_SUMMARY],
            FULL_PROJECTION: _full(digests),
        },
        "projection_results": [
            {
                "last_log_seq": cursors[name],
                "pending_events": max(stats.last_log_seq - cursors[name], 0),
                "processed_events": cursors[name],
                "projection_name": name,
                "tenant_id": tenant_id,
            }
            for name in PROJECTIONS
        ],
        "recent_trace_ids": [row.trace_id for row in recent],
        "review_workflow": {
            "trace_id": INCIDENT,
            "workflow_id": REVIEW_WORKFLOW,
            "workflow_status": status.get(REVIEW_WORKFLOW),
        },
        "seed_profile": SEED_PROFILE,
        "tenant_id": tenant_id,
        "workflow_inbox": {
            "item_ids": [item.workflow_id for item in items],
            "open_count": sum(1 for item in items if item.is_open),
            "overdue_count": overdue,
        },
    }


async def scored_precedent_lines(settings: Settings, tenant_id: str) -> list[str]:
    """The live trace's scored precedent as `demo seed` prints it (the report JSON keeps
    to the spec's keys): the best case, its score and why it matched."""
    pool = await create_pool(settings.require_database_url, size=2, application_name="dg-seed")
    try:
        scorer = ScoredPrecedents(PostgresPrecedentCases(pool), PostgresEventLog(pool))
        ranked = await scorer.rank(tenant_id, LIVE, 3)
    finally:
        await pool.close()
    lines = [f"  scored precedent for {LIVE}:"]
    for scored in ranked.results:
        why = "; ".join(m.detail for m in scored.matches)
        lines.append(
            f"    {scored.case.trace_id} score {scored.score:.2f} "
            f"({scored.case.decision or 'undecided'}): {why}"
        )
    lines += [f"    warning: {w.message}" for w in ranked.warnings]
    return lines


def _full(digests: dict[str, str]) -> str:
    return full_digest(digests[CONTEXT_GRAPH], digests[TRACE_SUMMARY], digests[PRECEDENT_INDEX])


def summary_lines(report: dict[str, Any]) -> list[str]:
    """What `demo seed` prints (spec/platform.md §7.7's stdout summary)."""
    lines = [
        "DecisionGraph release demo seeded",
        f"  tenant_id: {report['tenant_id']}",
        f"  seed_profile: {report['seed_profile']}",
        f"  event_count: {report['event_count']}",
        f"  live_trace_id: {report['live_trace']['trace_id']}",
        f"  live_workflow_id: {report['live_trace']['workflow_id']}",
        f"  incident_review_workflow_id: {report['review_workflow']['workflow_id']}",
        f"  open_workflows: {report['workflow_inbox']['open_count']}",
    ]

    lines += [f"  console {name}: {path}" for name, path in report["console_paths"].items()]
    lines += [f"  api {name}: {operation}" for name, operation in report["api_examples"].items()]
    return lines
