"""Projection use cases: catch up, health, read-your-writes, graph and precedent reads."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from server.core.digest import Digests
from server.core.errors import out_of_date
from server.core.graph import EdgeRow, NodeRow
from server.core.graph_query import GraphFilter, SubgraphSearch, node_key
from server.core.precedent_query import PrecedentHit, PrecedentQuery
from server.core.projection_batch import Failure, FailureRecord
from server.core.replay import ALL_PROJECTIONS
from server.core.workflow import WORKFLOWS
from server.service.ports import EventLog, Projections, Publisher

READY: Final = "READY"
CATCHING_UP: Final = "CATCHING_UP"
FAILING: Final = "FAILING"

DEFAULT_WAIT_SECONDS: Final = 5.0


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    name: str
    cursor: int
    pending: int
    stale: bool
    status: str
    failures: tuple[FailureRecord, ...]


@dataclass(frozen=True, slots=True)
class Health:
    tenant_id: str
    last_log_seq: int
    event_count: int
    trace_count: int
    projections: tuple[ProjectionStatus, ...]

    @property
    def projected_to(self) -> int:
        return min((p.cursor for p in self.projections), default=0)


async def health(log: EventLog, projections: Projections, tenant_id: str) -> Health:
    stats = await log.stats(tenant_id)
    cursors = await projections.cursors(tenant_id)
    failures = await projections.failures(tenant_id)
    statuses = []
    for name in ALL_PROJECTIONS:
        cursor = cursors.get(name, 0)
        mine = tuple(f for f in failures if f.projection == name)
        lag = max(stats.last_log_seq - cursor, 0)  # a difference of positions (spec §6.9)
        status = FAILING if mine else (CATCHING_UP if lag else READY)
        statuses.append(
            ProjectionStatus(name, cursor, lag, cursor < stats.last_log_seq, status, mine)
        )
    return Health(
        tenant_id, stats.last_log_seq, stats.event_count, stats.trace_count, tuple(statuses)
    )


async def digests(
    projections: Projections, scope: str
) -> tuple[dict[str, int], Digests, str | None]:
    """Cursors, the spec §6.8 digests, and the workflow projection's digest."""
    positions, values = await projections.digests(scope)
    return (
        positions,
        Digests(
            context_graph=values["context_graph"],
            trace_summary=values["trace_summary"],
            precedent_index=values["precedent_index"],
        ),
        values.get(WORKFLOWS),
    )


@dataclass
class CatchUpResult:
    applied: int = 0
    cursors: dict[str, int] = field(default_factory=dict)
    failure: Failure | None = None
    done: bool = False


async def catch_up(
    projections: Projections,
    publisher: Publisher | None,
    tenant_id: str,
    *,
    budget_seconds: float = 10.0,
) -> CatchUpResult:
    """Project the tenant's log batch after batch until caught up, stopped, or out of time.

    Projections another worker is busy with are left to it (their advisory lock is
    held), so running this from several workers at once is safe and never doubles work.
    """
    result = CatchUpResult()
    deadline = time.monotonic() + budget_seconds
    while True:
        report = await projections.catch_up(tenant_id)
        result.applied += report.applied
        result.cursors.update(report.cursors)
        if report.applied and publisher is not None:
            await publisher.health_changed(tenant_id, min(report.cursors.values()))
            if WORKFLOWS in report.cursors:
                await publisher.workflow_changed(tenant_id, report.cursors[WORKFLOWS])
        if report.failure is not None:
            result.failure = report.failure
            return result
        if not report.more:
            result.done = True
            return result
        if time.monotonic() > deadline:
            return result


async def catch_up_to_end(
    projections: Projections,
    log: EventLog,
    publisher: Publisher | None,
    tenant_id: str,
    *,
    within: float = 60.0,
) -> int:
    """Every projection of the tenant at the log's end, here and now (a worker may be doing
    part of it: its batches are waited for, never repeated). Returns the log's end; a
    projection failure or running out of time raises."""
    last = (await log.stats(tenant_id)).last_log_seq
    deadline = time.monotonic() + within
    while True:
        result = await catch_up(projections, publisher, tenant_id)
        if result.failure is not None:
            raise result.failure.error
        cursors = await projections.cursors(tenant_id)
        if min(cursors[name] for name in ALL_PROJECTIONS) >= last:
            return last
        if time.monotonic() > deadline:
            raise TimeoutError(f"projections of {tenant_id} did not reach {last}")
        await asyncio.sleep(0.05)


async def wait_for(
    projections: Projections,
    log: EventLog,
    tenant_id: str,
    names: Sequence[str],
    at_least: int | None,
    within: float = DEFAULT_WAIT_SECONDS,
) -> dict[str, int]:
    """Cursors of `names`, once they reach `at_least` (read-your-writes), bounded.

    A position past the end of the log fails at once: waiting cannot reach a position
    nobody has written, and a client reading its own write always names a committed one.
    """
    cursors = await projections.cursors(tenant_id)
    if at_least is None or min(cursors[n] for n in names) >= at_least:
        return cursors
    last = (await log.stats(tenant_id)).last_log_seq
    if at_least > last:
        raise out_of_date(min(cursors[n] for n in names), at_least)
    deadline = time.monotonic() + within
    pause = 0.005
    while min(cursors[n] for n in names) < at_least:
        if time.monotonic() >= deadline:
            raise out_of_date(min(cursors[n] for n in names), last)
        await asyncio.sleep(pause)
        pause = min(pause * 1.5, 0.05)
        cursors = await projections.cursors(tenant_id)
    return cursors


@dataclass(frozen=True, slots=True)
class Subgraph:
    center: str
    nodes: list[NodeRow]
    edges: list[EdgeRow]
    truncated: bool


async def subgraph(
    projections: Projections, scope: str, node_type: str, node_id: str, limits: GraphFilter
) -> Subgraph:
    """§7.5: BFS from a node; the core decides, this only fetches each level's edges."""
    search = SubgraphSearch(node_key(node_type, node_id), limits)
    edge_types = sorted(limits.edge_types) if limits.edge_types else None
    while search.wants_more:
        search.absorb(await projections.edges_touching(scope, sorted(search.frontier), edge_types))
    nodes = await projections.nodes(scope, search.nodes)
    edges = await projections.edges(scope, search.edges) if search.edges else []
    return Subgraph(search.center, nodes, edges, search.truncated)


async def precedents(
    projections: Projections, scope: str, query: PrecedentQuery
) -> list[PrecedentHit]:
    return await projections.precedents(scope, query)
