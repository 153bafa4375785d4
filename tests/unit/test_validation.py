"""The stateless append pipeline (spec §5.2 steps 1-5 plus our storability step)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.core.envelope import ActorRef, EventEnvelope, SourceRef, envelope_from_dict
from server.core.errors import (
    INVALID_ARGUMENT,
    PII_POLICY_VIOLATION,
    SCHEMA_VIOLATION,
    DecisionGraphError,
)
from server.core.event_types import ALL_EVENT_TYPES, REQUIRED_KEYS
from server.core.pii import FORBIDDEN_PATTERNS
from server.core.validation import DEFAULT_LIMITS, Limits, validate_envelope

VALID_PAYLOADS: dict[str, dict[str, Any]] = {
    "TraceStarted": {
        "workflow": "w",
        "title": "t",
        "primary_entity": {"entity_type": "account", "entity_id": "a1"},
    },
    "InputObserved": {
        "input_id": "i1",
        "facts": [],
        "source": {"system": "s", "object_type": "o", "object_id": "x"},
    },
    "EntityObserved": {
        "entity": {"entity_type": "quote", "entity_id": "q"},
        "role": "related",
        "facts": [],
    },
    "PolicyEvaluated": {
        "policy": {"policy_id": "p", "policy_version": "1"},
        "inputs": [],
        "decision": "allow",
    },
    "ExceptionRequested": {
        "exception_id": "e",
        "reason": "r",
        "policy": {"policy_id": "p", "policy_version": "1"},
    },
    "ApprovalRecorded": {
        "approval_id": "a",
        "decision": "approved",
        "subject": {"subject_type": "exception", "subject_id": "e"},
        "approver": {"actor_type": "person", "actor_id": "p"},
    },
    "PrecedentCited": {"cited_trace_id": "t0", "reason": "similar"},
    "ActionProposed": {
        "action_id": "x",
        "action_type": "update",
        "target_system": "crm",
        "target_entity": {"entity_type": "opp", "entity_id": "o"},
        "changes": [],
    },
    "ActionCommitted": {"action_id": "x", "status": "success"},
    "TraceFinished": {"outcome": "success"},
    "WorkflowReviewRequested": {"template_id": "incident_triage", "reason": "why"},
}


def make(event_type: str = "TraceStarted", payload: Any = None, **overrides: Any) -> EventEnvelope:
    raw: dict[str, Any] = {
        "event_id": "e1",
        "trace_id": "t1",
        "trace_seq": 0,
        "event_type": event_type,
        "occurred_at": "2026-01-01T00:00:00Z",
        "source": {"producer_id": "p", "system": "s", "subsystem": None},
        "actor": {"actor_type": "agent", "actor_id": "a"},
        "idempotency_key": "k",
        "payload": copy.deepcopy(VALID_PAYLOADS[event_type]) if payload is None else payload,
    }
    raw.update(overrides)
    return envelope_from_dict(raw)


def _raw(env: EventEnvelope) -> dict[str, Any]:
    return {
        "event_id": env.event_id,
        "trace_id": env.trace_id,
        "trace_seq": env.trace_seq,
        "event_type": env.event_type,
        "occurred_at": env.occurred_at,
        "source": env.source.as_dict(),
        "actor": env.actor.as_dict(),
        "idempotency_key": env.idempotency_key,
        "payload": env.payload,
    }


def code_and_message(envelope: EventEnvelope, limits: Limits = DEFAULT_LIMITS) -> tuple[str, str]:
    with pytest.raises(DecisionGraphError) as caught:
        validate_envelope(envelope, limits)
    return caught.value.code, caught.value.message


def test_every_event_type_has_a_valid_example() -> None:
    assert set(VALID_PAYLOADS) == set(ALL_EVENT_TYPES) == set(REQUIRED_KEYS)
    for event_type in ALL_EVENT_TYPES:
        validated = validate_envelope(make(event_type))
        assert validated.payload_hash.startswith("sha256:")


@pytest.mark.parametrize(
    ("event_type", "kind", "path"),
    [(t, kind, path) for t, checks in REQUIRED_KEYS.items() for kind, path in checks],
)
def test_each_required_key_is_enforced_with_its_path(
    event_type: str, kind: str, path: tuple[str, ...]
) -> None:
    payload = copy.deepcopy(VALID_PAYLOADS[event_type])
    node = payload
    for key in path[:-1]:
        node = node[key]
    word = {"str": "string", "obj": "object", "list": "list"}[kind]
    expected = f"Missing or invalid {word} for '{'.'.join(('$', *path))}'"
    for bad in (None, "" if kind == "str" else 7):
        if bad is None:
            node.pop(path[-1])
        else:
            node[path[-1]] = bad
        assert code_and_message(make(event_type, payload)) == (SCHEMA_VIOLATION, expected)


def test_unknown_event_type_and_non_dict_payload() -> None:
    bogus = envelope_from_dict({**_raw(make()), "event_type": "Bogus"})
    assert code_and_message(bogus) == (SCHEMA_VIOLATION, "Unknown event_type 'Bogus'")
    assert code_and_message(make("TraceStarted", [1])) == (
        SCHEMA_VIOLATION,
        "Payload must be a dict",
    )


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("", "Idempotency key cannot be empty"),
        ("a\x00b", "Idempotency key cannot contain null bytes"),
        ("x" * 201, "Idempotency key exceeds 200 bytes (got 201 bytes)"),
        ("😀" * 51, "Idempotency key exceeds 200 bytes (got 204 bytes)"),
    ],
)
def test_bad_idempotency_keys(key: str, expected: str) -> None:
    assert code_and_message(make(idempotency_key=key)) == (INVALID_ARGUMENT, expected)


@pytest.mark.parametrize("key", ["x" * 200, "😀" * 50, "   "])
def test_idempotency_key_limits_that_pass(key: str) -> None:
    validate_envelope(make(idempotency_key=key))


def test_pattern_order_reports_the_first_sorted_pattern() -> None:
    # "-----BEGIN RSA PRIVATE KEY" contains "-----BEGIN", which sorts first.
    payload = VALID_PAYLOADS["TraceStarted"] | {"note": "x -----BEGIN RSA PRIVATE KEY"}
    assert code_and_message(make("TraceStarted", payload)) == (
        PII_POLICY_VIOLATION,
        "Forbidden content '-----BEGIN' found at '$.payload.note'",
    )


@pytest.mark.parametrize("pattern", FORBIDDEN_PATTERNS)
def test_every_pattern_is_caught_case_insensitively(pattern: str) -> None:
    payload = VALID_PAYLOADS["TraceStarted"] | {"context": {"n": ["ok", "x" + pattern.swapcase()]}}
    code, message = code_and_message(make("TraceStarted", payload))
    assert code == PII_POLICY_VIOLATION
    assert message.endswith("found at '$.payload.context.n[1]'")


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"tags": ["fine", "token=abc"]}, "$.tags[1]"),
        ({"actor": {"actor_type": "agent", "actor_id": "sk-live"}}, "$.actor.actor_id"),
        ({"source": {"producer_id": "p", "system": "Asian"}}, "$.source.system"),
        ({"correlation_id": "apikey=1"}, "$.correlation_id"),
        ({"causation_event_id": "ghp_x"}, "$.causation_event_id"),
        ({"idempotency_key": "password=hunter2"}, "$.idempotency_key"),
    ],
)
def test_guard_covers_metadata(overrides: dict[str, Any], path: str) -> None:
    code, message = code_and_message(make(**overrides))
    assert code == PII_POLICY_VIOLATION and message.endswith(f"found at '{path}'")


def test_ids_type_and_time_are_not_scanned() -> None:
    validate_envelope(make(event_id="sk-1", trace_id="token=1", occurred_at="AKIA"))


def test_known_false_positives_are_kept() -> None:
    for word in ("risk-score", "Slovakia", "fantasia"):
        payload = VALID_PAYLOADS["TraceStarted"] | {"title": word}
        assert code_and_message(make("TraceStarted", payload))[0] == PII_POLICY_VIOLATION


def test_order_schema_before_pii_before_float() -> None:
    # A payload with a schema error, a PII hit and a float reports the schema error.
    bad = {"workflow": "w", "title": "token=1", "x": 1.5}
    assert code_and_message(make("TraceStarted", bad))[0] == SCHEMA_VIOLATION
    bad = VALID_PAYLOADS["TraceStarted"] | {"title": "token=1", "x": 1.5}
    assert code_and_message(make("TraceStarted", bad))[0] == PII_POLICY_VIOLATION
    bad = VALID_PAYLOADS["TraceStarted"] | {"x": [0.0]}
    assert code_and_message(make("TraceStarted", bad)) == (
        SCHEMA_VIOLATION,
        "Float found at '$.x[0]': 0.0. Use string representation for decimals.",
    )


def test_bad_key_beats_everything() -> None:
    assert code_and_message(make("TraceStarted", {"x": 1.0}, idempotency_key=""))[0] == (
        INVALID_ARGUMENT
    )


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"payload": VALID_PAYLOADS["TraceStarted"] | {"n": "a\x00b"}}, "'$.payload.n'"),
        ({"payload": VALID_PAYLOADS["TraceStarted"] | {"k\x00": "v"}}, "keys"),
        ({"trace_id": "t\x00"}, "'$.trace_id'"),
        ({"payload": VALID_PAYLOADS["TraceStarted"] | {"n": "\ud800"}}, "lone surrogate"),
        ({"event_id": "e" * 513}, "'event_id' exceeds 512 bytes"),
        ({"tags": ["t"] * 65}, "At most 64 tags"),
        ({"payload": VALID_PAYLOADS["TraceStarted"] | {"blob": "x" * 300_000}}, "Payload exceeds"),
    ],
)
def test_storability(overrides: dict[str, Any], fragment: str) -> None:
    code, message = code_and_message(make(**overrides))
    assert code == INVALID_ARGUMENT and fragment in message


def test_mixed_key_types_are_refused_cleanly() -> None:
    payload: dict[Any, Any] = dict(VALID_PAYLOADS["TraceStarted"])
    payload[1] = "one"
    assert code_and_message(make("TraceStarted", payload))[0] == INVALID_ARGUMENT


def test_payload_must_be_json_serialisable() -> None:
    payload = VALID_PAYLOADS["TraceStarted"] | {"s": {1, 2}}
    code, message = code_and_message(make("TraceStarted", payload))
    assert code == INVALID_ARGUMENT and message.startswith("Payload is not JSON-serializable: ")


finite = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8))
trees = st.recursive(
    finite,
    lambda kids: st.one_of(
        st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=4), kids, max_size=3)
    ),
    max_leaves=10,
)


@given(extra=trees, value=st.floats(allow_nan=True, allow_infinity=True))
def test_any_float_anywhere_is_a_schema_violation(extra: Any, value: float) -> None:
    payload = VALID_PAYLOADS["TraceFinished"] | {"extra": [extra, {"f": value}]}
    code, message = code_and_message(make("TraceFinished", payload))
    if code == PII_POLICY_VIOLATION:  # the random tree may contain a pattern itself
        return
    assert code == SCHEMA_VIOLATION and message.startswith("Float found at '$.extra")


@given(
    prefix=st.text(max_size=10),
    suffix=st.text(max_size=10),
    pattern=st.sampled_from(FORBIDDEN_PATTERNS),
)
def test_any_string_containing_a_pattern_is_refused(prefix: str, suffix: str, pattern: str) -> None:
    payload = VALID_PAYLOADS["TraceFinished"] | {"note": prefix + pattern + suffix}
    code, message = code_and_message(make("TraceFinished", payload))
    assert code in (PII_POLICY_VIOLATION, INVALID_ARGUMENT)  # INVALID only for NUL/surrogates
    if code == PII_POLICY_VIOLATION:
        assert message.endswith("found at '$.payload.note'")


@given(trees)
def test_valid_payloads_pass_unless_they_contain_a_pattern(extra: Any) -> None:
    payload = VALID_PAYLOADS["TraceFinished"] | {"extra": extra}
    try:
        validated = validate_envelope(make("TraceFinished", payload))
    except DecisionGraphError as error:
        assert error.code in (PII_POLICY_VIOLATION, INVALID_ARGUMENT)
    else:
        assert validated.envelope.payload == payload


def test_envelope_values_are_frozen() -> None:
    env = make()
    assert env.source == SourceRef("p", "s", None)
    assert env.actor == ActorRef("agent", "a")
    with pytest.raises(AttributeError):
        env.trace_id = "x"  # type: ignore[misc]
