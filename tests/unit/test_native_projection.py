"""The native pass of the whole-log projection against the Python projector (ADR 0017).

Its contract: for any log, chunked any way, it either gives exactly the Python projector's
records, chunk by chunk, or raises Unsupported (and the caller redoes the pass in
Python). On ordinary logs it must answer, or it would be dead weight.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import struct
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from server.core import native_projection
from server.core.bulk_projection import BulkProjector, BulkRecords, BulkRows, CopyRows
from server.core.canonical_json import payload_hash, stored_payload_json
from server.core.digest import DigestWriter
from server.core.errors import DecisionGraphError
from server.core.event_types import REQUIRED_KEYS
from server.core.graph import EdgeRow, NodeRow
from server.core.native_projection import NativeProjector, Unsupported
from server.core.precedent import PolicyEvalRow, PrecedentRow
from server.core.trace_summary import SummaryRow
from server.store.event_log import row_to_facts
from tests.support import SCENARIOS, golden_digests, golden_events
from tests.unit.test_bulk_projection import digests

pytestmark = pytest.mark.skipif(
    not native_projection.AVAILABLE, reason="the native pass was not built (no C compiler)"
)


def test_the_native_pass_is_built_wherever_a_compiler_is() -> None:
    """`make install` builds it when `cc` exists (CI and the developers' machines):
    without it every test below would skip and the REBUILD bench would measure Python."""
    if shutil.which("cc"):
        assert native_projection.AVAILABLE


Row = tuple[int, str, str, int, str, str, str, str, str, str]


def copy_binary(rows: Sequence[Row]) -> bytes:
    """PostgreSQL's binary COPY of native_projection.COPY_COLUMNS rows."""
    out = [b"PGCOPY\n\xff\r\n\x00", struct.pack("!ii", 0, 0)]
    for row in rows:
        out.append(struct.pack("!h", len(row)))
        for position, value in enumerate(row):
            if position in (0, 3):
                out.append(struct.pack("!iq", 8, value))
            else:
                encoded = str(value).encode()
                out.append(struct.pack("!i", len(encoded)) + encoded)
    out.append(struct.pack("!h", -1))
    return b"".join(out)


def copy_tuples(rows: CopyRows, scope: str, int8_at: int) -> list[tuple[Any, ...]]:
    """Records back from the pass's COPY tuples, checking that each starts with the scope."""
    records, data, at = [], rows.data, 0
    while at < len(data):
        (fields,) = struct.unpack_from("!h", data, at)
        at += 2
        values: list[Any] = []
        for position in range(fields):
            (size,) = struct.unpack_from("!i", data, at)
            value = data[at + 4 : at + 4 + size]
            at += 4 + size
            values.append(struct.unpack("!q", value)[0] if position == int8_at else value.decode())
        assert values[0] == scope
        records.append(tuple(values[1:]))
    assert len(records) == rows.count
    return records


def decoded(chunk: BulkRecords, scope: str) -> BulkRows:
    """A chunk of the native pass as rows (its COPY tuples decoded)."""
    return BulkRows(
        [NodeRow(*r) for r in copy_tuples(chunk.nodes, scope, 4)],
        [EdgeRow(*r) for r in copy_tuples(chunk.edges, scope, 6)],
        [SummaryRow(*r) for r in chunk.summaries],
        [PolicyEvalRow(*r) for r in chunk.policy_evals],
        [PrecedentRow(*r) for r in chunk.precedents],
    )


def both(
    rows: Sequence[Row], sizes: Sequence[int], scope: str = "tenant-1"
) -> tuple[list[Any], list[Any] | None]:
    """Each chunk's rows from the Python projector (ending with `failed` if it stopped at
    a failure) and from the native pass (None: it raised Unsupported)."""
    python, native = BulkProjector(), NativeProjector(scope)
    expected: list[Any] = []
    got: list[Any] | None = []
    start, turn = 0, 0
    while start < len(rows):
        chunk = rows[start : start + sizes[turn % len(sizes)]]
        start, turn = start + len(chunk), turn + 1
        try:
            facts = [row_to_facts(r) for r in chunk]
        except DecisionGraphError:  # a stored text that does not decode
            expected.append("failed")
            got = None if got is None else _native_refuses(native, chunk)
            break
        expected.append(python.feed(facts))
        if got is not None:
            try:
                got.append(decoded(native.feed_copy(copy_binary(chunk)), scope))
            except Unsupported:
                got = None
        if python.failure is not None:
            expected.append("failed")
            break
    if python.failure is None:
        expected.append(python.close())
        expected.append(python.cursors)
        if got is not None:
            got += [decoded(native.close(), scope), native.cursors]
    return expected, got


def _native_refuses(native: NativeProjector, chunk: Sequence[Row]) -> None:
    with pytest.raises(Unsupported):
        native.feed_copy(copy_binary(chunk))


# ------------------------------------------------------------------ generated logs

KINDS = (
    "TraceStarted", "InputObserved", "EntityObserved", "PolicyEvaluated", "ExceptionRequested",
    "ApprovalRecorded", "PrecedentCited", "ActionProposed", "ActionCommitted", "TraceFinished",
    "WorkflowReviewRequested", "SomethingElse",
)  # fmt: skip
TOP_KEYS = (
    "workflow", "title", "outcome", "primary_entity", "input_id", "entity", "policy",
    "exception_id", "approver", "subject", "cited_trace_id", "action_id", "target_entity",
    "facts", "reason",
)  # fmt: skip
INNER_KEYS = (
    "entity_type", "entity_id", "system", "policy_id", "policy_version", "actor_type",
    "actor_id", "subject_type", "subject_id", "note",
)  # fmt: skip
# Strings an id may be: plain, empty, with what JSON escapes, non-ASCII, astral.
STRINGS = st.one_of(
    st.sampled_from(["a", "b", "acme-1", "exception", "x:y", "", "1.5e3"]),
    st.sampled_from(['q"t', "b\\s", "n\nl", "tab\t", "\x01", "é", "\u2028", "😀", "trace:z"]),
    st.text(max_size=4),
)
SCALARS = st.one_of(
    STRINGS, st.none(), st.booleans(), st.integers(-1, 2), st.floats(-2, 2, allow_nan=False)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=2), st.dictionaries(st.sampled_from(INNER_KEYS), inner, max_size=4)
    ),
    max_leaves=6,
)
IDS = st.sampled_from(["a", "b", "acme-1", "exception", "x:y", "é", 'q"t', "n\nl", "😀"])
REFS = st.dictionaries(st.sampled_from(INNER_KEYS), st.one_of(IDS, st.none()), max_size=4)
# What a producer sends: ids and texts as strings (possibly empty), references as objects,
# a policy with an id and a version, and anything at all under keys no projection reads.
ORDINARY = st.fixed_dictionaries(
    {"policy": st.fixed_dictionaries({"policy_id": IDS, "policy_version": IDS})},
    optional={
        **{key: st.one_of(IDS, st.just("")) for key in (
            "workflow", "title", "outcome", "input_id", "cited_trace_id", "action_id")},
        **dict.fromkeys(("primary_entity", "entity", "approver", "subject", "target_entity"), REFS),
        "exception_id": IDS,
        "facts": st.dictionaries(st.text(max_size=3), st.integers() | st.text(max_size=3)),
    },
)  # fmt: skip


def _hash(payload: dict[str, Any]) -> str:
    try:
        return payload_hash(payload)
    except Exception:  # a float: the hash C1 would have if it took floats (a forged one)
        compact = msgspec.json.Encoder(order="sorted").encode(payload)
        return "sha256:" + hashlib.sha256(compact).hexdigest()


def conform(draw: st.DrawFn, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload with what ingest requires of its kind (event_types.py) made so."""
    for required, path in REQUIRED_KEYS[kind]:
        node = payload
        for key in path[:-1]:
            node = node[key]  # made an object by an earlier check
        if required == "str" and not (isinstance(node.get(path[-1]), str) and node[path[-1]]):
            node[path[-1]] = draw(IDS)
        elif required == "obj" and not isinstance(node.get(path[-1]), dict):
            node[path[-1]] = {}
        elif required == "list" and not isinstance(node.get(path[-1]), list):
            node[path[-1]] = []
    return payload


@st.composite
def logs(draw: st.DrawFn, wild: bool = True) -> list[Row]:
    """Wild: anything, including what ingest refuses and what only an edit of the stored
    log behind the service's back could hold. Otherwise: what ingest stores."""
    traces = [f"t{i}" for i in range(draw(st.integers(1, 3)))]
    seq = dict.fromkeys(traces, 0)
    finished: set[str] = set()
    rows: list[Row] = []
    length = draw(st.integers(1, 24))
    twisted = draw(st.integers(1, 2 * length))  # at most one event of a log is, below
    for log_seq in range(1, length + 1):
        open_traces = [t for t in traces if wild or t not in finished]
        if not open_traces:
            break
        trace = draw(st.sampled_from(open_traces))
        kind = "TraceStarted" if seq[trace] == 0 else draw(st.sampled_from(KINDS[1:]))
        if wild and draw(st.integers(0, 4)) == 0:
            payload = draw(st.dictionaries(st.sampled_from(TOP_KEYS), VALUES, max_size=5))
        elif wild:
            payload = draw(ORDINARY)
        else:
            kind = kind if kind in REQUIRED_KEYS else "InputObserved"
            payload = conform(draw, kind, draw(ORDINARY))
        if kind == "TraceFinished":
            finished.add(trace)
        stored = stored_payload_json(payload)
        digest = _hash(payload)
        if wild and log_seq == twisted:
            twist = draw(st.integers(0, 4))
            if twist == 0:  # tampered text
                stored = stored.replace("a", "b", 1)
            elif twist == 1:  # tampered hash
                digest = "sha256:" + "0" * 64
            elif twist == 2:  # respaced, same value
                stored = json.dumps(payload, sort_keys=True, indent=1, ensure_ascii=False)
            elif twist == 3:  # a gap in the trace
                seq[trace] += 1
            elif twist == 4:  # not an object
                stored, digest = "[1]", payload_hash([1])
        rows.append(
            (log_seq, f"e{log_seq}", trace, seq[trace], kind, f"2026-01-01T00:00:{log_seq:02}Z",
             "agent", "bot", stored, digest)
        )  # fmt: skip
        seq[trace] += 1
    return rows


SCOPES = st.sampled_from(["tenant-1", "é'scope"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(logs(), st.lists(st.integers(1, 7), min_size=1, max_size=4), SCOPES)
@example(
    [
        (1, "e1", "t0", 0, "TraceStarted", "T1", "agent", "bot",
         '{"primary_entity": {"entity_id": "n\\nl"}}',
         payload_hash({"primary_entity": {"entity_id": "n\nl"}})),
    ],
    [1],
    "tenant-1",
)  # fmt: skip
def test_the_native_pass_equals_the_python_projector_or_steps_aside(
    rows: list[Row], sizes: list[int], scope: str
) -> None:
    expected, got = both(rows, sizes, scope)
    if got is not None:
        assert "failed" not in expected, "answered where the Python projector fails"
        assert got == expected


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(logs(wild=False), st.lists(st.integers(1, 7), min_size=1, max_size=4), SCOPES)
def test_the_native_pass_answers_ordinary_logs(
    rows: list[Row], sizes: list[int], scope: str
) -> None:
    expected, got = both(rows, sizes, scope)
    assert got is not None
    assert got == expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(logs(wild=False), st.integers(1, 6), SCOPES)
def test_a_copy_projected_in_parts_gives_what_it_gives_at_once(
    rows: list[Row], limit: int, scope: str
) -> None:
    """The bulk reader hands the pass a window a few hundred events at a time, turning the
    event loop between (bulk_rebuild.PART): each part starts where the previous ended,
    the last says so, and together they are the whole window's rows, state and cursors."""
    data = copy_binary(rows)
    whole, parts = NativeProjector(scope), NativeProjector(scope)
    expected = decoded(whole.feed_copy(data), scope)
    got: list[BulkRows] = []
    start, calls = 0, 0
    while True:
        chunk, start = parts.feed_part(data, start, limit)
        got.append(decoded(chunk, scope))
        calls += 1
        if start < 0:
            break
        assert 0 < start < len(data)
    assert calls == len(rows) // limit + 1
    assert (
        BulkRows(
            [r for g in got for r in g.nodes],
            [r for g in got for r in g.edges],
            [r for g in got for r in g.summaries],
            [r for g in got for r in g.policy_evals],
            [r for g in got for r in g.precedents],
        )
        == expected
    )
    assert (parts.cursors, parts.applied) == (whole.cursors, whole.applied)
    assert decoded(parts.close(), scope) == decoded(whole.close(), scope)


def test_a_part_must_start_at_a_tuple_of_the_copy() -> None:
    data = copy_binary([])
    with pytest.raises(ValueError, match="binary COPY"):
        NativeProjector("tenant-1").feed_part(data, len(data) + 1, 1)


def _golden_rows(scenario: str) -> list[Row]:
    from tests.unit.test_projection_batch import stored

    return [
        (e.log_seq, e.event_id, e.trace_id, e.trace_seq, e.event_type, e.occurred_at,
         e.actor.actor_type, e.actor.actor_id, stored_payload_json(e.payload), e.payload_hash)
        for e in stored(golden_events(scenario))
    ]  # fmt: skip


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_golden_digests(scenario: str) -> None:
    native = NativeProjector("tenant-1")
    rows = decoded(native.feed_copy(copy_binary(_golden_rows(scenario))), "tenant-1")
    rows.summaries += decoded(native.close(), "tenant-1").summaries
    assert digests(rows).as_dict() == golden_digests(scenario)


@pytest.mark.parametrize("openssl", [True, False])
def test_sha256_matches_hashlib(openssl: bool) -> None:
    """Both ways the pass hashes: OpenSSL's SHA256() where found, the portable code."""
    from server.core import _native_projection  # type: ignore[attr-defined]

    found = native_projection._openssl_sha256()
    if openssl:
        assert all(found), "OpenSSL's SHA256 functions were not found beside hashlib"
    try:
        _native_projection.use_sha256(*(found if openssl else (0, 0, 0)))
        data = bytes(range(256)) * 4
        for size in (0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 121, 1000):
            got = _native_projection.sha256_hex(data[:size])
            assert got == hashlib.sha256(data[:size]).hexdigest(), size
    finally:
        _native_projection.use_sha256(*found)


def test_a_malformed_copy_is_refused() -> None:
    with pytest.raises(ValueError, match="binary COPY"):
        NativeProjector("tenant-1").feed_copy(b"not a copy")


def _graph_copy(records: Sequence[tuple[Any, ...]], scope: str | None, int8_at: int) -> bytes:
    """Bare binary COPY tuples of records (a scope field first, when given)."""
    out = []
    for record in records:
        fields = ([scope] if scope is not None else []) + list(record)
        out.append(struct.pack("!h", len(fields)))
        shift = 0 if scope is None else 1
        for position, value in enumerate(fields):
            if position == int8_at + shift:
                out.append(struct.pack("!iq", 8, value))
            else:
                encoded = value.encode()
                out.append(struct.pack("!i", len(encoded)) + encoded)
    return b"".join(out)


ANY_TEXT = st.text(st.characters(codec="utf-8"), max_size=6)  # astral, DEL, controls too


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(ANY_TEXT, ANY_TEXT, ANY_TEXT, st.integers(0, 2**62), ANY_TEXT),
             unique_by=lambda r: r[0], max_size=6),
    st.lists(st.tuples(ANY_TEXT, ANY_TEXT, ANY_TEXT, ANY_TEXT, ANY_TEXT, st.integers(0, 2**62),
                       ANY_TEXT), unique_by=lambda r: r[0], max_size=6),
    st.sampled_from([None, "scope-1"]),
    st.booleans(),
)  # fmt: skip
def test_graph_fragments_are_the_digest_fragments_in_id_order(
    nodes: list[tuple[Any, ...]], edges: list[tuple[Any, ...]], scope: str | None, whole: bool
) -> None:
    """What digests hash for the graph (digest.py: C3 of each row, sorted by id), from the
    rows as COPY gives them: a whole COPY or bare tuples, with a scope field or not."""
    for records, row, int8_at in ((nodes, NodeRow, 3), (edges, EdgeRow, 5)):
        data = _graph_copy(records, scope, int8_at)
        if whole:
            data = b"PGCOPY\n\xff\r\n\x00" + bytes(8) + data + b"\xff\xff"
        text, count = native_projection.graph_fragments(data, row is EdgeRow, scope is not None)
        expected = ",".join(row(*record).fragment() for record in sorted(records))
        assert count == len(records)
        assert text.decode("ascii") == expected


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(ANY_TEXT, ANY_TEXT, ANY_TEXT, ANY_TEXT, ANY_TEXT, st.integers(0, 2**62),
                       ANY_TEXT), unique_by=lambda r: r[0], max_size=8),
    st.sampled_from([None, "scope-1"]),
    st.lists(st.integers(0, 8), max_size=3),
    st.booleans(),
)  # fmt: skip
def test_a_streamed_graph_digest_hashes_what_the_rows_hash(
    records: list[tuple[Any, ...]], scope: str | None, cuts: list[int], after: bool
) -> None:
    """digest_graph hashes the fragments graph_fragments writes, from tuples in any number
    of parts, after a comma only where an element came before: the same digest as the
    rows' own fragments (DigestWriter.rows, the definition)."""
    tuples = [_graph_copy([record], scope, 5) for record in records]
    bounds = sorted({min(cut, len(tuples)) for cut in cuts} | {0, len(tuples)})
    parts = [b"".join(tuples[a:b]) for a, b in itertools.pairwise(bounds)]
    streamed, expected = DigestWriter(), DigestWriter()
    for writer in (streamed, expected):
        writer.text("[")
        if after:
            writer.element('{"earlier":1}')
    count = native_projection.digest_graph(streamed, parts, True, scope is not None)
    expected.rows([EdgeRow(*record) for record in sorted(records)])
    assert count == len(records)
    assert streamed.hexdigest() == expected.hexdigest()


def test_a_streamed_graph_digest_of_many_rows_flushes_in_pieces_and_keeps_its_limit() -> None:
    """Thousands of rows (the text far beyond one 64 kB flush) in reverse id order hash
    like their sorted fragments; over a limit, nothing is hashed and the answer is -1."""
    records = [(f"node:{n:06d}", "input", f"trace-{n % 7}", n, "2026-11-21T10:00:00Z")
               for n in reversed(range(3000))]  # fmt: skip
    data = _graph_copy(records, "scope-1", 3)
    streamed, expected = DigestWriter(), DigestWriter()
    assert native_projection.digest_graph(streamed, [data], False) == 3000
    expected.rows([NodeRow(*record) for record in sorted(records)])
    assert streamed.hexdigest() == expected.hexdigest()
    untouched = DigestWriter()
    assert native_projection.digest_graph(untouched, [data], False, limit=2999) == -1
    assert untouched.hexdigest() == DigestWriter().hexdigest()
