"""Projection queries. `atLeast` waits (bounded) for the projections a read depends on."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from server.auth.principal import Permission
from server.core.errors import invalid_argument
from server.core.graph_query import EdgeCursor, GraphFilter, check_edge_page, node_key
from server.core.precedent_query import PrecedentQuery
from server.core.replay import ALL_PROJECTIONS
from server.graphql.context import authorize, services_of
from server.graphql.projections.types import (
    ContextGraph,
    EdgeDirection,
    GraphEdgeConnection,
    GraphEdgeEdge,
    Precedent,
    ProjectionHealth,
    TraceSummaryConnection,
    TraceSummaryEdge,
    edge_of,
    health_of,
    node_of,
    precedent_of,
    summary_of,
)
from server.graphql.relay import decode_keyset, encode_keyset, page_info
from server.graphql.scalars import Long
from server.service import projection
from server.service.queries import check_first


async def _ready(
    info: Info[Any, Any], tenant: str, names: tuple[str, ...], at_least: int | None
) -> int:
    services = services_of(info)
    cursors = await projection.wait_for(
        services.projections,
        services.log,
        tenant,
        names,
        at_least,
        within=services.settings.read_wait_seconds,
    )
    return min(cursors[n] for n in names)


def _parse_edge_cursor(cursor: str) -> EdgeCursor:
    edge_id, direction, log_seq = decode_keyset("edge", cursor, 3)
    if (
        not isinstance(edge_id, str)
        or not isinstance(direction, str)
        or not (log_seq is None or type(log_seq) is int)
    ):
        raise invalid_argument(f"Invalid cursor {cursor!r}")
    return EdgeCursor(edge_id, direction, log_seq)


@strawberry.type
class ProjectionQuery:
    @strawberry.field(description="Log position, lag, status, failures and digests.")
    async def projection_health(
        self, info: Info[Any, Any], at_least: Long | None = None
    ) -> ProjectionHealth:
        tenant = authorize(info, Permission.READ)
        await _ready(info, tenant, ALL_PROJECTIONS, at_least)
        services = services_of(info)
        return health_of(await projection.health(services.log, services.projections, tenant))

    @strawberry.field(description="Trace summaries, newest first (by last log position).")
    async def traces(
        self,
        info: Info[Any, Any],
        first: int = 20,
        after: str | None = None,
        search: str | None = None,
        workflow: str | None = None,
        status: Annotated[
            str | None,
            strawberry.argument(description="open, finished, or an outcome such as success"),
        ] = None,
        at_least: Long | None = None,
    ) -> TraceSummaryConnection:
        tenant = authorize(info, Permission.READ)
        projected_to = await _ready(info, tenant, ("trace_summary",), at_least)
        check_first(first)
        before = None
        if after:
            seq, trace_id = decode_keyset("trace", after, 2)
            if type(seq) is not int or not isinstance(trace_id, str):
                raise invalid_argument(f"Invalid cursor {after!r}")
            before = (seq, trace_id)
        rows = await services_of(info).projections.recent(
            tenant,
            before=before,
            limit=first + 1,
            search=search or None,
            workflow=workflow or None,
            status=status or None,
        )
        edges = [
            TraceSummaryEdge(
                node=summary_of(r), cursor=encode_keyset("trace", r.last_log_seq, r.trace_id)
            )
            for r in rows[:first]
        ]
        return TraceSummaryConnection(
            edges=edges,
            page_info=page_info([e.cursor for e in edges], len(rows) > first),
            projected_to=Long(projected_to),
        )

    @strawberry.field(description="BFS neighbourhood of a node (spec §7.5 semantics).")
    async def context_graph(
        self,
        info: Info[Any, Any],
        node_type: str,
        node_id: str,
        max_depth: int = 1,
        max_nodes: int = 100,
        max_edges: int = 500,
        edge_types: list[str] | None = None,
        node_types: list[str] | None = None,
        at_least: Long | None = None,
    ) -> ContextGraph:
        tenant = authorize(info, Permission.READ)
        limits = GraphFilter(
            edge_types=frozenset(edge_types) if edge_types is not None else None,
            node_types=frozenset(node_types) if node_types is not None else None,
            max_depth=max_depth,
            max_nodes=max_nodes,
            max_edges=max_edges,
        )
        projected_to = await _ready(info, tenant, ("context_graph",), at_least)
        graph = await projection.subgraph(
            services_of(info).projections, tenant, node_type, node_id, limits
        )
        return ContextGraph(
            center=graph.center,
            nodes=[node_of(n) for n in graph.nodes],
            edges=[edge_of(e) for e in graph.edges],
            truncated=graph.truncated,
            projected_to=Long(projected_to),
        )

    @strawberry.field(description="A node's edges by (logSeq, edgeId), keyset-paged.")
    async def node_edges(
        self,
        info: Info[Any, Any],
        node_type: str,
        node_id: str,
        direction: EdgeDirection = EdgeDirection.BOTH,
        first: int = 100,
        after: str | None = None,
        at_least: Long | None = None,
    ) -> GraphEdgeConnection:
        tenant = authorize(info, Permission.READ)
        cursor = _parse_edge_cursor(after) if after else None
        check_edge_page(direction.value, first, cursor)
        await _ready(info, tenant, ("context_graph",), at_least)
        rows, more = await services_of(info).projections.node_edges(
            tenant, node_key(node_type, node_id), direction.value, cursor, first
        )
        edges = [
            GraphEdgeEdge(
                node=edge_of(r), cursor=encode_keyset("edge", r.edge_id, direction.value, r.log_seq)
            )
            for r in rows
        ]
        return GraphEdgeConnection(
            edges=edges, page_info=page_info([e.cursor for e in edges], more)
        )

    @strawberry.field(description="Finished traces under a policy or entity (spec §7.6).")
    async def precedents(
        self,
        info: Info[Any, Any],
        policy_id: str | None = None,
        policy_version: str | None = None,
        entity_type: str | None = None,
        entity_id: str | None = None,
        outcome: str | None = None,
        first: int = 100,
        at_least: Long | None = None,
    ) -> list[Precedent]:
        tenant = authorize(info, Permission.READ)
        query = PrecedentQuery(policy_id, policy_version, entity_type, entity_id, outcome, first)
        await _ready(info, tenant, ("trace_summary", "precedent_index"), at_least)
        hits = await projection.precedents(services_of(info).projections, tenant, query)
        return [precedent_of(h) for h in hits]
