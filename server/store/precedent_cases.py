"""The precedent case projection in PostgreSQL (migration 8): cases folded from the log.

Caught up like the workflow projection, one batch per transaction under a per-tenant
advisory lock, so several workers never fold the same events twice. A case changes while
its trace is open and never after TraceFinished (the log refuses later events), which is
what lets each server keep an append-only in-memory index of the finished ones.
"""

from __future__ import annotations

from typing import Final

import asyncpg

from server.core.precedent_cases import CASE_EVENT_TYPES, Case, decode_case, encode_case, fold_cases
from server.store.database import translated
from server.store.event_log import EVENT_COLUMNS, row_to_event

BATCH: Final = 2_000

_LOCK_TRY: Final = "SELECT pg_try_advisory_xact_lock(hashtextextended($1 || ':cases', 0))"
_CURSOR: Final = "SELECT last_log_seq FROM dg_precedent_case_cursors WHERE scope = $1"
_SAVE_CURSOR: Final = """
    INSERT INTO dg_precedent_case_cursors (scope, last_log_seq) VALUES ($1, $2)
    ON CONFLICT (scope) DO UPDATE SET last_log_seq = excluded.last_log_seq"""
_TAIL: Final = "SELECT last_log_seq FROM dg_tenants WHERE tenant_id = $1"
_EVENTS: Final = f"""
    SELECT {EVENT_COLUMNS} FROM dg_event_log
    WHERE tenant_id = $1 AND log_seq > $2 AND log_seq <= $3 AND event_type = ANY($4::text[])
    ORDER BY log_seq LIMIT $5"""
_OPEN: Final = """SELECT case_json FROM dg_precedent_cases
                  WHERE scope = $1 AND trace_id = ANY($2::text[])"""
_UPSERT: Final = """
    INSERT INTO dg_precedent_cases (scope, trace_id, finished, last_log_seq, case_json)
    SELECT $1, t, f, s, j FROM unnest($2::text[], $3::bool[], $4::bigint[], $5::bytea[])
        AS u(t, f, s, j)
    ON CONFLICT (scope, trace_id) DO UPDATE SET finished = excluded.finished,
        last_log_seq = excluded.last_log_seq, case_json = excluded.case_json"""
_FINISHED: Final = """
    SELECT last_log_seq, case_json FROM dg_precedent_cases
    WHERE scope = $1 AND finished AND last_log_seq > $2 ORDER BY last_log_seq LIMIT $3"""


@translated
class PostgresPrecedentCases:
    def __init__(self, pool: asyncpg.Pool, batch_size: int = BATCH) -> None:
        self._pool = pool
        self._batch_size = batch_size

    async def catch_up(self, tenant_id: str) -> tuple[int, bool]:
        """One batch: (the position reached, whether more remains). A batch another
        worker holds is left to it (position 0, nothing more to do here)."""
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval(_LOCK_TRY, tenant_id):
                return 0, False
            cursor = int(await conn.fetchval(_CURSOR, tenant_id) or 0)
            tail = int(await conn.fetchval(_TAIL, tenant_id) or 0)
            if tail <= cursor:
                return cursor, False
            rows = await conn.fetch(
                _EVENTS, tenant_id, cursor, tail, list(CASE_EVENT_TYPES), self._batch_size
            )
            events = [row_to_event(r) for r in rows]
            more = len(events) == self._batch_size
            reached = events[-1].log_seq if more else tail
            traces = sorted({e.trace_id for e in events})
            stored = await conn.fetch(_OPEN, tenant_id, traces)
            cases = {c.trace_id: c for c in (decode_case(r["case_json"]) for r in stored)}
            changed = sorted(fold_cases(events, cases).values(), key=lambda c: c.trace_id)
            if changed:
                await conn.execute(
                    _UPSERT,
                    tenant_id,
                    [c.trace_id for c in changed],
                    [c.finished for c in changed],
                    [c.last_log_seq for c in changed],
                    [encode_case(c) for c in changed],
                )
            await conn.execute(_SAVE_CURSOR, tenant_id, reached)
            return reached, more

    async def cursor(self, tenant_id: str) -> int:
        async with self._pool.acquire() as conn:
            return int(await conn.fetchval(_CURSOR, tenant_id) or 0)

    async def finished_since(self, tenant_id: str, position: int, limit: int) -> list[Case]:
        """Finished cases whose trace finished after `position`, in that order."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(_FINISHED, tenant_id, position, limit)
        return [decode_case(r["case_json"]) for r in rows]

    async def count_finished(self, tenant_id: str) -> int:
        async with self._pool.acquire() as conn:
            count = await conn.fetchval(
                "SELECT count(*) FROM dg_precedent_cases WHERE scope = $1 AND finished", tenant_id
            )
        return int(count)

    async def lagging_tenants(self) -> list[str]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT t.tenant_id FROM dg_tenants t
                   LEFT JOIN dg_precedent_case_cursors c ON c.scope = t.tenant_id
                   WHERE t.last_log_seq > coalesce(c.last_log_seq, 0)"""
            )
        return [r["tenant_id"] for r in rows]
