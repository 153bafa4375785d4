"""The pure batch projector: same digests as the one-event-at-a-time oracle, any batching."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from server.core.append_plan import LogState, plan_batch
from server.core.digest import Digests, array_digest, graph_digest, sorted_fragments
from server.core.envelope import StoredEvent, envelope_from_dict
from server.core.errors import CONFLICT, EVENT_SEQUENCE_INVALID
from server.core.projection_batch import (
    BatchInputs,
    finishing_traces,
    project_batch,
    traces_needing_summaries,
)
from server.core.projector import InMemoryProjector
from server.core.trace_summary import SummaryRow
from server.core.validation import validate_envelope
from tests.support import SCENARIOS, golden_digests, golden_events


def stored(raw_events: Sequence[dict[str, object]]) -> list[StoredEvent]:
    batch = [validate_envelope(envelope_from_dict(e)) for e in raw_events]  # type: ignore[arg-type]
    return [p.event for p in plan_batch(batch, LogState(0, {}, {}, frozenset()), "t")]


class Tables:
    """An in-memory stand-in for the projection tables, fed batch by batch."""

    def __init__(self) -> None:
        self.nodes: dict[str, object] = {}
        self.edges: dict[str, object] = {}
        self.summaries: dict[str, SummaryRow] = {}
        self.precedents: dict[str, list[object]] = {}
        self.cursors: dict[str, int] = {}
        self.log: list[StoredEvent] = []

    def run(self, events: Sequence[StoredEvent], batch_size: int) -> None:
        self.log.extend(events)
        low = min(self.cursors.values(), default=0)
        pending = [e for e in self.log if e.log_seq > low]
        while pending:
            batch, pending = pending[:batch_size], pending[batch_size:]
            expected = {}
            for e in self.log:
                if e.log_seq <= min(self.cursors.values(), default=0):
                    expected[e.trace_id] = e.trace_seq + 1
            inputs = BatchInputs(
                events=batch,
                cursors=self.cursors,
                next_trace_seq=expected,
                summaries={
                    t: r for t, r in self.summaries.items() if t in traces_needing_summaries(batch)
                },
                finishing_sources={
                    t: [e for e in self.log if e.trace_id == t] for t in finishing_traces(batch)
                },
            )
            out = project_batch(inputs)
            assert out.failure is None
            for node_id, node in out.nodes.items():
                self.nodes.setdefault(node_id, node)
            for edge_id, edge in out.edges.items():
                self.edges.setdefault(edge_id, edge)
            self.summaries.update(out.summaries)
            self.precedents.update(out.precedents)
            self.cursors = out.cursors

    def digests(self) -> Digests:
        rows = [r for rs in self.precedents.values() for r in rs]
        return Digests(
            graph_digest(
                sorted_fragments(self.nodes.values(), "node_id"),  # type: ignore[arg-type]
                sorted_fragments(self.edges.values(), "edge_id"),
            ),  # type: ignore[arg-type]
            array_digest(sorted_fragments(self.summaries.values(), "trace_id")),
            array_digest(sorted_fragments(rows, "source_event_id")),  # type: ignore[arg-type]
        )


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("batch_size", [1, 2, 5, 1000])
def test_golden_digests_for_any_batch_size(scenario: str, batch_size: int) -> None:
    tables = Tables()
    tables.run(stored(golden_events(scenario)), batch_size)
    assert tables.digests().as_dict() == golden_digests(scenario)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=8))
def test_any_batching_of_the_combined_stream_gives_the_oracle_digests(sizes: list[int]) -> None:
    events = stored([e for s in SCENARIOS for e in golden_events(s)])
    oracle = InMemoryProjector()
    oracle.apply_all(events)
    tables = Tables()
    start = 0
    for size in sizes * 10:  # arrival in uneven chunks, projected in uneven batches
        chunk = events[start : start + size]
        if not chunk:
            break
        tables.run(chunk, batch_size=sizes[0])
        start += size
    tables.run(events[start:], batch_size=3)
    assert tables.digests() == oracle.digests()


def test_a_tampered_payload_stops_the_batch_at_that_event() -> None:
    events = stored(golden_events("renewal"))
    tampered = replace(events[4], payload={**events[4].payload, "decision": "allow"})
    inputs = BatchInputs([*events[:4], tampered, *events[5:]], {}, {}, {}, {})
    out = project_batch(inputs)
    assert out.applied == 4
    assert out.failure is not None and out.failure.error.code == CONFLICT
    assert out.failure.error.message.startswith(
        f"Payload hash mismatch for event {tampered.event_id}"
    )
    assert set(out.cursors.values()) == {4}


def test_a_trace_seq_gap_stops_the_batch() -> None:
    events = stored(golden_events("support"))
    inputs = BatchInputs([events[0], events[2]], {}, {}, {}, {})
    out = project_batch(inputs)
    assert out.applied == 1 and out.failure is not None
    assert out.failure.error.code == EVENT_SEQUENCE_INVALID
    assert out.failure.error.message == (
        f"trace_seq gap in trace {events[0].trace_id}: expected 1, got 2"
    )


def test_each_projection_only_takes_events_past_its_cursor() -> None:
    events = stored(golden_events("dealdesk"))
    out = project_batch(BatchInputs(events, {"context_graph": 9, "trace_summary": 0}, {}, {}, {}))
    assert out.nodes == {} and out.edges == {}
    assert len(out.summaries) == 1
    assert out.cursors == {"context_graph": 9, "trace_summary": 9, "precedent_index": 9}
