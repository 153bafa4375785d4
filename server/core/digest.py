"""Projection digests, byte-exact to spec/semantics.md §6.8.

A digest is SHA-256 over the C3 text of the rows sorted by id. Because C3 of a list is
`[` + the C3 of each row joined by `,` + `]`, a digest can be computed from per-row
fragments streamed in id order; stores rebuild each row's fragment from its columns.
UTF-8 byte order equals code-point order, so a `COLLATE "C"` ORDER BY gives Python's sort.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, cast

import msgspec

from server.core.canonical_json import HASH_PREFIX
from server.core.value import Value

CONTEXT_GRAPH: Final = "context_graph"
TRACE_SUMMARY: Final = "trace_summary"
PRECEDENT_INDEX: Final = "precedent_index"
FULL_PROJECTION: Final = "full_projection"


class HasFragment(Protocol):
    def fragment(self) -> str: ...


class DigestWriter:
    """Incremental SHA-256 of a C3 document written as literal text and array elements."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._first = True

    def text(self, literal: str) -> None:
        """Literal JSON text; the next element starts a new array (no leading comma)."""
        self._hash.update(literal.encode("ascii"))
        self._first = True

    def element(self, fragment: str) -> None:
        if not self._first:
            self._hash.update(b",")
        self._first = False
        # C3 escapes all non-ASCII, so fragments are ASCII by construction.
        self._hash.update(fragment.encode("ascii"))

    def elements(self, fragments: list[str]) -> None:
        """Several elements at once: one join and one hash update instead of one each."""
        if fragments:
            text = ",".join(fragments)
            self._hash.update((text if self._first else "," + text).encode("ascii"))
            self._first = False

    def streamed(self, write: Callable[[Callable[[memoryview], object], bool], int]) -> int:
        """Elements joined by commas that `write(update, comma)` hashes itself through
        `update`, after a comma if `comma` (elements came before): the native pass's graph
        fragments, with no text in between. What `write` returns: the elements it wrote
        (none: 0 or less)."""
        count = write(self._hash.update, not self._first)
        if count > 0:
            self._first = False
        return count

    def rows(self, rows: Sequence[Value]) -> None:
        """Rows (of one type) as elements, each as its C3 fragment, a few hundred at a
        time: big temporary buffers cost more to allocate and fault in than to fill."""
        for start in range(0, len(rows), _BATCH):
            if not self._first:
                self._hash.update(b",")
            self._hash.update(_joined(rows[start : start + _BATCH]))
            self._first = False

    def hexdigest(self) -> str:
        return HASH_PREFIX + self._hash.hexdigest()


# Struct fields in name order: the key order of C3, whose keys are sorted.
_sorted: Final = msgspec.json.Encoder(order="sorted")
_ATTRS_OPENING: Final = (b'{"created_at":', b'{"attrs":{},"created_at":')


_BATCH: Final = 256


def joined_fragments(rows: Sequence[Value]) -> str:
    """One batch's text as DigestWriter.rows hashes it: `",".join(row.fragment() ...)`."""
    return _joined(rows).decode("ascii")


def _joined(rows: Sequence[Value]) -> bytes:
    """The rows' C3 fragments joined by commas, as ASCII bytes, by one msgspec call
    instead of a Python f-string per row when that is byte-identical: msgspec escapes
    exactly as C3 does within ASCII, except that it leaves DEL (0x7f) raw and non-ASCII
    unescaped, so output that is ASCII without DEL is C3; anything else takes the per-row
    fragments. A graph row's fragment starts with an empty `"attrs":{}` that is no field
    of the row (DIGEST_ATTRS): it goes in before the first field, `created_at`
    (`{"created_at":` cannot occur inside a JSON string, whose quotes are escaped). Rows
    must be of one type."""
    if not rows:
        return b""
    encoded = _sorted.encode(rows)
    if encoded.isascii() and b"\x7f" not in encoded:
        if getattr(rows[0], "DIGEST_ATTRS", False):
            encoded = encoded.replace(*_ATTRS_OPENING)
        return encoded[1:-1]
    return ",".join(cast(HasFragment, row).fragment() for row in rows).encode("ascii")


def array_digest(fragments: Iterable[str]) -> str:
    writer = DigestWriter()
    writer.text("[")
    writer.elements(list(fragments))
    writer.text("]")
    return writer.hexdigest()


def graph_digest(node_fragments: Iterable[str], edge_fragments: Iterable[str]) -> str:
    """`{"edges":[...],"nodes":[...]}` with both arrays in id order."""
    writer = DigestWriter()
    writer.text('{"edges":[')
    writer.elements(list(edge_fragments))
    writer.text('],"nodes":[')
    writer.elements(list(node_fragments))
    writer.text("]}")
    return writer.hexdigest()


def full_digest(context_graph: str, trace_summary: str, precedent_index: str) -> str:
    text = f"{context_graph}:{trace_summary}:{precedent_index}"
    return HASH_PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Digests:
    context_graph: str
    trace_summary: str
    precedent_index: str

    @property
    def full_projection(self) -> str:
        return full_digest(self.context_graph, self.trace_summary, self.precedent_index)

    def as_dict(self) -> dict[str, str]:
        return {
            CONTEXT_GRAPH: self.context_graph,
            FULL_PROJECTION: self.full_projection,
            PRECEDENT_INDEX: self.precedent_index,
            TRACE_SUMMARY: self.trace_summary,
        }


def sorted_fragments(rows: Iterable[HasFragment], key: str) -> list[str]:
    """Fragments of in-memory rows in the id order the digest requires."""
    return [row.fragment() for row in sorted(rows, key=lambda row: str(getattr(row, key)))]
