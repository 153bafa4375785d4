"""Projection catch-up on PostgreSQL: one batch, one transaction, rows and cursors together.

Several workers may run at once: each (scope, projection) is guarded by a transaction-
scoped advisory lock taken with try-lock, so a worker that finds a projection busy simply
leaves it to the one holding it, and a batch never applies twice. A crash rolls the
batch back whole; the cursor still names the last committed event.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import asyncpg
from msgspec.structs import astuple

from server.core.envelope import ProjectedEvent, StoredEvent
from server.core.graph import EdgeRow, NodeRow
from server.core.precedent import PRECEDENT_SOURCE_TYPES, PolicyEvalRow, PrecedentRow
from server.core.projection_batch import (
    PROJECTIONS,
    BatchInputs,
    BatchOutput,
    BatchReport,
    finishing_traces,
    project_batch,
    traces_needing_summaries,
)
from server.core.trace_summary import SummaryRow
from server.core.value import Value
from server.store.event_log import EVENT_COLUMNS, row_to_event

# Also turns off synchronous commit for the batch's transaction (set_config(..., true) is
# SET LOCAL): projection rows are derived from the log and commit with their cursor, so a
# crash can only lose whole batches, which the next catch-up redoes. And sorting, where
# an index gives the order: the batch's window of the log is read by the primary key
# (IN_LOG_ORDER in event_log.py), and nothing else in a batch sorts.
_TRY_LOCKS: Final = """
    SELECT p AS projection, pg_try_advisory_xact_lock(hashtextextended($1 || ':' || p, 0)) AS held,
           set_config('synchronous_commit', 'off', true) AS commit_mode,
           set_config('enable_sort', 'off', true) AS sort_mode
    FROM unnest($2::text[]) AS p
"""
# The held projections' cursors and, in the same round trip, the end of the source log
# (the row with a NULL projection), read before the events so that every event up to it
# is visible to the batch.
_CURSORS_AND_END: Final = """
    SELECT projection, last_log_seq FROM dg_projection_cursors
    WHERE scope = $1 AND projection = ANY($2::text[])
    UNION ALL
    SELECT NULL, last_log_seq FROM dg_tenants WHERE tenant_id = $3
"""
# log_seq is gapless per tenant (event_log.py), so the next batch is exactly the range
# (cursor, cursor + batch]. The closed range bounds the scan whatever the statistics say: with
# an open range, a bulk-loaded log that autovacuum had not analysed yet was bitmap-scanned and
# sorted to its end for every batch, which made a REBUILD quadratic.
EVENTS_IN_WINDOW: Final = f"""
    SELECT {EVENT_COLUMNS} FROM dg_event_log
    WHERE tenant_id = $1 AND log_seq > $2 AND log_seq <= $3
    ORDER BY log_seq
"""
# Positions are never missing (they are assigned under the tenant's lock); were one ever
# removed behind our back, an empty window must not stall the projection there.
_EVENTS_PAST_A_GAP: Final = f"""
    SELECT {EVENT_COLUMNS} FROM dg_event_log
    WHERE tenant_id = $1 AND log_seq > $2 AND ($3::bigint IS NULL OR log_seq <= $3)
    ORDER BY log_seq LIMIT $4
"""
_HEADS_BEFORE: Final = """
    SELECT t.trace_id, h.trace_seq
    FROM unnest($2::text[]) AS t(trace_id)
    CROSS JOIN LATERAL (
        SELECT trace_seq FROM dg_event_log
        WHERE tenant_id = $1 AND trace_id = t.trace_id AND log_seq <= $3
        ORDER BY trace_seq DESC LIMIT 1
    ) AS h
"""
# Lookups by a batch's trace ids are LATERAL probes of a unique index, one per id (LIMIT 1
# and OFFSET 0 keep the planner from flattening them): a projection table that grows fast,
# as in a REBUILD, has statistics that call it empty, and `= ANY(array)` then chose to scan
# every row of the scope for each batch.
_SUMMARIES: Final = """
    SELECT s.* FROM unnest($2::text[]) AS t(trace_id)
    CROSS JOIN LATERAL (
        SELECT trace_id, workflow, title, primary_entity_type, primary_entity_id, outcome,
               started_at, finished_at, event_count, last_log_seq
        FROM dg_trace_summary WHERE scope = $1 AND trace_id = t.trace_id LIMIT 1
    ) AS s
"""
_SOURCES: Final = f"""
    SELECT e.* FROM unnest($2::text[]) AS t(trace_id)
    CROSS JOIN LATERAL (
        SELECT {EVENT_COLUMNS} FROM dg_event_log
        WHERE tenant_id = $1 AND trace_id = t.trace_id AND event_type = ANY($3::text[])
        ORDER BY trace_seq OFFSET 0
    ) AS e
    ORDER BY e.trace_id, e.trace_seq
"""


def row_columns(row: type[Value]) -> tuple[str, ...]:
    """A projection table's columns (beside scope): the row type's fields, in order. No
    stored C3 fragment: digests build it from these (ADR 0015)."""
    return tuple(row.__struct_fields__)


def row_records(rows: Iterable[Value]) -> list[tuple[Any, ...]]:
    """The values of `rows` in row_columns order."""
    return [astuple(r) for r in rows]


@dataclass(frozen=True, slots=True)
class _Insert:
    """A multi-row INSERT of one projection table from a row type's values.

    The columns are the row type's fields, in order. Text columns travel as the rows of
    one two-dimensional text[] ($2): asyncpg checks every element of a one-dimensional
    array against collections.abc (two Python-level isinstance calls per string), but
    only the first row of a two-dimensional one. Each other column is an array of its
    own ($3, $4, ...).
    """

    table: str
    row: type[Value]
    columns: tuple[tuple[str, str], ...]  # (name, SQL type)
    conflict: str

    @classmethod
    def of(
        cls, table: str, row: type[Value], conflict: str = "ON CONFLICT DO NOTHING", **types: str
    ) -> _Insert:
        """Columns named after `row`'s fields (text unless `types` says otherwise)."""
        columns = tuple((name, types.get(name, "text")) for name in row_columns(row))
        return cls(table, row, columns, conflict)

    @property
    def sql(self) -> str:
        arrays, text_row, param = [], 0, 3
        for _, kind in self.columns:
            if kind == "text":
                text_row += 1
                arrays.append(f"($2::text[])[{text_row}:{text_row}]")
            else:
                arrays.append(f"${param}::{kind}[]")
                param += 1
        names = ", ".join(name for name, _ in self.columns)
        return (
            f"INSERT INTO {self.table} (scope, {names}) "
            f"SELECT $1, * FROM unnest({', '.join(arrays)}) {self.conflict}"
        )

    def arguments(self, rows: Iterable[Value]) -> list[Any]:
        columns = [list(column) for column in zip(*row_records(rows), strict=True)]
        kinds = [kind for _, kind in self.columns]
        text = [c for c, kind in zip(columns, kinds, strict=True) if kind == "text"]
        return [text, *(c for c, kind in zip(columns, kinds, strict=True) if kind != "text")]


_NODES: Final = _Insert.of("dg_cg_nodes", NodeRow, log_seq="bigint")
_EDGES: Final = _Insert.of("dg_cg_edges", EdgeRow, log_seq="bigint")
_SUMMARIES_UPSERT: Final = _Insert.of(
    "dg_trace_summary",
    SummaryRow,
    """ON CONFLICT (scope, trace_id) DO UPDATE SET
        workflow = EXCLUDED.workflow, title = EXCLUDED.title,
        primary_entity_type = EXCLUDED.primary_entity_type,
        primary_entity_id = EXCLUDED.primary_entity_id, outcome = EXCLUDED.outcome,
        started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
        event_count = EXCLUDED.event_count, last_log_seq = EXCLUDED.last_log_seq""",
    event_count="int",
    last_log_seq="bigint",
)
_POLICY_EVALS: Final = _Insert.of("dg_policy_eval_index", PolicyEvalRow, log_seq="bigint")
_DELETE_PRECEDENTS: Final = (
    "DELETE FROM dg_precedent_index WHERE scope = $1 AND trace_id = ANY($2::text[])"
)
_PRECEDENTS: Final = _Insert.of("dg_precedent_index", PrecedentRow, log_seq="bigint")
# Cursors travel as text[] and are cast here: asyncpg has codecs of its own for text[] and
# oid[] only, and learns any other array type with a catalog query on each connection's
# first use of it (~5 ms of PostgreSQL planning it, measured; pools open connections as
# runs need them, so the first REBUILDs after a worker starts, or after idle connections
# closed, paid it on every catch-up and swap).
_SAVE_CURSORS: Final = """
    INSERT INTO dg_projection_cursors (scope, projection, last_log_seq, updated_at)
    SELECT $1, * , now() FROM unnest($2::text[], $3::text[]::bigint[])
    ON CONFLICT (scope, projection) DO UPDATE
    SET last_log_seq = EXCLUDED.last_log_seq, updated_at = now()
"""
# restart_at in one round trip: every part of a statement sees the same snapshot, and the
# three touch different tables.
_RESTART_AT: Final = f"""
    WITH failures AS (
        DELETE FROM dg_projection_failures WHERE scope = $1 AND projection = ANY($2::text[])
    ), digests AS (
        DELETE FROM dg_projection_digests WHERE scope = $1 AND projection = ANY($2::text[])
    ) {_SAVE_CURSORS}
"""
_RECORD_FAILURE: Final = """
    INSERT INTO dg_projection_failures (scope, projection, log_seq, event_id, trace_id,
                                        error_code, error_message)
    SELECT $1, p, $3, $4, $5, $6, $7 FROM unnest($2::text[]) AS p
    ON CONFLICT (scope, projection, log_seq) DO UPDATE
    SET attempts = dg_projection_failures.attempts + 1, last_seen_at = now(),
        status = 'open', resolved_at = NULL,
        error_code = EXCLUDED.error_code, error_message = EXCLUDED.error_message
"""
_RESOLVE_FAILURES: Final = """
    UPDATE dg_projection_failures f SET status = 'resolved', resolved_at = now()
    FROM unnest($2::text[], $3::text[]::bigint[]) AS c(projection, cursor)
    WHERE f.scope = $1 AND f.projection = c.projection AND f.status = 'open'
      AND f.log_seq <= c.cursor
"""

# Both in one statement (they touch different tables, on the same arguments).
_SAVE_CURSORS_RESOLVING: Final = f"WITH resolved AS ({_RESOLVE_FAILURES}) {_SAVE_CURSORS}"


async def catch_up_batch(
    conn: asyncpg.Connection,
    source_tenant: str,
    scope: str,
    projections: Sequence[str] = PROJECTIONS,
    batch_size: int = 1000,
    until: int | None = None,
) -> BatchReport:
    """Project the next batch of `source_tenant`'s log into `scope` (caller commits)."""
    locks = await conn.fetch(_TRY_LOCKS, scope, list(projections))
    held = tuple(r["projection"] for r in locks if r["held"])
    busy = tuple(r["projection"] for r in locks if not r["held"])
    if not held:
        return BatchReport((), 0, {}, more=False, busy=busy)
    rows = await conn.fetch(_CURSORS_AND_END, scope, list(held), source_tenant)
    saved = {r["projection"]: r["last_log_seq"] for r in rows}
    end = int(saved.pop(None, 0) or 0)
    cursors = dict.fromkeys(held, 0) | saved
    low = min(cursors.values())
    end = end if until is None else min(end, until)
    if low >= end:
        return BatchReport(held, 0, cursors, more=False, busy=busy)
    events = [
        row_to_event(r)
        for r in await conn.fetch(EVENTS_IN_WINDOW, source_tenant, low, min(low + batch_size, end))
    ]
    if not events:
        rows = await conn.fetch(_EVENTS_PAST_A_GAP, source_tenant, low, end, batch_size)
        events = [row_to_event(r) for r in rows]
    if not events:
        return BatchReport(held, 0, cursors, more=False, busy=busy)
    inputs = await _inputs(conn, source_tenant, scope, events, cursors, low)
    output = project_batch(inputs, held)
    await _write(conn, scope, output)
    more = output.failure is None and min(output.cursors.values()) < end
    return BatchReport(held, output.applied, output.cursors, more, output.failure, busy)


async def _inputs(
    conn: asyncpg.Connection,
    tenant: str,
    scope: str,
    events: list[StoredEvent],
    cursors: dict[str, int],
    low: int,
) -> BatchInputs:
    traces = sorted({e.trace_id for e in events})
    heads = await conn.fetch(_HEADS_BEFORE, tenant, traces, low)
    summary_rows = await conn.fetch(_SUMMARIES, scope, sorted(traces_needing_summaries(events)))
    finishing = sorted(finishing_traces(events))
    sources: dict[str, list[StoredEvent]] = {}
    if finishing:
        for row in await conn.fetch(_SOURCES, tenant, finishing, list(PRECEDENT_SOURCE_TYPES)):
            event = row_to_event(row)
            sources.setdefault(event.trace_id, []).append(event)
    return BatchInputs(
        events=events,
        cursors=cursors,
        next_trace_seq={r["trace_id"]: r["trace_seq"] + 1 for r in heads},
        summaries={r["trace_id"]: SummaryRow(**dict(r)) for r in summary_rows},
        finishing_sources=sources,
    )


async def _insert(
    conn: asyncpg.Connection, insert: _Insert, scope: str, rows: Collection[Value]
) -> None:
    if rows:
        await conn.execute(insert.sql, scope, *insert.arguments(rows))


async def _write(conn: asyncpg.Connection, scope: str, out: BatchOutput) -> None:
    await _insert(conn, _NODES, scope, out.nodes.values())
    await _insert(conn, _EDGES, scope, out.edges.values())
    await _insert(conn, _SUMMARIES_UPSERT, scope, out.summaries.values())
    await _insert(conn, _POLICY_EVALS, scope, out.policy_evals.values())
    if out.precedents:
        await conn.execute(_DELETE_PRECEDENTS, scope, sorted(out.precedents))
        rows = [row for trace_rows in out.precedents.values() for row in trace_rows]
        await _insert(conn, _PRECEDENTS, scope, rows)
    names = sorted(out.cursors)
    await save_cursors(conn, scope, out.cursors, resolve=True)
    if out.failure is not None:
        failed = out.failure.event
        behind = [name for name in names if out.cursors[name] < failed.log_seq]
        await conn.execute(
            _RECORD_FAILURE,
            scope,
            behind,
            failed.log_seq,
            failed.event_id,
            failed.trace_id,
            out.failure.error.code,
            out.failure.error.message,
        )


_RESET_STATEMENTS: Final = {
    "context_graph": (
        "DELETE FROM dg_cg_edges WHERE scope = $1",
        "DELETE FROM dg_cg_nodes WHERE scope = $1",
    ),
    "trace_summary": ("DELETE FROM dg_trace_summary WHERE scope = $1",),
    "precedent_index": (
        "DELETE FROM dg_precedent_index WHERE scope = $1",
        "DELETE FROM dg_policy_eval_index WHERE scope = $1",
    ),
}


async def reset(conn: asyncpg.Connection, scope: str, projections: Sequence[str]) -> None:
    """Empty projections of a scope and rewind their cursors (caller holds the locks)."""
    for projection in projections:
        for statement in _RESET_STATEMENTS[projection]:
            await conn.execute(statement, scope)
    await restart_at(conn, scope, dict.fromkeys(projections, 0))


async def restart_at(conn: asyncpg.Connection, scope: str, cursors: Mapping[str, int]) -> None:
    """Projections whose rows were replaced whole (a reset, a swapped-in rebuild): their
    failures and cached digests are forgotten and their cursors set."""
    await conn.execute(_RESTART_AT, *_cursor_arguments(scope, cursors))


async def lock_projections(
    conn: asyncpg.Connection, scope: str, projections: Sequence[str], *, also: str = ""
) -> None:
    """Wait for the transaction-scoped locks of these projections, in name order, in one
    round trip; `also`: more of the select list (a set_config, say), evaluated with them."""
    await conn.execute(
        f"SELECT pg_advisory_xact_lock(hashtextextended($1 || ':' || p, 0)){also} "
        "FROM unnest($2::text[]) AS p",
        scope,
        sorted(projections),
    )


async def record_failure(
    conn: asyncpg.Connection,
    scope: str,
    projections: str | Sequence[str],
    event: ProjectedEvent,
    error: Any,
) -> None:
    """An open failure for these projections, stopped before `event`."""
    await conn.execute(
        _RECORD_FAILURE,
        scope,
        [projections] if isinstance(projections, str) else list(projections),
        event.log_seq,
        event.event_id,
        event.trace_id,
        error.code,
        error.message,
    )


async def save_cursors(
    conn: asyncpg.Connection, scope: str, cursors: Mapping[str, int], *, resolve: bool
) -> None:
    """A batch's cursors and, with `resolve`, the open failures they have passed marked
    resolved: one round trip."""
    statement = _SAVE_CURSORS_RESOLVING if resolve else _SAVE_CURSORS
    await conn.execute(statement, *_cursor_arguments(scope, cursors))


def _cursor_arguments(scope: str, cursors: Mapping[str, int]) -> tuple[str, list[str], list[str]]:
    """$1-$3 of _SAVE_CURSORS and the statements built on it: the projections in name
    order and their positions as text (see _SAVE_CURSORS)."""
    names = sorted(cursors)
    return scope, names, [str(cursors[name]) for name in names]
