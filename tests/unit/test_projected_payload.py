"""The projected payload: the spec projections see the same thing in it as in the whole.

A bulk REBUILD hands the projections payloads decoded to ProjectedPayload's keys only.
Were a projection to read a key missing there, it would see None where incremental
catch-up sees a value, and the two would drift. So: every key the projection modules
look up is drawn into random payloads, and each projection must give the same rows for
the whole payload and for its projected part.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from server.core import graph, precedent, trace_summary
from server.core.envelope import ActorRef, LoggedFacts
from server.core.event_types import ALL_EVENT_TYPES
from server.core.graph import emit
from server.core.precedent import policy_eval_row, precedent_rows
from server.core.projected_payload import decode_projected
from server.core.trace_summary import apply_summary


def _looked_up_keys() -> set[str]:
    """String constants the projection modules use as keys: x.get("k"), x["k"], "k" in x."""
    keys: set[str] = set()
    for module in (graph, trace_summary, precedent):
        tree = ast.parse(Path(str(module.__file__)).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "get":
                first = node.args[0] if node.args else None
            elif isinstance(node, ast.Subscript):
                first = node.slice
            elif isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.In | ast.NotIn):
                first = node.left
            else:
                continue
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                keys.add(first.value)
    return keys


KEYS = sorted(_looked_up_keys() | {"facts", "source", "note"})
leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["", "x", "exception"])
)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=4), st.lists(inner, max_size=2)
    ),
    max_leaves=8,
)
payloads = st.dictionaries(st.sampled_from(KEYS), values, max_size=8)


def test_the_key_scan_finds_what_the_projections_read() -> None:
    # Guards the scan itself: a key of each projection module, nested and top-level.
    assert {"input_id", "primary_entity", "workflow", "exception_id", "entity_type"} <= set(KEYS)


def _facts(event_type: str, payload: Any, log_seq: int = 7) -> LoggedFacts:
    return LoggedFacts(
        log_seq, f"e{log_seq}", "t1", log_seq, event_type, "2026-12-06T00:00:00Z",
        ActorRef("agent", "a1"), payload, "sha256:unused",
    )  # fmt: skip


def _projected(event_type: str, payload: dict[str, Any]) -> Any:
    """Each projection's rows for one event, or the error it raises."""
    event = _facts(event_type, payload)
    out: list[Any] = []
    for project in (
        lambda: emit(event),
        lambda: emit(event, {"trace:t1"}),
        lambda: apply_summary(None, event),
        lambda: apply_summary(
            apply_summary(None, replace(event, event_type="TraceStarted")), event
        ),
        lambda: policy_eval_row(event),
        lambda: precedent_rows([replace(event, event_type="TraceStarted"), event]),
    ):
        try:
            out.append(project())
        except Exception as error:  # the same refusal must come from both
            out.append((type(error), str(error)))
    return out


@settings(max_examples=300, deadline=None)
@given(payloads)
# Nested conditions random payloads rarely meet: an approval of an exception, a policy
# with id and version, an action's target, a whole trace start.
@example({"subject": {"subject_type": "exception", "subject_id": "x"}, "approver": {}})
@example({"policy": {"policy_id": "p", "policy_version": "1"}, "exception_id": "x"})
@example({"action_id": "a", "target_entity": {"entity_type": "x", "entity_id": "y"}})
@example({"entity": {"entity_type": "x", "entity_id": "y"}, "input_id": "i"})
@example({"workflow": "w", "title": "t", "primary_entity": {"entity_id": "x"}, "outcome": "x"})
def test_projections_read_nothing_outside_the_projected_payload(payload: dict[str, Any]) -> None:
    part = decode_projected(json.dumps(payload).encode())
    assert part is not None
    for event_type in ALL_EVENT_TYPES:
        assert _projected(event_type, part) == _projected(event_type, payload), event_type


def test_a_payload_that_is_not_an_object_is_left_to_the_full_decode() -> None:
    assert decode_projected(b"[1, 2]") is None
    assert decode_projected(b'"text"') is None
    assert decode_projected(b'{"input_id": "a", "input_id": "b", "facts": [1]}') == {
        "input_id": "b"
    }
