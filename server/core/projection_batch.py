"""One projection step over a batch of events, as a pure function.

The store supplies what the batch needs from storage (cursors, the next expected
trace_seq per trace, existing summary rows, the source events of traces that finish in
the batch) and writes back what this returns, rows and cursors in one transaction.
Each projection only takes the events past its own cursor. Verification (payload hash,
trace_seq continuity) is a property of the log, so it runs once per event for all; the
first event that fails any check, or any projection, ends the batch there: everything
before it is applied, nothing from it on (spec/semantics.md §6.2, §6.7).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from server.core.digest import CONTEXT_GRAPH, PRECEDENT_INDEX, TRACE_SUMMARY
from server.core.envelope import ProjectedEvent, StoredEvent
from server.core.errors import DecisionGraphError
from server.core.event_types import POLICY_EVALUATED, TRACE_FINISHED
from server.core.graph import EdgeRow, NodeRow, emit
from server.core.precedent import PolicyEvalRow, PrecedentRow, policy_eval_row, precedent_rows
from server.core.projector import verify_event
from server.core.trace_summary import SummaryRow, apply_summary, touches_summary

PROJECTIONS: Final = (CONTEXT_GRAPH, TRACE_SUMMARY, PRECEDENT_INDEX)


@dataclass(frozen=True, slots=True)
class BatchInputs:
    events: Sequence[StoredEvent]
    cursors: Mapping[str, int]
    next_trace_seq: Mapping[str, int]
    summaries: Mapping[str, SummaryRow]
    finishing_sources: Mapping[str, Sequence[StoredEvent]]


@dataclass(frozen=True, slots=True)
class Failure:
    event: ProjectedEvent
    error: DecisionGraphError


@dataclass
class BatchOutput:
    """Rows to write (first-write-wins rows deduplicated), new cursors, and any failure.

    `precedents` maps each trace that finished in the batch to its complete new rows.
    """

    cursors: dict[str, int]
    nodes: dict[str, NodeRow] = field(default_factory=dict)
    edges: dict[str, EdgeRow] = field(default_factory=dict)
    summaries: dict[str, SummaryRow] = field(default_factory=dict)
    policy_evals: dict[str, PolicyEvalRow] = field(default_factory=dict)
    precedents: dict[str, list[PrecedentRow]] = field(default_factory=dict)
    applied: int = 0
    failure: Failure | None = None


@dataclass(frozen=True, slots=True)
class BatchReport:
    """What one catch-up transaction did."""

    projections: tuple[str, ...]
    applied: int
    cursors: dict[str, int]
    more: bool
    failure: Failure | None = None
    busy: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FailureRecord:
    """An open projection failure: the projection stopped before this event."""

    projection: str
    log_seq: int
    event_id: str
    trace_id: str
    code: str
    message: str
    attempts: int


def traces_needing_summaries(events: Sequence[StoredEvent]) -> set[str]:
    return {e.trace_id for e in events if touches_summary(e.event_type)}


def finishing_traces(events: Sequence[StoredEvent]) -> set[str]:
    return {e.trace_id for e in events if e.event_type == TRACE_FINISHED}


def project_batch(inputs: BatchInputs, projections: Collection[str] = PROJECTIONS) -> BatchOutput:
    out = BatchOutput(cursors={p: inputs.cursors.get(p, 0) for p in projections})
    expected = dict(inputs.next_trace_seq)
    current = dict(inputs.summaries)
    for event in inputs.events:
        try:
            verify_event(event, expected.get(event.trace_id, 0))
            step = _project_one(event, out.cursors, current, inputs.finishing_sources)
        except DecisionGraphError as error:
            out.failure = Failure(event, error)
            break
        expected[event.trace_id] = event.trace_seq + 1
        _merge(out, step, current)
        for projection in out.cursors:
            out.cursors[projection] = max(out.cursors[projection], event.log_seq)
        out.applied += 1
    return out


@dataclass
class _Step:
    nodes: list[NodeRow] = field(default_factory=list)
    edges: list[EdgeRow] = field(default_factory=list)
    summary: SummaryRow | None = None
    policy_eval: PolicyEvalRow | None = None
    finished_trace: str | None = None
    precedents: list[PrecedentRow] = field(default_factory=list)


def _project_one(
    event: StoredEvent,
    cursors: Mapping[str, int],
    summaries: Mapping[str, SummaryRow],
    finishing_sources: Mapping[str, Sequence[StoredEvent]],
) -> _Step:
    """Everything one event contributes; raises before anything of it is kept."""
    step = _Step()
    if event.log_seq > cursors.get(CONTEXT_GRAPH, event.log_seq):
        emission = emit(event)
        step.nodes, step.edges = emission.nodes, emission.edges
    if event.log_seq > cursors.get(TRACE_SUMMARY, event.log_seq):
        step.summary = apply_summary(summaries.get(event.trace_id), event)
    if event.log_seq > cursors.get(PRECEDENT_INDEX, event.log_seq):
        if event.event_type == POLICY_EVALUATED:
            step.policy_eval = policy_eval_row(event)
        elif event.event_type == TRACE_FINISHED:
            step.finished_trace = event.trace_id
            step.precedents = precedent_rows(finishing_sources.get(event.trace_id, ()))
    return step


def _merge(out: BatchOutput, step: _Step, current: dict[str, SummaryRow]) -> None:
    for node in step.nodes:
        out.nodes.setdefault(node.node_id, node)
    for edge in step.edges:
        out.edges.setdefault(edge.edge_id, edge)
    if step.summary is not None:
        current[step.summary.trace_id] = step.summary
        out.summaries[step.summary.trace_id] = step.summary
    if step.policy_eval is not None:
        out.policy_evals.setdefault(step.policy_eval.index_id, step.policy_eval)
    if step.finished_trace is not None:
        # Replaces the trace's rows (an empty list still clears them).
        out.precedents[step.finished_trace] = step.precedents
