"""Trace and event queries, and the appendEvents mutation."""

from __future__ import annotations

from typing import Any, cast

import strawberry
from strawberry.types import Info

from server.auth.principal import Permission
from server.core.envelope import EventEnvelope
from server.core.errors import DecisionGraphError
from server.core.event_types import TRACE_STARTED
from server.graphql.context import (
    DGContext,
    Services,
    authorize,
    authorize_context,
    context_of,
    services_of,
)
from server.graphql.errors import UserError, user_errors
from server.graphql.projections.types import TraceSummary, summary_of
from server.graphql.relay import decode_cursor, encode_cursor, page_info
from server.graphql.scalars import Long
from server.graphql.traces.types import (
    AppendedEvent,
    EntityRef,
    EventConnection,
    EventEdge,
    EventInput,
    appended_of,
    event_of,
)
from server.observability import tracing
from server.service import projection, queries
from server.service.append import AppendOutcome, append_events
from server.service.ports import TraceOverview


def _connection(events: list[Any], kind: str, position: str, has_next: bool) -> EventConnection:
    edges = [
        EventEdge(node=event_of(e), cursor=encode_cursor(kind, getattr(e, position)))
        for e in events
    ]
    return EventConnection(edges=edges, page_info=page_info([e.cursor for e in edges], has_next))


@strawberry.type(description="A decision trace, read straight from the log (never stale).")
class Trace:
    tenant_id: strawberry.Private[str]
    trace_id: str
    workflow: str
    title: str
    primary_entity: EntityRef | None
    outcome: str | None
    started_at: str
    finished_at: str | None
    finished: bool
    event_count: int = strawberry.field(description="Number of events in the trace.")
    last_log_seq: Long

    @strawberry.field(description="The trace's events in trace_seq order (Relay connection).")
    async def events(
        self,
        info: Info[Any, Any],
        first: int = 100,
        after: str | None = None,
        after_trace_seq: int = -1,
    ) -> EventConnection:
        position = decode_cursor("trace_seq", after) if after else after_trace_seq
        rows, more = await queries.trace_events(
            services_of(info).log,
            self.tenant_id,
            self.trace_id,
            after_trace_seq=position,
            first=first,
        )
        return _connection(rows, "trace_seq", "trace_seq", more)

    @strawberry.field(description="The trace summary projection's row (null until projected).")
    async def summary(
        self, info: Info[Any, Any], at_least: Long | None = None
    ) -> TraceSummary | None:
        services = services_of(info)
        await projection.wait_for(
            services.projections,
            services.log,
            self.tenant_id,
            ("trace_summary",),
            at_least,
            within=services.settings.read_wait_seconds,
        )
        row = await services.projections.summary(self.tenant_id, self.trace_id)
        return summary_of(row) if row else None


def trace_of(tenant_id: str, overview: TraceOverview) -> Trace:
    start = overview.started.payload if overview.started.event_type == TRACE_STARTED else {}
    entity = start.get("primary_entity") if isinstance(start, dict) else None
    finish = overview.finished.payload if overview.finished else {}
    return Trace(
        tenant_id=tenant_id,
        trace_id=overview.started.trace_id,
        workflow=str(start.get("workflow", "")),
        title=str(start.get("title", "")),
        primary_entity=EntityRef(
            entity_type=entity.get("entity_type"),
            entity_id=entity.get("entity_id"),
            system=entity.get("system"),
        )
        if isinstance(entity, dict)
        else None,
        outcome=finish.get("outcome") if overview.finished else None,
        started_at=overview.started.occurred_at,
        finished_at=overview.finished.occurred_at if overview.finished else None,
        finished=overview.finished is not None,
        event_count=overview.event_count,
        last_log_seq=Long(overview.last_log_seq),
    )


@strawberry.type
class TraceQuery:
    @strawberry.field(description="A trace of the tenant, or null when it has none by that id.")
    async def trace(self, info: Info[Any, Any], trace_id: str) -> Trace | None:
        tenant = authorize(info, Permission.READ)
        overview = await queries.trace_overview(services_of(info).log, tenant, trace_id)
        return trace_of(tenant, overview) if overview else None

    @strawberry.field(description="The tenant's log after a position, oldest first.")
    async def events(
        self,
        info: Info[Any, Any],
        after_log_seq: Long = 0,  # type: ignore[assignment]
        first: int = 100,
        after: str | None = None,
        event_type: str | None = None,
        trace_id: str | None = None,
    ) -> EventConnection:
        tenant = authorize(info, Permission.READ)
        position = decode_cursor("log_seq", after) if after else after_log_seq
        rows, more = await queries.list_events(
            services_of(info).log,
            tenant,
            after_log_seq=position,
            first=first,
            event_type=event_type,
            trace_id=trace_id,
        )
        return _connection(rows, "log_seq", "log_seq", more)


@strawberry.type
class AppendEventsPayload:
    events: list[AppendedEvent]
    errors: list[UserError]


async def append_for(context: DGContext, envelopes: list[EventEnvelope]) -> AppendOutcome:
    """appendEvents itself, shared by the resolver and the compiled fast path."""
    try:
        tenant = authorize_context(context, Permission.APPEND)
    except DecisionGraphError as error:
        return AppendOutcome([], [error])
    services: Services = context.services
    with tracing.tracer().start_as_current_span(
        "dg.appendEvents", attributes={"dg.tenant": tenant, "dg.events": len(envelopes)}
    ) as span:
        outcome = await append_events(
            services.log, services.publisher, services.clock, services.limits, tenant, envelopes
        )
        span.set_attribute("dg.errors", len(outcome.errors))
    return outcome


@strawberry.type
class TraceMutation:
    @strawberry.mutation(
        description="Append a batch atomically, in order; an idempotent retry returns the "
        "originally stored events."
    )
    async def append_events(
        self, info: Info[Any, Any], events: list[EventInput]
    ) -> AppendEventsPayload:
        # EventInput's from_input hook already built core envelopes (traces/types.py).
        outcome = await append_for(context_of(info), cast(list[EventEnvelope], events))
        return AppendEventsPayload(
            events=[appended_of(p.event, p.replay) for p in outcome.events],
            errors=user_errors(outcome.errors),
        )
