"""Per-event projection checks (spec/semantics.md §6.2 steps 1-2) and an in-memory projector.

The in-memory projector composes the same pure functions the PostgreSQL projection store
uses; it is the oracle for property tests and never serves production reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from server.core.canonical_json import payload_hash_mismatch
from server.core.digest import Digests, array_digest, graph_digest, sorted_fragments
from server.core.envelope import LoggedFacts, ProjectedEvent, StoredEvent
from server.core.errors import conflict, sequence_invalid
from server.core.event_types import POLICY_EVALUATED, TRACE_FINISHED
from server.core.graph import EdgeRow, NodeRow, emit
from server.core.precedent import (
    PRECEDENT_SOURCE_TYPES,
    PolicyEvalRow,
    PrecedentRow,
    policy_eval_row,
    precedent_rows,
)
from server.core.trace_summary import SummaryRow, apply_summary


def verify_event(event: ProjectedEvent, expected_trace_seq: int) -> None:
    """Refuse an event whose payload no longer matches its hash, or that skips a trace_seq."""
    verified = isinstance(event, LoggedFacts) and event.hash_verified
    actual = None if verified else payload_hash_mismatch(event.payload, event.payload_hash)
    if actual is not None:
        raise conflict(
            f"Payload hash mismatch for event {event.event_id}: "
            f"expected {event.payload_hash}, got {actual}"
        )
    if event.trace_seq != expected_trace_seq:
        raise sequence_invalid(
            f"trace_seq gap in trace {event.trace_id}: "
            f"expected {expected_trace_seq}, got {event.trace_seq}"
        )


@dataclass
class InMemoryProjector:
    """All three projections over dicts; `apply` mirrors one committed projection step."""

    nodes: dict[str, NodeRow] = field(default_factory=dict)
    edges: dict[str, EdgeRow] = field(default_factory=dict)
    summaries: dict[str, SummaryRow] = field(default_factory=dict)
    policy_evals: dict[str, PolicyEvalRow] = field(default_factory=dict)
    precedents: dict[str, PrecedentRow] = field(default_factory=dict)
    tracker: dict[str, int] = field(default_factory=dict)
    cursor: int = 0
    _sources: dict[str, list[StoredEvent]] = field(default_factory=dict)

    def apply(self, event: StoredEvent) -> None:
        verify_event(event, self.tracker.get(event.trace_id, 0))
        emission = emit(event)
        for node in emission.nodes:
            self.nodes.setdefault(node.node_id, node)
        for edge in emission.edges:
            self.edges.setdefault(edge.edge_id, edge)
        summary = apply_summary(self.summaries.get(event.trace_id), event)
        if summary is not None:
            self.summaries[event.trace_id] = summary
        if event.event_type in PRECEDENT_SOURCE_TYPES:
            self._sources.setdefault(event.trace_id, []).append(event)
        if event.event_type == POLICY_EVALUATED:
            row = policy_eval_row(event)
            self.policy_evals.setdefault(row.index_id, row)
        if event.event_type == TRACE_FINISHED:
            self._rebuild_precedents(event.trace_id)
        self.tracker[event.trace_id] = self.tracker.get(event.trace_id, 0) + 1
        self.cursor = event.log_seq

    def apply_all(self, events: Iterable[StoredEvent]) -> None:
        for event in events:
            self.apply(event)

    def _rebuild_precedents(self, trace_id: str) -> None:
        rows = precedent_rows(sorted(self._sources.get(trace_id, []), key=lambda e: e.trace_seq))
        for key in [k for k, row in self.precedents.items() if row.trace_id == trace_id]:
            del self.precedents[key]
        for row in rows:
            self.precedents.setdefault(row.source_event_id, row)

    def digests(self) -> Digests:
        return Digests(
            context_graph=graph_digest(
                sorted_fragments(self.nodes.values(), "node_id"),
                sorted_fragments(self.edges.values(), "edge_id"),
            ),
            trace_summary=array_digest(sorted_fragments(self.summaries.values(), "trace_id")),
            precedent_index=array_digest(
                sorted_fragments(self.precedents.values(), "source_event_id")
            ),
        )
