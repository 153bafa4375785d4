"""A whole-log projection, streamed: the rows a REBUILD or VERIFY loads in bulk.

It composes the same pure functions as `project_batch` but keeps, instead of reading them
back from storage, the little state a scope's projections need between events: the next
trace_seq of each trace, the summary and precedent sources of each open trace, and the
node ids written so far (nodes are first-write-wins). Every row leaves exactly once, in
its final form: a trace's summary and precedent rows when the trace finishes (the log
refuses events after TraceFinished), the summaries of open traces at `close()`. The
result is, row for row, what incremental catch-up writes over the same events.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from msgspec import structs

from server.core.digest import (
    CONTEXT_GRAPH,
    PRECEDENT_INDEX,
    TRACE_SUMMARY,
    DigestWriter,
)
from server.core.envelope import ProjectedEvent
from server.core.errors import DecisionGraphError
from server.core.event_types import POLICY_EVALUATED, TRACE_FINISHED
from server.core.graph import EdgeRow, NodeRow, emit
from server.core.precedent import (
    PRECEDENT_SOURCE_TYPES,
    PolicyEvalRow,
    PrecedentRow,
    policy_eval_row,
    precedent_rows,
)
from server.core.projection_batch import PROJECTIONS, Failure
from server.core.projector import verify_event
from server.core.trace_summary import SummaryRow, apply_summary
from server.core.value import Value


@dataclass(slots=True)
class BulkRows:
    """Rows ready to load; each appears once in the whole stream."""

    nodes: list[NodeRow] = field(default_factory=list)
    edges: list[EdgeRow] = field(default_factory=list)
    summaries: list[SummaryRow] = field(default_factory=list)
    policy_evals: list[PolicyEvalRow] = field(default_factory=list)
    precedents: list[PrecedentRow] = field(default_factory=list)

    def __len__(self) -> int:
        return (
            len(self.nodes)
            + len(self.edges)
            + len(self.summaries)
            + len(self.policy_evals)
            + len(self.precedents)
        )

    def records(self, table: str) -> list[tuple[Any, ...]]:
        """One table's rows as records: their fields in order (the table's columns)."""
        rows: list[Value] = getattr(self, table)
        return [structs.astuple(row) for row in rows]


@dataclass(frozen=True, slots=True)
class CopyRows:
    """Rows already in PostgreSQL's binary COPY tuple format, the scope first: how the
    native pass gives the graph's rows of a load (no Python object per row)."""

    data: bytes
    count: int


def _no_rows() -> CopyRows:
    return CopyRows(b"", 0)


@dataclass(slots=True)
class BulkRecords:
    """BulkRows as the native pass (native_projection.py) gives them: the graph's rows as
    COPY tuples, the others as records."""

    nodes: CopyRows = field(default_factory=_no_rows)
    edges: CopyRows = field(default_factory=_no_rows)
    summaries: list[tuple[Any, ...]] = field(default_factory=list)
    policy_evals: list[tuple[Any, ...]] = field(default_factory=list)
    precedents: list[tuple[Any, ...]] = field(default_factory=list)

    def records(self, table: str) -> list[tuple[Any, ...]] | CopyRows:
        records: list[tuple[Any, ...]] | CopyRows = getattr(self, table)
        return records


@dataclass(frozen=True, slots=True)
class BulkOutcome:
    """How a bulk REBUILD or VERIFY ended: stopped at a failure, cancelled, or whole
    (VERIFY: with the scratch digests)."""

    failure: Failure | None = None
    cancelled: bool = False
    digests: dict[str, str] = field(default_factory=dict)
    native: bool = False  # done by the native pass (native_projection.py), not Python


def advance(cursors: dict[str, int], limits: Mapping[str, int], last: int) -> None:
    """Each projection's cursor after events up to `last` were applied. Positions are
    gapless, so each has reached the last event applied or its limit, whichever is first."""
    for name in cursors:
        limit = limits.get(name)
        reached = last if limit is None else min(last, limit)
        cursors[name] = max(cursors[name], reached)


class BulkProjector:
    """Feeds events in log order; `limits` stops each projection at its own position."""

    def __init__(
        self, projections: Collection[str] = PROJECTIONS, limits: Mapping[str, int] | None = None
    ) -> None:
        self.projections = tuple(p for p in PROJECTIONS if p in projections)
        self.limits = dict(limits or {})
        self.cursors = dict.fromkeys(self.projections, 0)
        self.failure: Failure | None = None
        self.applied = 0
        self._graph = CONTEXT_GRAPH in self.projections
        self._summary = TRACE_SUMMARY in self.projections
        self._precedent = PRECEDENT_INDEX in self.projections
        self._expected: dict[str, int] = {}
        self._open: dict[str, SummaryRow] = {}
        self._sources: dict[str, list[ProjectedEvent]] = {}
        self._nodes: set[str] = set()
        self._policy_evals: set[str] = set()

    @property
    def end(self) -> int:
        """The last position any projection still wants (0: no limit)."""
        if len(self.limits) < len(self.projections):
            return 0
        return max(self.limits[p] for p in self.projections)

    def feed(self, events: Iterable[ProjectedEvent]) -> BulkRows:
        """Project events in order; stops for good at the first that fails."""
        out = BulkRows()
        if self.failure is not None:
            return out
        expected, applied = self._expected, 0
        for event in events:
            try:
                verify_event(event, expected.get(event.trace_id, 0))
                self._project(event, out)
            except DecisionGraphError as error:
                self.failure = Failure(event, error)
                break
            expected[event.trace_id] = event.trace_seq + 1
            applied += 1
            last = event.log_seq
        if applied:
            self.applied += applied
            advance(self.cursors, self.limits, last)
        return out

    def close(self) -> BulkRows:
        """The summaries of traces still open: their final rows for this log."""
        return BulkRows(summaries=list(self._open.values()))

    def _wants(self, projection: str, event: ProjectedEvent) -> bool:
        limit = self.limits.get(projection)
        return limit is None or event.log_seq <= limit

    def _project(self, event: ProjectedEvent, out: BulkRows) -> None:
        """Everything one event contributes; raises before anything of it is kept."""
        if self.limits:
            graph = self._graph and self._wants(CONTEXT_GRAPH, event)
            summary = self._summary and self._wants(TRACE_SUMMARY, event)
            precedent = self._precedent and self._wants(PRECEDENT_INDEX, event)
        else:
            graph, summary, precedent = self._graph, self._summary, self._precedent
        emission = emit(event, self._nodes) if graph else None
        new_summary = apply_summary(self._open.get(event.trace_id), event) if summary else None
        finished = event.event_type == TRACE_FINISHED
        evaluated = None
        if precedent and event.event_type == POLICY_EVALUATED:
            evaluated = policy_eval_row(event)
        ranked = None
        if precedent and finished:
            ranked = precedent_rows(self._sources.get(event.trace_id, ()))
        # Nothing raised: keep it all.
        if emission is not None:
            for node in emission.nodes:
                if node.node_id not in self._nodes:
                    self._nodes.add(node.node_id)
                    out.nodes.append(node)
            out.edges.extend(_unique_edges(emission.edges))
        if summary:
            if new_summary is not None:
                self._open[event.trace_id] = new_summary
            if finished and event.trace_id in self._open:
                out.summaries.append(self._open.pop(event.trace_id))
        if precedent:
            if evaluated is not None and evaluated.index_id not in self._policy_evals:
                self._policy_evals.add(evaluated.index_id)
                out.policy_evals.append(evaluated)
            if ranked is not None:
                out.precedents.extend(ranked)
                self._sources.pop(event.trace_id, None)
            elif event.event_type in PRECEDENT_SOURCE_TYPES:
                self._sources.setdefault(event.trace_id, []).append(event)


def _unique_edges(edges: list[EdgeRow]) -> list[EdgeRow]:
    # An edge id names its event, so repeats can only come from within one emission.
    if len(edges) < 2:
        return edges
    seen: set[str] = set()
    unique = []
    for edge in edges:
        if edge.edge_id not in seen:
            seen.add(edge.edge_id)
            unique.append(edge)
    return unique


# Hashes the sorted, joined C3 fragments of COPY tuples (in parts) of node rows (False) or
# edge rows (True), scope first, into a writer; the rows: native_projection.digest_graph,
# handed in (it imports this module).
GraphDigest = Callable[[DigestWriter, list[bytes], bool], int]


class ScratchDigests:
    """The digests of streamed rows, kept in memory: a VERIFY of a small log needs no
    scratch tables. Python orders strings by code point, which is the byte order of their
    UTF-8 and so the `COLLATE "C"` order of the stored digests. The graph's rows may come
    as COPY tuples (the native pass's), digested by `graph_digest`."""

    def __init__(self, graph_digest: GraphDigest | None = None) -> None:
        self._nodes: list[NodeRow] = []
        self._edges: list[EdgeRow] = []
        self._summaries: list[SummaryRow] = []
        self._precedents: list[PrecedentRow] = []
        self._copied: dict[bool, list[bytes]] = {False: [], True: []}  # edges? -> tuples
        self._graph_digest = graph_digest

    def add(self, rows: BulkRows | BulkRecords) -> None:
        if isinstance(rows, BulkRecords):
            self._copied[False].append(rows.nodes.data)
            self._copied[True].append(rows.edges.data)
            self._summaries += [SummaryRow(*record) for record in rows.summaries]
            self._precedents += [PrecedentRow(*record) for record in rows.precedents]
            return
        self._nodes += rows.nodes
        self._edges += rows.edges
        self._summaries += rows.summaries
        self._precedents += rows.precedents

    def _graph(self, writer: DigestWriter, edges: bool) -> None:
        rows, key = (self._edges, "edge_id") if edges else (self._nodes, "node_id")
        if any(self._copied[edges]):
            assert self._graph_digest is not None
            assert not rows, "one kind of rows a run"
            self._graph_digest(writer, self._copied[edges], edges)
            return
        rows.sort(key=attrgetter(key))
        writer.rows(rows)

    def digests(self, projections: Collection[str]) -> dict[str, str]:
        def digest(*parts: str | tuple[list[Any], str]) -> str:
            writer = DigestWriter()
            for part in parts:
                if isinstance(part, str):
                    writer.text(part)
                else:
                    rows, key = part
                    rows.sort(key=attrgetter(key))  # ids are unique within a table
                    writer.rows(rows)
            return writer.hexdigest()

        out = {}
        if CONTEXT_GRAPH in projections:
            writer = DigestWriter()
            writer.text('{"edges":[')
            self._graph(writer, edges=True)
            writer.text('],"nodes":[')
            self._graph(writer, edges=False)
            writer.text("]}")
            out[CONTEXT_GRAPH] = writer.hexdigest()
        if TRACE_SUMMARY in projections:
            out[TRACE_SUMMARY] = digest("[", (self._summaries, "trace_id"), "]")
        if PRECEDENT_INDEX in projections:
            out[PRECEDENT_INDEX] = digest("[", (self._precedents, "source_event_id"), "]")
        return out
