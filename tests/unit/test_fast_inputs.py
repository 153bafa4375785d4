"""The fast ingest coercer agrees with graphql-core on every value it accepts."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from graphql import GraphQLList, GraphQLNonNull
from graphql.utilities import coerce_input_value
from hypothesis import given, settings
from hypothesis import strategies as st

from server.graphql.fast_inputs import Refused, compile_coercer
from server.graphql.schema import schema

EVENT_INPUT = schema._schema.get_type("EventInput")
EVENTS = GraphQLNonNull(GraphQLList(GraphQLNonNull(EVENT_INPUT)))  # type: ignore[arg-type]
FAST = compile_coercer(EVENTS)

VALID: dict[str, Any] = {
    "eventId": "e",
    "traceId": "t",
    "traceSeq": 0,
    "eventType": "TraceStarted",
    "occurredAt": "2026-01-01T00:00:00Z",
    "source": {"producerId": "p", "system": "s"},
    "actor": {"actorType": "agent", "actorId": "a"},
    "idempotencyKey": "k",
    "payload": {"workflow": "w", "n": [1, {"x": None}]},
}

odd_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.lists(st.text(max_size=3), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
keys = st.sampled_from(
    [*VALID, "correlationId", "causationEventId", "schemaVersion", "tags", "unknownField"]
)
nested_keys = st.sampled_from(["producerId", "system", "subsystem", "actorType", "actorId", "zz"])


@st.composite
def mutated_events(draw: st.DrawFn) -> Any:
    events = []
    for _ in range(draw(st.integers(0, 4))):
        event = copy.deepcopy(VALID)
        for _ in range(draw(st.integers(0, 3))):
            action = draw(st.sampled_from(["set", "drop", "nested", "keep"]))
            key = draw(keys)
            if action == "set":
                event[key] = draw(odd_values)
            elif action == "drop":
                event.pop(key, None)
            elif action == "nested":
                target = draw(st.sampled_from(["source", "actor"]))
                if isinstance(event.get(target), dict):
                    event[target][draw(nested_keys)] = draw(odd_values)
        events.append(event)
    shape = draw(st.sampled_from(["list", "single", "null-item"]))
    if shape == "single" and events:
        return events[0]
    if shape == "null-item":
        return [*events, None]
    return events


@settings(max_examples=600)
@given(mutated_events())
def test_accepted_values_coerce_exactly_like_graphql_core(value: Any) -> None:
    try:
        fast = FAST(copy.deepcopy(value))
    except Refused:
        return  # graphql-core decides, and words the error
    assert coerce_input_value(copy.deepcopy(value), EVENTS) == fast


def test_valid_batches_take_the_fast_path_with_defaults_filled() -> None:
    value = [VALID, {**VALID, "tags": ["a"], "schemaVersion": 3, "correlationId": "c"}]
    fast = FAST(copy.deepcopy(value))
    assert fast == coerce_input_value(copy.deepcopy(value), EVENTS)
    assert fast[0]["schemaVersion"] == 1 and fast[0]["tags"] == []
    assert fast[0]["source"]["subsystem"] is None


@pytest.mark.parametrize(
    "bad",
    [
        {**VALID, "traceSeq": 1.0},  # graphql-core accepts integral floats: its call
        {**VALID, "traceSeq": True},
        {**VALID, "traceSeq": 2**31},
        {**VALID, "tags": "single"},  # graphql-core wraps a single value: its call
        {**VALID, "payload": None},
        {**VALID, "nope": 1},
        {k: v for k, v in VALID.items() if k != "actor"},
    ],
)
def test_anything_unusual_is_left_to_graphql_core(bad: dict[str, Any]) -> None:
    with pytest.raises(Refused):
        FAST([bad])
