"""The native pass of the whole-log projection, where it was built (ADR 0017).

`NativeProjector` stands in for `BulkProjector` in a REBUILD or VERIFY of every spec
projection to one position. It takes a chunk of the log as one binary COPY of
`COPY_COLUMNS` and gives the graph's rows as binary COPY tuples, the other tables' as
records; `graph_fragments` writes the graph's digest text. For any event it does not handle the way
the Python projector would, it raises `Unsupported`; the caller then runs the whole pass
again with `BulkProjector`, which is the definition (and gives the exact failure codes
and messages). Its state, the same as BulkProjector's, lives in Python containers.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Final

from server.core.bulk_projection import BulkRecords, CopyRows, advance
from server.core.digest import DigestWriter
from server.core.projection_batch import PROJECTIONS

try:
    from server.core import _native_projection as _native  # type: ignore[attr-defined]
except ImportError:  # built without a C compiler: REBUILD and VERIFY use Python
    _native = None


def _openssl_sha256() -> tuple[int, int, int]:
    """The addresses of SHA256_Init/Update/Final in the libcrypto hashlib loaded (zeros:
    not found): OpenSSL hashes with the CPU's SHA instructions where it has them."""
    import _hashlib  # noqa: F401  (loads libcrypto)
    import ctypes

    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "libcrypto" in line}
        for path in sorted(paths):
            lib = ctypes.CDLL(path)
            return tuple(  # type: ignore[return-value]
                ctypes.cast(getattr(lib, f"SHA256_{step}"), ctypes.c_void_p).value or 0
                for step in ("Init", "Update", "Final")
            )
    except (OSError, AttributeError):
        pass
    return (0, 0, 0)


AVAILABLE: Final = _native is not None
if _native is not None:
    _native.use_sha256(*_openssl_sha256())

# The log columns the pass reads, in its order and types (integers as int8).
COPY_COLUMNS: Final = (
    "log_seq::int8, event_id, trace_id, trace_seq::int8, event_type, occurred_at, "
    "actor_type, actor_id, payload_json, payload_hash"
)


def graph_fragments(copy: bytes, edges: bool, scoped: bool = True) -> tuple[bytes, int]:
    """The C3 fragments of node (edge) rows in id order, joined by commas, and how many:
    from binary COPY tuples of their row_columns, `scoped`: each with the scope first."""
    assert _native is not None
    text, count = _native.graph_fragments(copy, edges, scoped)
    return text, count


def digest_graph(
    writer: DigestWriter, parts: Sequence[bytes], edges: bool, scoped: bool = True, limit: int = -1
) -> int:
    """graph_fragments of the tuples of all `parts`, hashed into `writer` as elements while
    they are written (64 kB at a time: the text of 10,000 edges, ~2.5 MB, is never made
    whole, nor the parts joined); how many rows. With `limit` (>= 0), more rows than that
    hash nothing and give -1."""
    assert _native is not None

    def write(update: Callable[[memoryview], object], comma: bool) -> int:
        return int(_native.graph_digest(parts, edges, scoped, update, comma, limit))

    return writer.streamed(write)


class Unsupported(Exception):
    """An event the native pass leaves to the Python projector (its log_seq)."""


def handles(projections: Collection[str], limits: Mapping[str, int] | None = None) -> bool:
    """Whether the native pass can stand in: built, every spec projection, one limit."""
    return (
        AVAILABLE
        and set(projections) == set(PROJECTIONS)
        and (not limits or (set(limits) == set(PROJECTIONS) and len(set(limits.values())) == 1))
    )


class NativeProjector:
    """BulkProjector's attributes and its feed, over binary COPY chunks."""

    def __init__(self, scope: str, limits: Mapping[str, int] | None = None) -> None:
        """The graph's rows leave as COPY tuples with `scope` first (CopyRows)."""
        self.projections = PROJECTIONS
        self.limits = dict(limits or {})
        self.cursors = dict.fromkeys(self.projections, 0)
        self.failure = None
        self.applied = 0
        self._open: dict[str, list[Any]] = {}
        self._scope = scope
        self._state = (set[str](), dict[str, int](), self._open, dict[str, list[Any]](), set[str]())

    @property
    def end(self) -> int:
        """The last position wanted (0: no limit)."""
        return max(self.limits.values()) if self.limits else 0

    def feed_copy(self, data: bytes) -> BulkRecords:
        """Project one binary COPY of COPY_COLUMNS rows, in log order."""
        return self.feed_part(data)[0]

    def feed_part(self, data: bytes, start: int = 0, limit: int = 0) -> tuple[BulkRecords, int]:
        """Project at most `limit` rows (0: all) of one binary COPY of COPY_COLUMNS rows,
        from `start` (0: its beginning, else where the previous part ended); the rows and
        where the next part starts (-1: the COPY is done)."""
        assert _native is not None
        try:
            nodes, edges, summaries, evals, precedents, last, applied, following = _native.feed(
                data, *self._state, self._scope, start, limit
            )
        except _native.Unsupported as unsupported:
            raise Unsupported(*unsupported.args) from None
        if applied:
            self.applied += applied
            advance(self.cursors, self.limits, last)
        rows = BulkRecords(CopyRows(*nodes), CopyRows(*edges), summaries, evals, precedents)
        return rows, following

    def close(self) -> BulkRecords:
        """The summaries of traces still open: their final rows for this log."""
        return BulkRecords(summaries=[tuple(row) for row in self._open.values()])
