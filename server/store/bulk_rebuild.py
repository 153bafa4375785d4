"""REBUILD and VERIFY at bulk-load speed: shadow tables, binary COPY, indexes last, one swap.

Maintaining B-trees row by row bounds an INSERT-based rebuild well below a sequential
read of the log (docs/benchmarks.md). So a rebuild writes each projection table of the
scope into a standalone shadow table without indexes, by binary COPY in large chunks
while the next chunk is read and projected (Python and PostgreSQL work at the same time),
builds the parent's indexes on it once, and then, in one short transaction that also
projects whatever the log gained meanwhile, swaps it in as the scope's partition
(migration 7) together with the cursors. Readers see the old projection or the new one,
never a half-built one, and a crash at any point before that commit leaves the live
projection untouched: the next attempt drops the shadows and starts again. VERIFY of a
large log loads shadows the same way, digests them and drops them (a small one is
digested in memory, store/projections.py). A table that stays small gets no shadow: its
rows wait in memory and replace the live partition's inside the swap. See ADR 0014.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

import asyncpg

from server.core.bulk_projection import BulkProjector, BulkRecords, BulkRows, CopyRows
from server.core.digest import CONTEXT_GRAPH, PRECEDENT_INDEX, TRACE_SUMMARY
from server.core.errors import storage
from server.core.graph import EdgeRow, NodeRow
from server.core.native_projection import COPY_COLUMNS, NativeProjector
from server.core.precedent import PolicyEvalRow, PrecedentRow
from server.core.trace_summary import SummaryRow
from server.core.value import Value
from server.store.event_log import FACT_COLUMNS, row_to_facts
from server.store.partitions import partition_name, sql_literal
from server.store.projection_writer import (
    lock_projections,
    record_failure,
    restart_at,
    row_columns,
)

# Events per read (and per progress report). Each window is a COPY with its bounds spelled
# out, which PostgreSQL plans anew: 0.5-0.8 ms of planning against ~1.1 ms of executing a
# 2,000-event window (six indexes to weigh). 5,000 pays it 2.5 times less often; a window
# is then ~2 MB, two in flight per run (READERS).
CHUNK: Final = 5_000
# The Python projector (the definition) or the native pass that stands in for it when it
# can (ADR 0017); a chunk's rows come as BulkRows from the one, as records from the other.
Projector = BulkProjector | NativeProjector
Chunk = BulkRows | BulkRecords
TAIL: Final = 2_000  # at most this much of the log is projected inside the swap
# A table of at most this many rows skips the shadow: its rows are held in memory and
# replace the live partition's in place, inside the swap's transaction (DELETE, then COPY
# into the indexed partition). Below this size a shadow's fixed cost (create it, build
# each index, detach, drop, attach, rename: a dozen catalog changes, each invalidating
# every backend's cache of the parent) exceeds maintaining the indexes row by row; a
# small tenant's REBUILD then changes no catalog at all.
SMALL_TABLE: Final = 2_000
# Rows per COPY into a shadow. PostgreSQL's COPY sets up a thousand tuple slots for its
# batched inserts, each registered with the statement's resource owner (a hash table
# past a few dozen entries) and released at its end: with 2,000-event COPYs that was 40%
# of the COPY's own CPU (perf, 2026-12-06). Bigger COPYs pay it less often.
COPY_ROWS: Final = 10_000
# The swap's exclusive locks on the parents wait at most this long, then let go and try
# again: well below deadlock_timeout (1 s), so that in a lock cycle with another scope's
# catch-up it is always the swap that steps back.
_LOCK_TIMEOUT: Final = "100ms"
# A try's savepoint (_lock_patiently): rolled back and gone after a timeout, released (its
# locks kept by the swap's transaction) after a success.
_SAVEPOINT: Final = "SAVEPOINT dg_swap_locks"
_GIVE_UP_LOCKS: Final = "ROLLBACK TO SAVEPOINT dg_swap_locks; RELEASE SAVEPOINT dg_swap_locks"
_KEEP_LOCKS: Final = "RELEASE SAVEPOINT dg_swap_locks"
# _ASYNC_COMMIT and IN_LOG_ORDER (event_log.py) as set_config(..., true), which is SET LOCAL,
# for lock_projections to take in the same statement.
_SWAP_SETTINGS: Final = (
    ", set_config('synchronous_commit', 'off', true), set_config('enable_sort', 'off', true)"
)
# A digest holds its scope's partitions share-locked from its snapshot to its last row
# (it must not straddle that scope's swap; store/projection_reads.py), and a VERIFY digests
# the live rows of a large tenant for many seconds: a swap of the same tenant waits that
# out, and any swap waits for a query that holds a parent (the `LOCK TABLE ONLY` below
# leaves other scopes' partitions alone), trying again with pauses that grow to a second,
# for this long before the run fails (and may be requested again).
SWAP_PATIENCE: float = 600.0

Progress = Callable[[int], Awaitable[bool]]  # events loaded so far -> keep going?
# Shadow tables are scratch until the swap, and a projection is derived from the log, so
# no step of a bulk run needs to wait for its commit to reach the disk: a crash at any
# point leaves the live projection as it was, or (the swap) a complete new one, or the
# old one with the run to redo.
_ASYNC_COMMIT: Final = "SET LOCAL synchronous_commit = off"
# IN_LOG_ORDER (event_log.py) for a whole session: the bulk reader reads outside any
# transaction.
_READ_IN_LOG_ORDER: Final = "SET enable_sort = off"
_READ_SORTING_AGAIN: Final = "RESET enable_sort"


@dataclass(slots=True)
class Shadow:
    """One projection table of one scope in one run: its rows, held in memory while they
    are few, or its shadow table once they are not (SMALL_TABLE)."""

    parent: str
    rows: str  # the BulkRows field that feeds it
    row_type: type[Value]
    scope: str
    run: str
    small: int = SMALL_TABLE  # rows held in memory at most (tests vary it)
    created: bool = False  # the shadow table exists (`held` rows go there)
    fresh: bool = False  # ... created in the transaction under way (COPY may FREEZE)
    held: list[tuple[Any, ...]] = field(default_factory=list)  # rows not written yet
    held_copy: list[bytes] = field(default_factory=list)  # ... and as COPY tuples
    held_copy_rows: int = 0
    # ALTER TABLEs making the parent's constraints of its built indexes: the swap runs them
    # with the exchange (catalog changes only), no transaction of their own.
    keys: list[str] = field(default_factory=list)

    @property
    def partition(self) -> str:
        """The scope's live partition (SQL dg_projection_partition)."""
        return partition_name(self.parent, self.scope)

    @property
    def name(self) -> str:
        return f"{self.partition}_{self.run}"

    @property
    def columns(self) -> tuple[str, ...]:
        return row_columns(self.row_type)

    @property
    def pending(self) -> int:
        return len(self.held) + self.held_copy_rows

    def keep(self, rows: Chunk) -> None:
        part = rows.records(self.rows)
        if isinstance(part, CopyRows):
            self.held_copy.append(part.data)
            self.held_copy_rows += part.count
        else:
            self.held += part

    async def write(self, conn: asyncpg.Connection, table: str) -> None:
        """Whatever is held, into `table` (its shadow or its partition), scope first."""
        columns = ("scope", *self.columns)
        if self.held:
            records = [(self.scope, *r) for r in self.held]
            await conn.copy_records_to_table(table, records=records, columns=columns)
        if self.held_copy:
            source = b"".join((_COPY_HEADER, *self.held_copy, _COPY_TRAILER))
            # FREEZE into a table created in this transaction: its rows are written
            # frozen and all-visible, so neither the index builds nor the first readers
            # after the swap look up or set their transaction status, page by page.
            freeze = self.fresh and table == self.name
            # A memoryview: asyncpg takes bytes for a file path.
            await conn.copy_to_table(
                table, source=memoryview(source), columns=columns, format="binary",
                freeze=freeze or None,
            )  # fmt: skip
        self.held, self.held_copy, self.held_copy_rows = [], [], 0


_TABLES: Final = {
    CONTEXT_GRAPH: (("dg_cg_nodes", "nodes", NodeRow), ("dg_cg_edges", "edges", EdgeRow)),
    TRACE_SUMMARY: (("dg_trace_summary", "summaries", SummaryRow),),
    PRECEDENT_INDEX: (
        ("dg_policy_eval_index", "policy_evals", PolicyEvalRow),
        ("dg_precedent_index", "precedents", PrecedentRow),
    ),
}
# Only what the projections read of each event (about half a log row): less for
# PostgreSQL to send and for Python to decode and build, per event.
_FACTS_IN_WINDOW: Final = f"""
    SELECT {FACT_COLUMNS} FROM dg_event_log
    WHERE tenant_id = $1 AND log_seq > $2 AND log_seq <= $3
    ORDER BY log_seq
"""
# The same window for one binary COPY (copy_from_query wraps it), for the native pass: it
# parses the bytes itself, no row objects are built for it.
_COPY_WINDOW: Final = (
    f"SELECT {COPY_COLUMNS} FROM dg_event_log WHERE tenant_id = {{tenant}} "
    "AND log_seq > {low:d} AND log_seq <= {high:d} ORDER BY log_seq"
)
# A binary COPY's framing around its tuples: signature, flags, no header extension; the
# end marker.
_COPY_HEADER: Final = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_COPY_TRAILER: Final = b"\xff\xff"
_LOG_END: Final = "SELECT coalesce(max(last_log_seq), 0) FROM dg_tenants WHERE tenant_id = $1"
# The parents' names as text[] (projection_writer.py says why: not regclass[]).
_INDEXES: Final = """
    SELECT i.indrelid::regclass::text AS parent, pg_get_indexdef(i.indexrelid) AS definition,
           pg_get_constraintdef(c.oid) AS constraint
    FROM pg_index i
    LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid
    WHERE i.indrelid = ANY($1::text[]::regclass[]) ORDER BY i.indexrelid
"""
_ON_PARENT: Final = re.compile(r"^CREATE (UNIQUE )?INDEX \S+ ON ONLY \S+ ")
# A parent's columns as a CREATE TABLE lists them (type, collation, NOT NULL, default), in
# order; dropped columns are left out (ATTACH PARTITION matches columns by name).
_COLUMNS: Final = """
    SELECT string_agg(format('%I %s%s%s%s', a.attname, format_type(a.atttypid, a.atttypmod),
               CASE WHEN a.attcollation <> 0 THEN
                   format(' COLLATE %I.%I', n.nspname, co.collname) ELSE '' END,
               CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END,
               CASE WHEN d.adbin IS NOT NULL THEN
                   ' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid) ELSE '' END),
           ', ' ORDER BY a.attnum)
    FROM pg_attribute a
    LEFT JOIN pg_collation co ON co.oid = a.attcollation
    LEFT JOIN pg_namespace n ON n.oid = co.collnamespace
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
"""
# Per process, a parent's columns and indexes: they change only by a migration, which runs
# before workers start (a worker started before one would fail its swap's ATTACH, clearly,
# and the run could be requested again).
_layouts: dict[str, str] = {}
_indexes: dict[str, list[asyncpg.Record]] = {}
# Tables an earlier attempt left: the shadows of partition P are named P_<run>, that is
# between 'P_' and 'P`' ('`' follows '_') in the C order of the catalog's name index. A
# range of that index, not a pattern: `LIKE ANY` read all of pg_class, which grows by a
# dozen relations a tenant (4 ms at 20,000 relations, 0.04 ms as a range).
_LEFTOVERS: Final = """
    SELECT c.relname FROM unnest($1::text[]) AS p(partition)
    JOIN pg_class c ON c.relname > (p.partition || '_')::name
                   AND c.relname < (p.partition || '`')::name
    WHERE c.relkind = 'r' AND NOT c.relispartition
"""


def shadows(scope: str, projections: Sequence[str], small: int = SMALL_TABLE) -> list[Shadow]:
    """The tables of these projections for one attempt, each shadow with a random name of
    its own, so that nothing an earlier attempt left (even indexes of a partition it
    swapped in before a crash) is in the way."""
    run = secrets.token_hex(4)
    return [
        Shadow(parent, rows, row_type, scope, run, small)
        for projection in projections
        for parent, rows, row_type in _TABLES[projection]
    ]


async def ensure_partitions(conn: asyncpg.Connection, scope: str) -> None:
    await conn.execute("SELECT dg_ensure_projection_partitions($1)", scope)


async def prepare(conn: asyncpg.Connection, tables: Sequence[Shadow]) -> None:
    """Drop whatever an earlier attempt of this scope left (shadows are created inside a
    load's transaction, so only an attempt that died between its load and its swap
    leaves any), and learn the parents' columns and indexes."""
    leftovers = await conn.fetch(_LEFTOVERS, [shadow.partition for shadow in tables])
    unknown = sorted({shadow.parent for shadow in tables} - _layouts.keys())
    if unknown:
        # Runs of one process may learn the same parent at once: each replaces, none adds.
        indexes: dict[str, list[asyncpg.Record]] = {parent: [] for parent in unknown}
        for row in await conn.fetch(_INDEXES, unknown):
            indexes[row["parent"]].append(row)
        _indexes.update(indexes)
        for parent in unknown:
            _layouts[parent] = str(await conn.fetchval(_COLUMNS, parent))
    if leftovers:
        async with conn.transaction():
            await conn.execute(_ASYNC_COMMIT)
            await conn.execute(";\n".join(f'DROP TABLE "{r["relname"]}"' for r in leftovers))


async def create(conn: asyncpg.Connection, tables: Sequence[Shadow]) -> None:
    """These shadows, without indexes, in the caller's transaction (prepare learnt their
    columns). Spelled out column by column, not `LIKE parent`, which share-locks the
    parent until the transaction ends: a load's transaction lasts hundreds of
    milliseconds, and another scope's swap, waiting for its exclusive lock on the parent,
    then queued every later lock request behind it (~100 ms of idle cores at a time in
    the bench's REBUILD rounds, docs/benchmarks.md). The CHECK on scope lets ATTACH
    PARTITION skip scanning the table to prove it."""
    statements = []
    for shadow in tables:
        if shadow.created:
            continue
        scope = sql_literal(shadow.scope)
        statements.append(
            f"CREATE TABLE {shadow.name} ({_layouts[shadow.parent]}, "
            f"CONSTRAINT {shadow.name}_scope CHECK (scope = {scope})) "
            f"WITH (autovacuum_enabled = false)"
        )
        shadow.created = shadow.fresh = True
    if statements:
        await conn.execute(";\n".join(statements))  # one round trip


async def drop(conn: asyncpg.Connection, tables: Sequence[Shadow]) -> None:
    for shadow in tables:
        if shadow.created:
            await conn.execute(f"DROP TABLE IF EXISTS {shadow.name}")


async def copy(
    conn: asyncpg.Connection,
    tables: Sequence[Shadow],
    rows: Chunk,
    *,
    grow: bool = False,
    final: bool = False,
) -> None:
    """Each table's new rows, held in memory while the table is small, then copied into
    its shadow COPY_ROWS at a time (`final`: whatever is held, now). With `grow` (a
    load), a table whose rows outgrow SMALL_TABLE gets its shadow, created in the
    caller's transaction; without it (once the indexes are built), the swap writes
    whatever is still held in place."""
    for shadow in tables:
        shadow.keep(rows)
        if not shadow.created:
            if shadow.pending <= shadow.small or not grow:
                continue
            await create(conn, [shadow])
        if shadow.pending and (final or shadow.pending >= COPY_ROWS):
            await shadow.write(conn, shadow.name)


async def log_end(conn: asyncpg.Connection, tenant: str) -> int:
    return int(await conn.fetchval(_LOG_END, tenant))


async def load(
    pool: asyncpg.Pool,
    tenant: str,
    tables: Sequence[Shadow],
    projector: Projector,
    start: int,
    end: int,
    progress: Progress,
    *,
    create_all: bool = False,
) -> tuple[int, bool]:
    """Project (start, end] into the shadows (`create_all`: every one, whatever its
    size); (position reached, whether to go on). One transaction for the creations and
    every COPY: no commit to wait for per COPY, COPY FREEZE into the tables it created,
    and a load that dies leaves nothing behind."""
    async with pool.acquire() as writer:
        transaction = writer.transaction()
        await transaction.start()
        try:
            await writer.execute(_ASYNC_COMMIT)
            if create_all:
                await create(writer, tables)

            async def write(rows: Chunk) -> None:
                await copy(writer, tables, rows, grow=True)

            reached = await stream(pool, tenant, projector, start, end, progress, write)
            await copy(writer, tables, BulkRows(), grow=True, final=True)
        except BaseException:
            _forget_fresh(tables)
            try:
                await transaction.rollback()
            except Exception:
                # A COPY cut off mid-way (the run cancelled) leaves the connection waiting
                # for the server to confirm the cancel; a ROLLBACK then fails, and must not
                # send the connection back to the pool like that. Closed instead: the
                # server rolls the transaction back as the connection closes.
                writer.terminate()
            raise
        try:
            await transaction.commit()
        except BaseException:
            _forget_fresh(tables)
            raise
        for shadow in tables:
            shadow.fresh = False
        return reached


def _forget_fresh(tables: Sequence[Shadow]) -> None:
    """The load's transaction is gone, and the shadows it created with it."""
    for shadow in tables:
        if shadow.fresh:
            shadow.created = shadow.fresh = False


async def stream(
    pool: asyncpg.Pool,
    tenant: str,
    projector: Projector,
    start: int,
    end: int,
    progress: Progress,
    consume: Callable[[Chunk], Awaitable[None]],
) -> tuple[int, bool]:
    """Project (start, end] and hand each chunk's rows to `consume`; (position reached,
    whether to go on). Three stages overlap: PostgreSQL reads chunks N+1 and N+2 (READERS)
    while Python projects chunk N and `consume` writes chunk N-1."""
    queue: asyncio.Queue[Chunk | None] = asyncio.Queue(maxsize=2)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(_fewer_collections())
        readers = [await stack.enter_async_context(pool.acquire()) for _ in range(READERS)]
        for reader in readers:
            await reader.execute(_READ_IN_LOG_ORDER)  # for this session, reset below

        async def write() -> None:
            while (rows := await queue.get()) is not None:
                await consume(rows)

        async def read(reader: asyncpg.Connection, low: int) -> Window:
            return await read_window(reader, projector, tenant, low, min(low + CHUNK, end))

        writing = asyncio.create_task(write())
        position, going = start, True
        # Windows in flight, in log order, each on its own reader.
        fetching: collections.deque[tuple[asyncpg.Connection, asyncio.Task[Window]]] = (
            collections.deque()
        )
        asked = position

        def ask(reader: asyncpg.Connection) -> None:  # the next window, on this reader
            nonlocal asked
            if asked < end:
                fetching.append((reader, asyncio.create_task(read(reader, asked))))
                asked = min(asked + CHUNK, end)

        for reader in readers:
            ask(reader)
        try:
            while fetching:
                reader, task = fetching.popleft()
                records = await task
                position = min(position + CHUNK, end)
                ask(reader)
                await _hand_over(queue, await _project_in_parts(projector, records), writing)
                if projector.failure is not None or not (going := await progress(position)):
                    break
            await _hand_over(queue, None, writing)
            await writing
        finally:
            # What is under way finishes (milliseconds) rather than being cancelled: a COPY
            # cancelled mid-way leaves its connection waiting for the server to confirm,
            # and the caller's next statement on it (ROLLBACK, RESET) then fails.
            if not writing.done():  # stopped early: what is queued is dropped
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(None)
            await asyncio.gather(*(task for _, task in fetching), writing, return_exceptions=True)
            for n, reader in enumerate(readers):
                try:
                    await reader.execute(_READ_SORTING_AGAIN)
                except BaseException:  # a failure or a cancel: none goes back with its setting
                    for left in readers[n:]:
                        left.terminate()
                    raise
    return position, going


async def _hand_over(
    queue: asyncio.Queue[Chunk | None], rows: Chunk | None, writing: asyncio.Task[None]
) -> None:
    """Queue a chunk for the writer, unless the writer has died: then its error, at once
    (a full queue would otherwise wait for it forever)."""
    put = asyncio.ensure_future(queue.put(rows))
    await asyncio.wait({put, writing}, return_when=asyncio.FIRST_COMPLETED)
    if not put.done():
        put.cancel()
        await writing  # raises what stopped it
        raise RuntimeError("the bulk writer stopped before the end of the load")


Window = list[asyncpg.Record] | bytes
# PostgreSQL flushes a COPY's output to the socket 8 kB at a time, and a client that keeps
# up takes each flush as it comes: ~100 wake-ups a window, each a round of asyncpg's
# pause/resume of reading, a future and a task step (~35 us of CPU). Pausing briefly after
# a small part lets the socket fill meanwhile (asyncpg does not read while the output
# callback runs), so that a window arrives in ~10 parts: half the reading CPU, for a few
# milliseconds a window that the overlapping projecting and writing cover
# (docs/benchmarks.md).
COALESCE_BELOW: Final = 64 * 1024
COALESCE_PAUSE: Final = 0.001


def copy_window(tenant: str, low: int, high: int) -> str:
    """The query of one binary COPY of the events in (low, high], for the native pass."""
    return _COPY_WINDOW.format(tenant=sql_literal(tenant), low=low, high=high)


async def read_window(
    conn: asyncpg.Connection, projector: Projector, tenant: str, low: int, high: int
) -> Window:
    """The events in (low, high], as the projector takes them."""
    if isinstance(projector, BulkProjector):
        return cast(list[asyncpg.Record], await conn.fetch(_FACTS_IN_WINDOW, tenant, low, high))
    parts: list[bytes] = []

    async def keep(part: bytes) -> None:
        parts.append(part)
        if len(part) < COALESCE_BELOW:
            await asyncio.sleep(COALESCE_PAUSE)

    await conn.copy_from_query(copy_window(tenant, low, high), output=keep, format="binary")
    return b"".join(parts)


def _project(projector: Projector, window: Window) -> Chunk:
    """Decode and project a chunk."""
    if isinstance(projector, BulkProjector):
        assert isinstance(window, list)
        return projector.feed([row_to_facts(r) for r in window])
    assert isinstance(window, bytes)
    return projector.feed_copy(window)


# Events the native pass projects between two turns of the event loop. Projecting holds
# the loop, and while it does nothing moves on the sockets: PostgreSQL's reader stops once
# the ~200 kB the kernel buffers for its socket are full (a 5,000-event window is ~2 MB)
# and the writer's COPY waits for the loop to send more. A turn every ~500 events
# (~200 kB of the log) keeps both moving while the pass works: a single tenant's REBUILD
# otherwise ran its stages almost one after another (docs/benchmarks.md).
PART: Final = 500
# Windows read at once, each on its own connection. One reader fell behind a run that has
# the cores to itself: a window's COPY is a round trip, PostgreSQL producing ~5,000 rows
# and the loop taking them ~200 kB per turn; two keep the next window ready (a
# 500,000-event tenant 3.49 -> 3.06 s, ten 10,000-event tenants one after another 1.02 ->
# 0.94 s; runs that share busy cores are unchanged).
READERS: Final = 2


async def _project_in_parts(projector: Projector, window: Window) -> Chunk:
    """_project, the native pass PART events at a time with a turn of the loop between."""
    if isinstance(projector, BulkProjector):
        return _project(projector, window)
    assert isinstance(window, bytes)
    parts: list[BulkRecords] = []
    start = 0
    while True:
        rows, start = projector.feed_part(window, start, PART)
        parts.append(rows)
        if start < 0:
            return _merged(parts)
        await asyncio.sleep(0)


def _merged(parts: list[BulkRecords]) -> BulkRecords:
    if len(parts) == 1:
        return parts[0]
    return BulkRecords(
        CopyRows(b"".join(p.nodes.data for p in parts), sum(p.nodes.count for p in parts)),
        CopyRows(b"".join(p.edges.data for p in parts), sum(p.edges.count for p in parts)),
        [row for p in parts for row in p.summaries],
        [row for p in parts for row in p.policy_evals],
        [row for p in parts for row in p.precedents],
    )


_collecting_less = 0  # bulk loads under way in this process (several may overlap)
_threshold_before: tuple[int, int, int] = gc.get_threshold()


@contextlib.asynccontextmanager
async def _fewer_collections() -> AsyncIterator[None]:
    """Python's default collects the young generation every 700 allocations, that is every
    ~25 events of a load, each time walking the chunks in flight: a third of decoding time.
    The load's objects hold no cycles, so it collects a hundred times less often. The first
    load in raises the threshold and the last one out restores it."""
    global _collecting_less, _threshold_before
    if _collecting_less == 0:
        _threshold_before = gc.get_threshold()
        gc.set_threshold(70_000, *_threshold_before[1:])
    _collecting_less += 1
    try:
        yield
    finally:
        _collecting_less -= 1
        if _collecting_less == 0:
            gc.set_threshold(*_threshold_before)


def index_on(definition: str, index: str, table: str) -> str:
    """A parent's index (`pg_get_indexdef`) as `index` on the standalone `table`."""
    unique = "UNIQUE " if definition.startswith("CREATE UNIQUE") else ""
    return _ON_PARENT.sub(f"CREATE {unique}INDEX {index} ON {table} ", definition)


async def build_indexes(pool: asyncpg.Pool, tables: Sequence[Shadow]) -> None:
    """The parent's indexes on each shadow, two builds at a time (CREATE INDEX takes a
    lock that lets other builds on the same table proceed); its primary key follows in
    the swap (Shadow.keys)."""
    builds: list[str] = []
    created = [shadow for shadow in tables if shadow.created]
    if not created:
        return
    for shadow in created:
        shadow.keys = []
        for n, row in enumerate(_indexes.get(shadow.parent, ())):
            index = f"{shadow.name}_i{n}"
            builds.append(index_on(row["definition"], index, shadow.name))
            if row["constraint"]:
                kind = row["constraint"].split("(")[0].strip()  # PRIMARY KEY / UNIQUE
                shadow.keys.append(
                    f"ALTER TABLE {shadow.name} ADD CONSTRAINT {index} {kind} USING INDEX {index}"
                )
    pending = list(reversed(builds))

    async def builder() -> None:
        async with pool.acquire() as conn, conn.transaction():
            settings = f"{_ASYNC_COMMIT};\n"  # with the first build: one round trip less
            while pending:
                await conn.execute(settings + pending.pop())
                settings = ""

    await asyncio.gather(builder(), builder())


async def swap(
    conn: asyncpg.Connection,
    tenant: str,
    tables: Sequence[Shadow],
    projector: Projector,
    projections: Sequence[str],
) -> None:
    """Inside the caller's transaction: project the rest of the log, replace the small
    tables' rows in place and make the shadows the scope's partitions, with cursors and
    failures, all at once.

    The projections' advisory locks keep incremental catch-up of this scope out from
    here to the commit; parents are locked only for the writes and DDL at the end.
    """
    # Asynchronous commit (_ASYNC_COMMIT) and the tail read in log order (IN_LOG_ORDER)
    # for the transaction, with the locks: one round trip.
    await lock_projections(conn, tenant, projections, also=_SWAP_SETTINGS)
    end = await log_end(conn, tenant)
    position = max(projector.cursors.values(), default=0)
    if projector.failure is None and position < end:
        window = await read_window(conn, projector, tenant, position, end)
        await copy(conn, tables, _project(projector, window))
    await copy(conn, tables, projector.close(), final=True)
    shadowed = [shadow for shadow in tables if shadow.created]
    in_place = [shadow for shadow in tables if not shadow.created]
    # A small table's new rows replace the old in place: emptied here, with the locks.
    emptied = [f"DELETE FROM {shadow.partition}" for shadow in in_place]
    await _lock_patiently(conn, shadowed, in_place, emptied)
    for shadow in in_place:
        await shadow.write(conn, shadow.partition)
    if shadowed:
        await _exchange(conn, shadowed)
    await restart_at(conn, tenant, {name: projector.cursors[name] for name in projections})
    if projector.failure is not None:
        failed = projector.failure
        await record_failure(conn, tenant, projections, failed.event, failed.error)


def _locks(shadowed: Sequence[Shadow], in_place: Sequence[Shadow]) -> list[str]:
    """Every lock the rest of the swap needs, parents in one global order: exclusive on
    the parents whose partitions it exchanges (and on those partitions), shared on the
    parents of the tables it rewrites in place (writing a partition takes that anyway,
    until the commit). Taken together and first, so that a swap waiting for another never
    holds a lock that one needs: with the in-place writes first, two swaps that each
    rewrote in place a table the other exchanges each held what the other waited for, and
    retried their exchanges until their patience ran out."""
    modes = {s.parent: "ACCESS SHARE" for s in in_place}
    modes |= {s.parent: "ACCESS EXCLUSIVE" for s in shadowed}
    statements = [f"LOCK TABLE ONLY {parent} IN {modes[parent]} MODE" for parent in sorted(modes)]
    statements += [
        f"LOCK TABLE {s.partition} IN ACCESS EXCLUSIVE MODE"
        for s in sorted(shadowed, key=lambda s: s.parent)
    ]
    if shadowed:  # partition DDL, here and in dg_ensure_projection_partitions, one at a time
        statements.insert(
            0, "SELECT pg_advisory_xact_lock(hashtextextended('dg_projection_partitions', 0))"
        )
    return statements


async def _lock_patiently(
    conn: asyncpg.Connection,
    shadowed: Sequence[Shadow],
    in_place: Sequence[Shadow],
    then: Sequence[str],
) -> None:
    """_locks, each try in a savepoint bounded by _LOCK_TIMEOUT, for SWAP_PATIENCE: a try
    that times out lets go of everything it took, so it never blocks anyone meanwhile.
    Then the statements `then`, which need the locks. One round trip a try, one after."""
    deadline = time.monotonic() + SWAP_PATIENCE
    tries = 0
    # Savepoint statements of our own rather than a nested asyncpg transaction: they go
    # with the locks in one simple query (a try was five round trips).
    statements = ";\n".join(
        [_SAVEPOINT, f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'", *_locks(shadowed, in_place)]
    )
    while True:
        try:
            await conn.execute(statements)
            break
        except asyncpg.LockNotAvailableError:
            await conn.execute(_GIVE_UP_LOCKS)
            tries += 1
            if time.monotonic() >= deadline:
                raise storage(
                    f"REBUILD could not swap in the rebuilt projection: its tables stayed "
                    f"locked for {SWAP_PATIENCE:g} s ({tries} tries; a long digest or read "
                    f"holds them). The live projection is unchanged; request it again."
                ) from None
            await asyncio.sleep(min(0.02 * tries, 1.0))
    # Every lock is held now; the rest must not give up on a short timeout.
    await conn.execute(";\n".join([_KEEP_LOCKS, "SET LOCAL lock_timeout TO DEFAULT", *then]))


async def _exchange(conn: asyncpg.Connection, tables: Sequence[Shadow]) -> None:
    """Old partitions out (dropped), shadows in, in one round trip, under the locks of
    _locks. The scope's partitions exist: the run made sure of them before it began, and
    only a swap replaces them."""
    statements = []
    for shadow in sorted(tables, key=lambda s: s.parent):
        statements += [
            *shadow.keys,
            f"DROP TABLE {shadow.partition}",  # detaches it too: one catalog change less
            f"ALTER TABLE {shadow.parent} ATTACH PARTITION {shadow.name} "
            f"FOR VALUES IN ({sql_literal(shadow.scope)})",
            f"ALTER TABLE {shadow.name} RENAME TO {shadow.partition}",
            f"ALTER TABLE {shadow.partition} RESET (autovacuum_enabled)",
        ]
    await conn.execute(";\n".join(statements))
