"""Reads of projection state: cursors, digests, failures, summaries, graph and precedents.

Digests stream each row in id order (`COLLATE "C"` = code-point order), write its C3
fragment from its columns and feed it to an incremental SHA-256, inside one REPEATABLE
READ snapshot together with the cursor they describe. A digest is a pure function of
(log, projection, cursor), so it is cached by cursor and recomputed only when the
projection has moved.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from operator import itemgetter
from typing import Any, Final

import asyncpg

from server.core import native_projection
from server.core.digest import (
    CONTEXT_GRAPH,
    PRECEDENT_INDEX,
    TRACE_SUMMARY,
    DigestWriter,
)
from server.core.errors import invalid_argument
from server.core.graph import EdgeRow, NodeRow
from server.core.graph_query import EdgeCursor, EdgeRef
from server.core.precedent import PrecedentRow
from server.core.precedent_query import PrecedentHit, PrecedentQuery
from server.core.projection_batch import FailureRecord
from server.core.replay import ALL_PROJECTIONS
from server.core.trace_summary import SummaryRow
from server.core.value import Value
from server.core.workflow import WORKFLOWS
from server.store.database import translate
from server.store.partitions import partition_name, sql_literal
from server.store.projection_writer import row_columns

_PREFETCH: Final = 5_000


_NODE_COLUMNS: Final = "node_id, node_type, trace_id, log_seq, created_at"
_EDGE_COLUMNS: Final = "edge_id, edge_type, from_node_id, to_node_id, trace_id, log_seq, created_at"
_SUMMARY_COLUMNS: Final = (
    "trace_id, workflow, title, primary_entity_type, primary_entity_id, outcome, started_at, "
    "finished_at, event_count, last_log_seq"
)


async def cursors(conn: asyncpg.Connection, scope: str) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT projection, last_log_seq FROM dg_projection_cursors WHERE scope = $1", scope
    )
    found = {r["projection"]: r["last_log_seq"] for r in rows}
    return {p: found.get(p, 0) for p in ALL_PROJECTIONS}


async def _stream(
    writer: DigestWriter, conn: asyncpg.Connection, sql: str, scope: str, row: type[Value] | None
) -> None:
    """Rows in batches (no await per row), each batch's fragments hashed at once."""
    cursor = await conn.cursor(sql, scope)
    while records := await cursor.fetch(_PREFETCH):
        if row is None:  # a table that stores its fragments (the workflow projection's)
            writer.elements([record[0] for record in records])
        else:
            writer.rows([row(*record) for record in records])


# Each projection's digest: its text, then each table's rows in id order between texts,
# with the row type that writes a row's fragment from its columns (ADR 0015), or None
# where the table stores the fragment itself.
_DIGEST_PARTS: Final[dict[str, tuple[str | tuple[str, str, type[Value] | None], ...]]] = {
    CONTEXT_GRAPH: ('{"edges":[', ("dg_cg_edges", "edge_id", EdgeRow), '],"nodes":[',
                    ("dg_cg_nodes", "node_id", NodeRow), "]}"),
    TRACE_SUMMARY: ("[", ("dg_trace_summary", "trace_id", SummaryRow), "]"),
    PRECEDENT_INDEX: ("[", ("dg_precedent_index", "source_event_id", PrecedentRow), "]"),
    WORKFLOWS: ('{"actions":[', ("dg_workflow_actions", "seq", None), '],"items":[',
                ("dg_workflow_items", "workflow_id", None), "]}"),
}  # fmt: skip


async def compute_digest(
    conn: asyncpg.Connection, scope: str, projection: str, tables: Mapping[str, str] | None = None
) -> str:
    """The §6.8 digest of one projection's current rows (call inside a snapshot).

    `tables` reads some tables from elsewhere (a REBUILD's or VERIFY's shadow tables).
    """
    writer = DigestWriter()
    for part in _DIGEST_PARTS[projection]:
        if isinstance(part, str):
            writer.text(part)
        else:
            table, order, row = part
            table = (tables or {}).get(table, table)
            if row is not None and await _sorted_here(writer, conn, table, scope, row):
                continue
            columns = "fragment" if row is None else ", ".join(row_columns(row))
            sql = f"SELECT {columns} FROM {table} WHERE scope = $1 ORDER BY {order}"
            await _stream(writer, conn, sql, scope, row)
    return writer.hexdigest()


# A table of at most this many rows is read unordered and sorted here: PostgreSQL sorts
# these ids (long, with long common prefixes, so its abbreviated keys never decide) at
# about three times Python's cost per row. A larger one is streamed in id order, after
# this many rows were read for nothing.
_SORT_HERE: Final = 100_000


async def _sorted_here(
    writer: DigestWriter, conn: asyncpg.Connection, table: str, scope: str, row: type[Value]
) -> bool:
    """Digest a small table's rows sorted by id in Python; False if the table is larger.
    Python orders str by code point, the `COLLATE "C"` order; the id is the first field.
    The graph's tables, where the native pass was built, come as one binary COPY that it
    sorts and writes as fragments (no Python object per row)."""
    columns = ", ".join(row_columns(row))
    query = (
        f"SELECT {columns} FROM {table} WHERE scope = {sql_literal(scope)} LIMIT {_SORT_HERE + 1}"
    )
    if native_projection.AVAILABLE and row in (NodeRow, EdgeRow):
        parts: list[bytes] = []

        async def keep(part: bytes) -> None:
            parts.append(part)

        await conn.copy_from_query(query, output=keep, format="binary")
        edges = row is EdgeRow
        return native_projection.digest_graph(writer, parts, edges, False, _SORT_HERE) >= 0
    records = await conn.fetch(query)
    if len(records) > _SORT_HERE:
        return False
    records.sort(key=itemgetter(0))
    writer.rows([row(*record) for record in records])
    return True


# The tables digests read. A REBUILD's swap replaces a scope's partition of each
# (store/bulk_rebuild.py), so a digest must not straddle it.
_DIGESTED: Final = ("dg_cg_edges", "dg_cg_nodes", "dg_precedent_index", "dg_trace_summary")
_EXISTING: Final = (
    "SELECT coalesce(array_agg(n), '{}') FROM unnest($1::text[]) n WHERE to_regclass(n) IS NOT NULL"
)


async def digests(
    pool: asyncpg.Pool,
    scope: str,
    *,
    use_cache: bool = True,
    only: Collection[str] | None = None,
) -> tuple[dict[str, int], dict[str, str]]:
    """(cursor, digest) of every projection of a scope (digests of `only` these, if
    given), consistent with each other."""
    try:
        async with pool.acquire() as conn:
            # The scope's own partitions, read directly and share-locked before the snapshot
            # (LOCK takes none): this scope's swap, which drops them, commits either before
            # the snapshot or after the last read, never between the cursors and the rows
            # they describe; and no lock is held on the parents, whose exclusive lock every
            # other scope's swap needs. A partition not made yet is read through its parent
            # (it holds none of the scope's rows, and no swap of the scope can be under way).
            wanted = {parent: partition_name(parent, scope) for parent in _DIGESTED}
            existing = set(await conn.fetchval(_EXISTING, list(wanted.values())))
            tables = {parent: name for parent, name in wanted.items() if name in existing}
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                if tables:
                    await conn.execute(
                        f"LOCK TABLE {', '.join(sorted(tables.values()))} IN ACCESS SHARE MODE"
                    )
                positions = await cursors(conn, scope)
                cached = (
                    {
                        r["projection"]: (r["last_log_seq"], r["digest"])
                        for r in await conn.fetch(
                            "SELECT projection, last_log_seq, digest FROM dg_projection_digests "
                            "WHERE scope = $1",
                            scope,
                        )
                    }
                    if use_cache
                    else {}
                )
                values: dict[str, str] = {}
                fresh: list[tuple[str, int, str]] = []
                for projection, position in positions.items():
                    if only is not None and projection not in only:
                        continue
                    # Workflow actions change state without moving the cursor: never cached.
                    hit = cached.get(projection) if projection != WORKFLOWS else None
                    if hit is not None and hit[0] == position:
                        values[projection] = hit[1]
                    else:
                        values[projection] = await compute_digest(conn, scope, projection, tables)
                        if projection != WORKFLOWS:
                            fresh.append((projection, position, values[projection]))
            if fresh and use_cache:
                await conn.executemany(
                    "INSERT INTO dg_projection_digests (scope, projection, last_log_seq, digest) "
                    "VALUES ($1, $2, $3, $4) ON CONFLICT (scope, projection) DO UPDATE "
                    "SET last_log_seq = EXCLUDED.last_log_seq, digest = EXCLUDED.digest, "
                    "computed_at = now()",
                    [(scope, p, pos, d) for p, pos, d in fresh],
                )
    except Exception as exc:
        raise translate(exc) from exc
    return positions, values


async def open_failures(conn: asyncpg.Connection, scope: str) -> list[FailureRecord]:
    rows = await conn.fetch(
        "SELECT projection, log_seq, event_id, trace_id, error_code, error_message, attempts "
        "FROM dg_projection_failures WHERE scope = $1 AND status = 'open' "
        "ORDER BY log_seq, projection",
        scope,
    )
    return [
        FailureRecord(
            r["projection"],
            r["log_seq"],
            r["event_id"],
            r["trace_id"],
            r["error_code"],
            r["error_message"],
            r["attempts"],
        )
        for r in rows
    ]


async def summary(conn: asyncpg.Connection, scope: str, trace_id: str) -> SummaryRow | None:
    row = await conn.fetchrow(
        f"SELECT {_SUMMARY_COLUMNS} FROM dg_trace_summary WHERE scope = $1 AND trace_id = $2",
        scope,
        trace_id,
    )
    return SummaryRow(**dict(row)) if row else None


async def recent_summaries(
    conn: asyncpg.Connection,
    scope: str,
    *,
    before: tuple[int, str] | None,
    limit: int,
    search: str | None,
    workflow: str | None,
    status: str | None,
) -> list[SummaryRow]:
    """Traces by last_log_seq DESC, trace_id ASC (newest first), filtered."""
    rows = await conn.fetch(
        f"""SELECT {_SUMMARY_COLUMNS} FROM dg_trace_summary
            WHERE scope = $1
              AND ($2::bigint IS NULL OR last_log_seq < $2
                   OR (last_log_seq = $2 AND trace_id > $3::text))
              AND ($4::text IS NULL OR title ILIKE '%' || $4 || '%'
                   OR trace_id ILIKE '%' || $4 || '%')
              AND ($5::text IS NULL OR workflow = $5)
              AND ($6::text IS NULL OR ($6 = 'open' AND outcome IS NULL)
                   OR ($6 = 'finished' AND outcome IS NOT NULL) OR outcome = $6)
            ORDER BY last_log_seq DESC, trace_id
            LIMIT $7""",
        scope,
        before[0] if before else None,
        before[1] if before else None,
        search,
        workflow,
        status,
        limit,
    )
    return [SummaryRow(**dict(r)) for r in rows]


async def edges_touching(
    conn: asyncpg.Connection, scope: str, node_ids: Sequence[str], edge_types: Sequence[str] | None
) -> list[EdgeRef]:
    rows = await conn.fetch(
        """SELECT edge_id, from_node_id, to_node_id FROM dg_cg_edges
           WHERE scope = $1 AND (from_node_id = ANY($2::text[]) OR to_node_id = ANY($2::text[]))
             AND ($3::text[] IS NULL OR edge_type = ANY($3::text[]))
           ORDER BY edge_id""",
        scope,
        list(node_ids),
        list(edge_types) if edge_types else None,
    )
    return [EdgeRef(r["edge_id"], r["from_node_id"], r["to_node_id"]) for r in rows]


async def nodes_by_id(conn: asyncpg.Connection, scope: str, ids: Sequence[str]) -> list[NodeRow]:
    rows = await conn.fetch(
        f"SELECT {_NODE_COLUMNS} FROM dg_cg_nodes WHERE scope = $1 AND node_id = ANY($2::text[]) "
        "ORDER BY node_id",
        scope,
        list(ids),
    )
    return [NodeRow(**dict(r)) for r in rows]


async def edges_by_id(conn: asyncpg.Connection, scope: str, ids: Sequence[str]) -> list[EdgeRow]:
    rows = await conn.fetch(
        f"SELECT {_EDGE_COLUMNS} FROM dg_cg_edges WHERE scope = $1 AND edge_id = ANY($2::text[]) "
        "ORDER BY edge_id",
        scope,
        list(ids),
    )
    return [EdgeRow(**dict(r)) for r in rows]


async def node_edges(
    conn: asyncpg.Connection,
    scope: str,
    key: str,
    direction: str,
    cursor: EdgeCursor | None,
    limit: int,
) -> tuple[list[EdgeRow], bool]:
    """A keyset page of a node's edges by (log_seq, edge_id); unknown cursor edge refused."""
    position: tuple[int, str] | None = None
    if cursor is not None:
        seq = cursor.log_seq
        if seq is None:
            seq = await conn.fetchval(
                "SELECT log_seq FROM dg_cg_edges WHERE scope = $1 AND edge_id = $2",
                scope,
                cursor.edge_key,
            )
            if seq is None:
                raise invalid_argument(f"cursor.edge_key not found: {cursor.edge_key}")
        position = (seq, cursor.edge_key)
    scope_sql = {"outgoing": "from_node_id = $2", "incoming": "to_node_id = $2"}.get(
        direction, "(from_node_id = $2 OR to_node_id = $2)"
    )
    rows = await conn.fetch(
        f"""SELECT {_EDGE_COLUMNS} FROM dg_cg_edges
            WHERE scope = $1 AND {scope_sql}
              AND ($3::bigint IS NULL OR log_seq >= $3 AND (log_seq, edge_id) > ($3, $4::text))
            ORDER BY log_seq, edge_id LIMIT $5""",
        scope,
        key,
        position[0] if position else None,
        position[1] if position else None,
        limit + 1,
    )
    return [EdgeRow(**dict(r)) for r in rows[:limit]], len(rows) > limit


async def precedents(
    conn: asyncpg.Connection, scope: str, query: PrecedentQuery
) -> list[PrecedentHit]:
    """§7.6: finished traces only, one hit per trace, newest finish first."""
    base = """ts.scope = $1 AND ts.outcome IS NOT NULL
              AND ($2::text IS NULL OR ts.outcome = $2)
              AND ($3::text IS NULL OR ts.primary_entity_type = $3)
              AND ($4::text IS NULL OR ts.primary_entity_id = $4)"""
    args: list[Any] = [
        scope,
        query.outcome or None,
        query.entity_type or None,
        query.entity_id or None,
    ]
    if query.policy_id:
        sql = f"""
            SELECT trace_id, workflow, title, outcome, policy_id, policy_version, finished_at,
                   last_log_seq
            FROM (
                SELECT ts.trace_id, ts.workflow, ts.title, ts.outcome, ts.finished_at,
                       ts.last_log_seq, pi.policy_id, pi.policy_version,
                       ROW_NUMBER() OVER (
                           PARTITION BY ts.trace_id
                           ORDER BY (pi.exception_id IS NULL), pi.log_seq DESC,
                                    pi.source_event_id) AS rank
                FROM dg_trace_summary ts
                JOIN dg_precedent_index pi ON pi.scope = ts.scope AND pi.trace_id = ts.trace_id
                WHERE {base} AND pi.policy_id = $5
                  AND ($6::text IS NULL OR pi.policy_version = $6)
            ) AS ranked
            WHERE rank = 1
            ORDER BY last_log_seq DESC, trace_id
            LIMIT $7"""
        args += [query.policy_id, query.policy_version or None, query.limit]
    else:
        sql = f"""
            SELECT trace_id, workflow, title, outcome, NULL::text AS policy_id,
                   NULL::text AS policy_version, finished_at, last_log_seq
            FROM dg_trace_summary ts WHERE {base}
            ORDER BY last_log_seq DESC, trace_id LIMIT $5"""
        args += [query.limit]
    rows = await conn.fetch(sql, *args)
    return [PrecedentHit(**dict(r)) for r in rows]


async def tenant_status(conn: asyncpg.Connection, scope: str) -> dict[str, Any]:
    """Counts for a tenant's status panel, from the trace summary projection."""
    row = await conn.fetchrow(
        """SELECT count(*) AS traces, count(*) FILTER (WHERE outcome IS NULL) AS open,
                  max(coalesce(finished_at, started_at)) AS last_activity
           FROM dg_trace_summary WHERE scope = $1""",
        scope,
    )
    mix = await conn.fetch(
        """SELECT workflow, count(*) AS traces FROM dg_trace_summary WHERE scope = $1
           GROUP BY workflow ORDER BY count(*) DESC, workflow LIMIT 5""",
        scope,
    )
    outcomes = await conn.fetch(
        """SELECT outcome, count(*) AS traces FROM dg_trace_summary
           WHERE scope = $1 AND outcome IS NOT NULL GROUP BY outcome ORDER BY outcome""",
        scope,
    )
    return {
        "traces": row["traces"],
        "open": row["open"],
        "last_activity": row["last_activity"],
        "workflow_mix": [(r["workflow"], r["traces"]) for r in mix],
        "outcomes": [(r["outcome"], r["traces"]) for r in outcomes],
    }
