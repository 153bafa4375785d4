"""Canonical JSON (spec §3): the vectors, and properties that must hold for any payload."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.core.canonical_json import (
    canonical_json,
    digest_json,
    payload_hash,
    stored_payload_json,
    stored_tags_json,
)
from server.core.errors import SCHEMA_VIOLATION, FloatFoundError
from tests.support import derived_expectations

# JSON values without floats: what a payload may hold.
json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30), st.text()
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=25,
)
payloads = st.dictionaries(st.text(), json_values, max_size=6)


def test_vectors_from_the_golden_folder() -> None:
    vectors = derived_expectations()["canonical_json_vectors"]
    assert len(vectors) >= 10
    for vector in vectors:
        assert canonical_json(vector["input"]) == vector["canonical"]
        # A vector without a hash is not a valid payload (e.g. `[]`): canonical form only.
        if vector["payload_hash"] is not None:
            assert payload_hash(vector["input"]) == vector["payload_hash"]


def test_ssot_example_payload_hash() -> None:
    ssot = derived_expectations()["ssot_example_payload_hash"]
    expected = "sha256:fcc35c374eafa7c9d4850bc56247f47418e39c6278d876f7e165464700be41eb"
    assert ssot["expected_from_SPEC_v1.0.3_section_2.2"] == expected
    assert payload_hash(ssot["payload"]) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"zebra": 1, "alpha": 2, "beta": 3}, '{"alpha":2,"beta":3,"zebra":1}'),
        (
            {"z": {"c": 1, "a": 2, "b": 3}, "a": {"y": 1, "x": 2}},
            '{"a":{"x":2,"y":1},"z":{"a":2,"b":3,"c":1}}',
        ),
        ({"yes": True, "no": False}, '{"no":false,"yes":true}'),
        ({}, "{}"),
        ([], "[]"),
        ({"ctl": "\x01\x1f\x7f"}, '{"ctl":"\\u0001\\u001f\x7f"}'),
        ({"s": "a/b\u2028"}, '{"s":"a/b\u2028"}'),
        ({"big": 10**40}, '{"big":' + str(10**40) + "}"),
    ],
)
def test_c1_examples(value: Any, expected: str) -> None:
    assert canonical_json(value) == expected


def test_keys_sort_by_code_point_not_utf16() -> None:
    # U+FFFF sorts before U+1F600 by code point, after it by UTF-16 code unit (RFC 8785).
    assert canonical_json({"\U0001f600": 1, "\uffff": 2}) == '{"\uffff":2,"\U0001f600":1}'


def test_c3_escapes_non_ascii_and_c1_does_not() -> None:
    doc = {"title": "Zürich 😀"}
    assert digest_json(doc) == '{"title":"Z\\u00fcrich \\ud83d\\ude00"}'
    assert canonical_json(doc) == '{"title":"Zürich 😀"}'


def test_c2_uses_default_separators_and_unsorted_tags() -> None:
    assert stored_payload_json({"b": 1, "a": [1, 2]}) == '{"a": [1, 2], "b": 1}'
    assert stored_tags_json(("z", "a", "é")) == '["z", "a", "é"]'


@pytest.mark.parametrize("value", [0.0, 1.5, float("nan"), float("inf")])
def test_floats_are_refused_with_their_path(value: float) -> None:
    with pytest.raises(FloatFoundError) as caught:
        canonical_json({"a": [1, {"b": value}]})
    assert caught.value.code == SCHEMA_VIOLATION
    assert caught.value.path == "$.a[1].b"
    assert "Use string representation for decimals." in caught.value.message


@given(payloads)
def test_c1_round_trips_through_json(payload: dict[str, Any]) -> None:
    assert json.loads(canonical_json(payload)) == payload


@given(payloads)
def test_c1_matches_the_python_reference_flags(payload: dict[str, Any]) -> None:
    reference = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(payload) == reference


@given(payloads, st.randoms())
def test_hash_is_invariant_under_key_order(payload: dict[str, Any], rnd: Any) -> None:
    def shuffled(value: Any) -> Any:
        if isinstance(value, dict):
            items = list(value.items())
            rnd.shuffle(items)
            return {key: shuffled(item) for key, item in items}
        if isinstance(value, list):
            return [shuffled(item) for item in value]
        return value

    assert payload_hash(shuffled(payload)) == payload_hash(payload)


@given(payloads)
def test_c3_is_ascii_and_parses_back(payload: dict[str, Any]) -> None:
    text = digest_json(payload)
    assert text.isascii()
    assert json.loads(text) == payload


@given(payloads)
def test_hash_shape(payload: dict[str, Any]) -> None:
    digest = payload_hash(payload)
    assert digest.startswith("sha256:") and len(digest) == 71
    assert digest[7:] == digest[7:].lower()


# Floats anywhere (NaN and infinities included), integers of any size, and strings that
# look like numbers: the fast probe and its fallback must agree with a walk of the value.
values_with_floats = st.recursive(
    st.one_of(
        st.floats(),
        st.integers(),
        st.text(),
        st.sampled_from(["1.5", "1e5", "NaN", "-Infinity", "\ud800"]),
        st.booleans(),
        st.none(),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.one_of(payloads, st.dictionaries(st.text(), values_with_floats, max_size=4)))
def test_float_tokens_are_found_exactly(payload: dict[str, Any]) -> None:
    from server.core.canonical_json import encode_c1, has_float_token

    def holds_float(value: Any) -> bool:
        if isinstance(value, float):
            return True
        if isinstance(value, dict):
            return any(holds_float(v) for v in value.values())
        if isinstance(value, list):
            return any(holds_float(v) for v in value)
        return False

    assert has_float_token(encode_c1(payload)) == holds_float(payload)


@given(st.text(), st.one_of(st.none(), st.text()), st.integers(0, 2**63 - 1))
def test_row_fragments_equal_generic_c3(text: str, maybe: str | None, number: int) -> None:
    from server.core.graph import EdgeRow, NodeRow
    from server.core.precedent import PrecedentRow
    from server.core.trace_summary import SummaryRow

    rows = [
        NodeRow(text, "t" + text, maybe or "", number, text),
        EdgeRow(text, "e", text + "x", maybe or "", text, number, "2026"),
        SummaryRow(text, text, text, maybe, maybe, maybe, text, maybe, 2, number),
        PrecedentRow(text, number, text, text, text, maybe, maybe, maybe, maybe),
    ]
    for row in rows:
        assert row.fragment() == digest_json(row.digest_dict())


ascii_heavy = st.text(st.characters(max_codepoint=0x7F)) | st.text()


@given(st.lists(st.tuples(ascii_heavy, st.one_of(st.none(), ascii_heavy)), max_size=5))
def test_rows_joined_in_one_encoding_equal_their_fragments(texts: list[Any]) -> None:
    """joined_fragments (one msgspec call per batch) writes what the per-row fragments
    write, for text that takes the fast path (ASCII, control characters, quotes, braces,
    even a `{"created_at":` inside a value) and text that does not (DEL, non-ASCII)."""
    from server.core.digest import joined_fragments
    from server.core.graph import EdgeRow, NodeRow
    from server.core.precedent import PrecedentRow
    from server.core.trace_summary import SummaryRow

    tricky = ['{"created_at":"x', "a\x7fb", '\x00\x1f\n\\"', "Zürich"]
    texts = texts + [(t, t) for t in tricky]
    for make in (
        lambda t, m, n: NodeRow(t, "t" + t, m or "", n, t),
        lambda t, m, n: EdgeRow(t, "e", t + "x", m or "", t, n, "2026"),
        lambda t, m, n: SummaryRow(t, t, t, m, m, m, t, m, 2, n),
        lambda t, m, n: PrecedentRow(t, n, t, t, t, m, m, m, m),
    ):
        for rows in ([make(t, m, n) for n, (t, m) in enumerate(texts)], [make("a", None, 1)]):
            assert joined_fragments(rows) == ",".join(row.fragment() for row in rows)


@given(st.one_of(payloads, st.dictionaries(st.text(), values_with_floats, max_size=4)))
def test_the_fast_hash_check_agrees_with_the_definition(payload: dict[str, Any]) -> None:
    from server.core.canonical_json import payload_hash_mismatch
    from server.core.errors import FloatFoundError

    try:
        expected = payload_hash(payload)
    except (FloatFoundError, UnicodeEncodeError) as exc:  # floats, lone surrogates
        with pytest.raises(type(exc)):  # never vouched for by the fast path either
            payload_hash_mismatch(payload, "sha256:" + "0" * 64)
        return
    assert payload_hash_mismatch(payload, expected) is None
    assert payload_hash_mismatch(payload, "sha256:" + "0" * 64) == expected


@given(
    st.one_of(payloads, st.dictionaries(st.text(), values_with_floats, max_size=4)),
    st.booleans(),
)
def test_stored_text_passes_the_hash_check_only_when_the_definition_does(
    payload: dict[str, Any], tamper: bool
) -> None:
    """The undecoded check (stored C2 text against the hash) never passes a payload the
    exact check refuses, and passes every float-free one stored as the log stores it."""
    from server.core.canonical_json import stored_text_matches_hash

    try:
        stored = stored_payload_json(payload).encode("utf-8")
    except (ValueError, UnicodeEncodeError):  # NaN, lone surrogates: never in a TEXT column
        return
    # What a forger would store beside a float: the hash of C1's bytes without the refusal.
    c1 = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    hashed = "sha256:" + hashlib.sha256(c1.encode("utf-8")).hexdigest()
    if tamper:
        hashed = hashed[:-1] + ("0" if hashed[-1] != "0" else "1")
    try:
        exact = payload_hash(payload) == hashed
    except FloatFoundError:
        exact = False
    assert stored_text_matches_hash(stored, hashed) == exact
