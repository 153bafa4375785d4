"""Replay runs in PostgreSQL (`dg_replays`), their admission rule and the run lock.

Admission takes a per-tenant advisory lock, so two requests cannot both see "nothing
overlapping is active" and both start. A running replay holds a session advisory lock
on its own id, on a connection it keeps for the run: if the worker dies, PostgreSQL
drops the connection and the lock, and a sweep can tell the run is orphaned.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Final

import asyncpg

from server.core.errors import conflict
from server.core.replay import ACTIVE, QUEUED, ReplayRecord, overlaps
from server.store.database import translate, translated

_COLUMNS: Final = (
    "replay_id, tenant_id, projection, mode, status, phase, reason, requested_by, requested_at, "
    "started_at, finished_at, processed_events, last_log_seq, target_json, expected_json, "
    "actual_json, digests_match, cancel_requested, error_code, error_message, attempts"
)
_RUN_LOCK: Final = "hashtextextended('replay:' || $1, 0)"


def _time(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _record(row: asyncpg.Record) -> ReplayRecord:
    return ReplayRecord(
        replay_id=row["replay_id"],
        tenant_id=row["tenant_id"],
        projection=row["projection"],
        mode=row["mode"],
        status=row["status"],
        phase=row["phase"],
        reason=row["reason"],
        requested_by=row["requested_by"],
        requested_at=_time(row["requested_at"]) or "",
        started_at=_time(row["started_at"]),
        finished_at=_time(row["finished_at"]),
        processed_events=row["processed_events"],
        last_log_seq=row["last_log_seq"],
        target=json.loads(row["target_json"]),
        expected=json.loads(row["expected_json"]) if row["expected_json"] else None,
        actual=json.loads(row["actual_json"]) if row["actual_json"] else None,
        digests_match=row["digests_match"],
        cancel_requested=row["cancel_requested"],
        error_code=row["error_code"],
        error_message=row["error_message"],
        attempts=row["attempts"],
    )


REPLAYS_AT_ONCE: Final = 2  # runs one worker process executes at a time
# Pooled connections a run holds at once, at most: two readers, the writer, a progress
# report and, briefly, the creation of a shadow (store/bulk_rebuild.py stream and copy).
CONNECTIONS_PER_RUN: Final = 5


@translated
class PostgresReplays:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        # Two runs at a time per process: one bulk run's index builds and swap (PostgreSQL's
        # work) overlap the next one's load (Python's), and each holds at most
        # CONNECTIONS_PER_RUN pooled connections. Runs queued behind them must not each hold
        # a pooled connection for their lock while they wait, or together they exhaust the
        # pool.
        self._running = asyncio.Semaphore(REPLAYS_AT_ONCE)

    async def create(
        self, tenant_id: str, projection: str, mode: str, reason: str, requested_by: str
    ) -> ReplayRecord:
        """Admit a run unless an overlapping one is queued or running for the tenant."""
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended('replays:' || $1, 0))",
                    tenant_id,
                )
                active = await conn.fetch(
                    "SELECT replay_id, projection FROM dg_replays "
                    "WHERE tenant_id = $1 AND status = ANY($2::text[])",
                    tenant_id,
                    list(ACTIVE),
                )
                for row in active:
                    if overlaps(row["projection"], projection):
                        raise conflict(
                            f"A replay is already running for {tenant_id}/"
                            f"{row['projection']} ({row['replay_id']})"
                        )
                row = await conn.fetchrow(
                    f"INSERT INTO dg_replays (replay_id, tenant_id, projection, mode, status, "
                    f"reason, requested_by) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                    f"RETURNING {_COLUMNS}",
                    f"replay-{uuid.uuid4().hex[:16]}",
                    tenant_id,
                    projection,
                    mode,
                    QUEUED,
                    reason,
                    requested_by,
                )
        except asyncpg.PostgresError as exc:
            raise translate(exc) from exc
        return _record(row)

    async def get(self, replay_id: str, tenant_id: str | None = None) -> ReplayRecord | None:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM dg_replays WHERE replay_id = $1 "
                "AND ($2::text IS NULL OR tenant_id = $2)",
                replay_id,
                tenant_id,
            )
        return _record(row) if row else None

    async def recent(self, tenant_id: str, limit: int) -> list[ReplayRecord]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM dg_replays WHERE tenant_id = $1 "
                "ORDER BY requested_at DESC, replay_id LIMIT $2",
                tenant_id,
                limit,
            )
        return [_record(row) for row in rows]

    async def update(self, replay_id: str, **fields: Any) -> ReplayRecord:
        """Set columns (dict values are stored as JSON) and refresh the heartbeat."""
        names = list(fields)
        values = [json.dumps(v) if isinstance(v, dict) else v for v in fields.values()]
        assignments = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(names))
        extra = ", " if assignments else ""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                f"UPDATE dg_replays SET {assignments}{extra}heartbeat_at = now() "
                f"WHERE replay_id = $1 RETURNING {_COLUMNS}",
                replay_id,
                *values,
            )
        return _record(row)

    async def start(self, replay_id: str) -> ReplayRecord | None:
        """The run RUNNING, if it is still active and no cancel came first; else as it is
        (None if there is no such run). One round trip when it starts."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                f"""UPDATE dg_replays SET status = 'RUNNING', heartbeat_at = now(),
                        started_at = coalesce(started_at, now())
                    WHERE replay_id = $1 AND status = ANY($2::text[]) AND NOT cancel_requested
                    RETURNING {_COLUMNS}""",
                replay_id,
                list(ACTIVE),
            )
        return _record(row) if row else await self.get(replay_id)

    async def finish(self, replay_id: str, status: str, **fields: Any) -> ReplayRecord:
        return await self.update(
            replay_id, status=status, finished_at=datetime.now().astimezone(), **fields
        )

    async def request_cancel(self, replay_id: str, tenant_id: str) -> ReplayRecord | None:
        """A queued run is cancelled at once; a running one stops at its next batch."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                f"""UPDATE dg_replays SET cancel_requested = true,
                        status = CASE WHEN status = 'QUEUED' THEN 'CANCELLED' ELSE status END,
                        finished_at = CASE WHEN status = 'QUEUED' THEN now() ELSE finished_at END
                    WHERE replay_id = $1 AND tenant_id = $2 RETURNING {_COLUMNS}""",
                replay_id,
                tenant_id,
            )
        return _record(row) if row else None

    async def claim_orphans(self, stale_seconds: float) -> list[ReplayRecord]:
        """Active runs nobody is executing: no run lock held and no recent heartbeat.

        Claiming bumps `attempts` and the heartbeat, so one sweeper wins per interval.
        """
        claimed = []
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT replay_id FROM dg_replays WHERE status = ANY($1::text[]) AND "
                "(heartbeat_at IS NULL OR heartbeat_at < now() - make_interval(secs => $2))",
                list(ACTIVE),
                stale_seconds,
            )
            for row in rows:
                if not await conn.fetchval(f"SELECT pg_try_advisory_lock({_RUN_LOCK})", row[0]):
                    continue  # a live worker holds the run
                await conn.execute(f"SELECT pg_advisory_unlock({_RUN_LOCK})", row[0])
                claimed_row = await conn.fetchrow(
                    f"""UPDATE dg_replays SET attempts = attempts + 1, heartbeat_at = now()
                        WHERE replay_id = $1 AND status = ANY($2::text[])
                          AND (heartbeat_at IS NULL
                               OR heartbeat_at < now() - make_interval(secs => $3))
                        RETURNING {_COLUMNS}""",
                    row[0],
                    list(ACTIVE),
                    stale_seconds,
                )
                if claimed_row:
                    claimed.append(_record(claimed_row))
        return claimed

    @asynccontextmanager
    async def run_lock(self, replay_id: str) -> AsyncIterator[bool]:
        """Hold the run's session lock for the block; yields False if another holds it."""
        async with self._running, self._pool.acquire() as conn:
            held = bool(await conn.fetchval(f"SELECT pg_try_advisory_lock({_RUN_LOCK})", replay_id))
            try:
                yield held
            finally:
                if held and not conn.is_closed():
                    await conn.execute(f"SELECT pg_advisory_unlock({_RUN_LOCK})", replay_id)
