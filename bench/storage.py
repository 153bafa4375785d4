"""Disk per event: the log, the projections and a backup, for the sizing guide.

Measured on a database of its own so that nothing else is counted: `events` events of the
ingest benchmark's shape (ten-event traces, ~350-byte payloads) appended through the append
path, projected to the end, vacuumed, then weighed table by table (heap, indexes, TOAST).
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg

from bench.environment import scratch_database
from bench.projection import seed
from server.backup import backup
from server.service import projection
from server.settings import Settings
from server.store.database import create_pool
from server.store.event_log import PostgresEventLog
from server.store.projections import PostgresProjections

LOG_TABLES = ("dg_event_log",)
PROJECTION_TABLES = (
    "dg_cg_nodes",
    "dg_cg_edges",
    "dg_trace_summary",
    "dg_policy_eval_index",
    "dg_precedent_index",
    "dg_projection_cursors",
    "dg_projection_digests",
)


async def _project(dsn: str, tenant: str) -> None:
    pool = await create_pool(dsn, size=2, application_name="bench-storage")
    try:
        await projection.catch_up_to_end(
            PostgresProjections(pool, 1000), PostgresEventLog(pool), None, tenant
        )
    finally:
        await pool.close()


async def _weigh(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        for table in LOG_TABLES + PROJECTION_TABLES:
            await conn.execute(f"VACUUM ANALYZE {table}")
        # A partitioned table (the projections, migration 7) holds no rows itself: its
        # size is its partitions'.
        rows = await conn.fetch(
            "SELECT c.relname, pg_total_relation_size(c.oid) + coalesce((SELECT "
            "sum(pg_total_relation_size(i.inhrelid)) FROM pg_inherits i "
            "WHERE i.inhparent = c.oid), 0) AS bytes FROM pg_class c "
            "WHERE c.relname = ANY($1::text[])",
            list(LOG_TABLES + PROJECTION_TABLES),
        )
        return {r["relname"]: int(r["bytes"]) for r in rows}
    finally:
        await conn.close()


def bench_storage(settings: Settings, events: int = 50_000) -> dict[str, Any]:
    tenant = "storage"
    with scratch_database(settings.require_database_url) as dsn:
        scratch = replace(settings, database_url=dsn)
        print(f"  seeding and projecting {events} events ...", flush=True)
        asyncio.run(seed(scratch, tenant, events))
        asyncio.run(_project(dsn, tenant))
        sizes = asyncio.run(_weigh(dsn))
        with tempfile.TemporaryDirectory() as tmp:
            dump = Path(tmp) / "backup.dump"
            asyncio.run(backup(dsn, dump))
            backup_bytes = dump.stat().st_size
    log = sum(sizes[t] for t in LOG_TABLES)
    projections = sum(sizes[t] for t in PROJECTION_TABLES)
    result = {
        "events": events,
        "log_bytes_per_event": round(log / events),
        "projection_bytes_per_event": round(projections / events),
        "backup_bytes_per_event": round(backup_bytes / events),
        "tables": {t: round(b / events) for t, b in sorted(sizes.items())},
    }
    print(
        f"  per event: log {result['log_bytes_per_event']} B, projections "
        f"{result['projection_bytes_per_event']} B, backup {result['backup_bytes_per_event']} B",
        flush=True,
    )
    return result
