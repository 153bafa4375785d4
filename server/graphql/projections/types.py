"""GraphQL types of projection state."""

from __future__ import annotations

from enum import Enum
from typing import Any, cast

import strawberry
from strawberry.types import Info

from server.core.digest import Digests as CoreDigests
from server.core.graph import EdgeRow, NodeRow
from server.core.precedent_query import PrecedentHit
from server.core.trace_summary import SummaryRow
from server.graphql.context import services_of
from server.graphql.relay import PageInfo
from server.graphql.scalars import JSON, Long
from server.service import projection
from server.service.projection import Health


@strawberry.enum
class ProjectionStatus(Enum):
    READY = "READY"
    CATCHING_UP = "CATCHING_UP"
    FAILING = "FAILING"


@strawberry.enum
class EdgeDirection(Enum):
    OUTGOING = "outgoing"
    INCOMING = "incoming"
    BOTH = "both"


@strawberry.type(description="A projection that stopped before this event (it is not skipped).")
class ProjectionFailure:
    projection: str
    log_seq: Long
    event_id: str
    trace_id: str
    code: str
    message: str
    attempts: int


@strawberry.type
class ProjectionState:
    name: str
    cursor: Long
    pending: Long = strawberry.field(description="Log positions not yet projected.")
    stale: bool
    status: ProjectionStatus
    failures: list[ProjectionFailure]


@strawberry.type(description="spec/semantics.md §6.8 digests of the projection state.")
class Digests:
    context_graph: str | None = None
    trace_summary: str | None = None
    precedent_index: str | None = None
    full_projection: str | None = None
    workflows: str | None = strawberry.field(
        default=None,
        description="The workflow projection's digest (not part of fullProjection).",
    )


def digests_of(values: CoreDigests, workflows: str | None = None) -> Digests:
    return Digests(
        context_graph=values.context_graph,
        trace_summary=values.trace_summary,
        precedent_index=values.precedent_index,
        full_projection=values.full_projection,
        workflows=workflows,
    )


@strawberry.type
class ProjectionHealth:
    tenant_id: strawberry.Private[str]
    last_log_seq: Long
    event_count: Long
    trace_count: Long
    projected_to: Long = strawberry.field(description="The slowest projection's cursor.")
    projections: list[ProjectionState]

    @strawberry.field(description="Computed from the current state (cached per cursor).")
    async def digests(self, info: Info[Any, Any]) -> Digests:
        _, values, workflows = await projection.digests(
            services_of(info).projections, self.tenant_id
        )
        return digests_of(values, workflows)


def health_of(health: Health) -> ProjectionHealth:
    return ProjectionHealth(
        tenant_id=health.tenant_id,
        last_log_seq=Long(health.last_log_seq),
        event_count=Long(health.event_count),
        trace_count=Long(health.trace_count),
        projected_to=Long(health.projected_to),
        projections=[
            ProjectionState(
                name=p.name,
                cursor=Long(p.cursor),
                pending=Long(p.pending),
                stale=p.stale,
                status=ProjectionStatus(p.status),
                failures=[
                    ProjectionFailure(
                        projection=f.projection,
                        log_seq=Long(f.log_seq),
                        event_id=f.event_id,
                        trace_id=f.trace_id,
                        code=f.code,
                        message=f.message,
                        attempts=f.attempts,
                    )
                    for f in p.failures
                ],
            )
            for p in health.projections
        ],
    )


@strawberry.type(
    description="The trace summary projection. `eventCount` is 1 for an open trace and 2 "
    "for a finished one (spec §6.4, a parity quirk); `Trace.eventCount` counts events."
)
class TraceSummary:
    trace_id: str
    workflow: str
    title: str
    primary_entity_type: str | None
    primary_entity_id: str | None
    outcome: str | None
    started_at: str
    finished_at: str | None
    event_count: int
    last_log_seq: Long


def summary_of(row: SummaryRow) -> TraceSummary:
    return TraceSummary(
        trace_id=row.trace_id,
        workflow=row.workflow,
        title=row.title,
        primary_entity_type=row.primary_entity_type,
        primary_entity_id=row.primary_entity_id,
        outcome=row.outcome,
        started_at=row.started_at,
        finished_at=row.finished_at,
        event_count=row.event_count,
        last_log_seq=Long(row.last_log_seq),
    )


@strawberry.type
class TraceSummaryEdge:
    node: TraceSummary
    cursor: str


@strawberry.type
class TraceSummaryConnection:
    edges: list[TraceSummaryEdge]
    page_info: PageInfo
    projected_to: Long


# Graph rows carry no attributes in this version (spec §6.2): always {}.
_NO_ATTRS: JSON = cast(JSON, {})


@strawberry.type
class GraphNode:
    node_id: str
    node_type: str
    trace_id: str
    log_seq: Long
    created_at: str
    attrs: JSON


@strawberry.type
class GraphEdge:
    edge_id: str
    edge_type: str
    from_node_id: str
    to_node_id: str
    trace_id: str
    log_seq: Long
    created_at: str
    attrs: JSON


def node_of(row: NodeRow) -> GraphNode:
    return GraphNode(
        node_id=row.node_id,
        node_type=row.node_type,
        trace_id=row.trace_id,
        log_seq=Long(row.log_seq),
        created_at=row.created_at,
        attrs=_NO_ATTRS,
    )


def edge_of(row: EdgeRow) -> GraphEdge:
    return GraphEdge(
        edge_id=row.edge_id,
        edge_type=row.edge_type,
        from_node_id=row.from_node_id,
        to_node_id=row.to_node_id,
        trace_id=row.trace_id,
        log_seq=Long(row.log_seq),
        created_at=row.created_at,
        attrs=_NO_ATTRS,
    )


@strawberry.type(description="A neighbourhood of the context graph (spec §7.5).")
class ContextGraph:
    center: str
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    truncated: bool
    projected_to: Long


@strawberry.type
class GraphEdgeEdge:
    node: GraphEdge
    cursor: str


@strawberry.type
class GraphEdgeConnection:
    edges: list[GraphEdgeEdge]
    page_info: PageInfo


@strawberry.type(description="A finished trace that decided under the same policy or entity.")
class Precedent:
    trace_id: str
    workflow: str
    title: str
    outcome: str | None
    policy_id: str | None
    policy_version: str | None
    finished_at: str | None
    last_log_seq: Long


def precedent_of(hit: PrecedentHit) -> Precedent:
    return Precedent(
        trace_id=hit.trace_id,
        workflow=hit.workflow,
        title=hit.title,
        outcome=hit.outcome,
        policy_id=hit.policy_id,
        policy_version=hit.policy_version,
        finished_at=hit.finished_at,
        last_log_seq=Long(hit.last_log_seq),
    )
