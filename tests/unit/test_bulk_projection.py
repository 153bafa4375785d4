"""The streamed whole-log projector: the oracle's digests, whatever the chunking."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from server.core.bulk_projection import BulkProjector, BulkRows
from server.core.digest import Digests, array_digest, graph_digest, sorted_fragments
from server.core.envelope import StoredEvent
from server.core.errors import CONFLICT
from server.core.projector import InMemoryProjector
from tests.support import SCENARIOS, golden_digests, golden_events
from tests.unit.test_projection_batch import stored


def loaded(
    projector: BulkProjector, events: Sequence[StoredEvent], sizes: Sequence[int]
) -> BulkRows:
    """Feed in chunks of the given sizes (cycled), then close; every row, as loaded."""
    rows = BulkRows()
    start, turn = 0, 0
    while start < len(events):
        size = sizes[turn % len(sizes)]
        part = projector.feed(events[start : start + size])
        for name in ("nodes", "edges", "summaries", "policy_evals", "precedents"):
            getattr(rows, name).extend(getattr(part, name))
        start, turn = start + size, turn + 1
    rows.summaries.extend(projector.close().summaries)
    return rows


def digests(rows: BulkRows) -> Digests:
    for name in ("nodes", "edges", "summaries", "precedents"):
        ids = [r.__struct_fields__[0] for r in getattr(rows, name)]
        keys = [getattr(r, key) for r, key in zip(getattr(rows, name), ids, strict=True)]
        assert len(keys) == len(set(keys)), f"{name} loaded twice"
    return Digests(
        graph_digest(
            sorted_fragments(rows.nodes, "node_id"), sorted_fragments(rows.edges, "edge_id")
        ),
        array_digest(sorted_fragments(rows.summaries, "trace_id")),
        array_digest(sorted_fragments(rows.precedents, "source_event_id")),
    )


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_golden_digests(scenario: str) -> None:
    rows = loaded(BulkProjector(), stored(golden_events(scenario)), [1000])
    assert digests(rows).as_dict() == golden_digests(scenario)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=8))
def test_any_chunking_of_the_combined_stream_gives_the_oracle_rows(sizes: list[int]) -> None:
    events = stored([e for s in SCENARIOS for e in golden_events(s)])
    oracle = InMemoryProjector()
    oracle.apply_all(events)
    rows = loaded(BulkProjector(), events, sizes)
    assert digests(rows) == oracle.digests()
    assert {r.index_id: r for r in rows.policy_evals} == oracle.policy_evals


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_each_projection_stops_at_its_own_limit(data: st.DataObject) -> None:
    events = stored([e for s in SCENARIOS for e in golden_events(s)])
    names = ("context_graph", "trace_summary", "precedent_index")
    limits = {n: data.draw(st.integers(0, len(events)), label=n) for n in names}
    projector = BulkProjector(limits=limits)
    rows = loaded(projector, events[: projector.end], [7])
    for name in names:
        oracle = InMemoryProjector()
        oracle.apply_all(events[: limits[name]])
        assert getattr(digests(rows), name) == getattr(oracle.digests(), name)
    assert projector.cursors == limits


def test_a_tampered_payload_stops_every_projection_before_it() -> None:
    events = stored(golden_events("renewal"))
    tampered = replace(events[4], payload={**events[4].payload, "decision": "allow"})
    projector = BulkProjector()
    loaded(projector, [*events[:4], tampered, *events[5:]], [3])
    assert projector.applied == 4
    assert projector.failure is not None and projector.failure.error.code == CONFLICT
    assert projector.failure.event.event_id == tampered.event_id
    assert set(projector.cursors.values()) == {4}
    assert projector.feed(events[5:]) == BulkRows()  # stopped for good


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_in_memory_scratch_digests_are_the_golden_ones(scenario: str) -> None:
    from server.core.bulk_projection import ScratchDigests

    projector, scratch = BulkProjector(), ScratchDigests()
    events = stored(golden_events(scenario))
    for start in range(0, len(events), 3):
        scratch.add(projector.feed(events[start : start + 3]))
    scratch.add(projector.close())
    expected = golden_digests(scenario)
    names = ("context_graph", "trace_summary", "precedent_index")
    assert scratch.digests(names) == {name: expected[name] for name in names}
