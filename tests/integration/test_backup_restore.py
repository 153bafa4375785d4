"""Backup and restore: a dump of the log (and journal, keys, audit log) restored into a fresh
database rebuilds projections with the same digests, workflows included.

Runs the real commands (`decisiongraph backup FILE`, `decisiongraph restore FILE`) as a
user would, with `pg_dump` / `pg_restore`, against two databases of their own.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from server.core.digest import full_digest
from server.demo.seed import seed_release_demo
from server.settings import Settings
from server.startup import create_key
from server.store.database import admin_sql, with_database
from server.store.migrate import migrate
from server.store.projections import PostgresProjections
from tests.integration.test_demo_seed import RECORDED_DIGESTS
from tests.support import ROOT, process_env

pytestmark = pytest.mark.anyio

TENANTS = ("release-demo", "second-tenant")


@pytest.fixture
async def databases(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    names = (f"dg_backup_src_{suffix}", f"dg_backup_dst_{suffix}")
    dsn = settings.require_database_url
    for name in names:
        await admin_sql(dsn, f"CREATE DATABASE {name}")
    try:
        yield with_database(dsn, names[0]), with_database(dsn, names[1])
    finally:
        for name in names:
            await admin_sql(dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def cli(settings: Settings, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = process_env(settings, DG_DATABASE_URL=database_url, DG_LOG_LEVEL="warning")
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


async def state(dsn: str) -> dict[str, object]:
    """Everything a restore must reproduce: source rows, and the rebuilt projections."""
    conn = await asyncpg.connect(dsn)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        projections = PostgresProjections(pool, 250)
        digests = {}
        for tenant in TENANTS:
            _, values = await projections.digests(tenant, use_cache=False)
            values["full_projection"] = full_digest(
                values["context_graph"], values["trace_summary"], values["precedent_index"]
            )
            digests[tenant] = values
        return {
            "digests": digests,
            "events": await conn.fetch(
                "SELECT tenant_id, log_seq, event_id, payload_hash FROM dg_event_log "
                "ORDER BY tenant_id, log_seq"
            ),
            "journal": await conn.fetch(
                "SELECT tenant_id, position, kind, workflow_id FROM dg_workflow_journal "
                "ORDER BY journal_id"
            ),
            "items": await conn.fetch(
                "SELECT scope, workflow_id, status, item_json FROM dg_workflow_items "
                "ORDER BY scope, workflow_id"
            ),
            "keys": await conn.fetch("SELECT * FROM dg_api_keys ORDER BY 1"),
            "tenants": await conn.fetch(
                "SELECT tenant_id, last_log_seq FROM dg_tenants ORDER BY 1"
            ),
        }
    finally:
        await pool.close()
        await conn.close()


async def test_a_restored_dump_rebuilds_identical_digests(
    settings: Settings, databases: tuple[str, str], tmp_path: Path
) -> None:
    source, target = databases
    await migrate(source)
    on_source = replace(settings, database_url=source)
    reports = {tenant: await seed_release_demo(on_source, tenant) for tenant in TENANTS}
    await create_key(on_source, "restored key", ["release-demo"], ["reader"])
    before = await state(source)
    demo_digests = before["digests"]["release-demo"]  # type: ignore[index]
    assert {name: demo_digests[name] for name in RECORDED_DIGESTS} == RECORDED_DIGESTS
    assert len(before["journal"]) == 4  # type: ignore[arg-type]  # SLA escalations, 2 each

    dump = tmp_path / "decisiongraph.dump"
    made = await asyncio.to_thread(cli, settings, source, "backup", str(dump))
    assert made.returncode == 0, made.stderr
    assert "dg_event_log 44" in made.stdout

    restored = await asyncio.to_thread(cli, settings, target, "restore", str(dump))
    assert restored.returncode == 0, restored.stderr
    assert "2 tenant(s), projections rebuilt" in restored.stdout
    after = await state(target)
    assert after == before

    # The restored platform continues where the original stopped: reseeding is a no-op
    # that reports the same thing, and the SLA timers do not fire a second time.
    on_target = replace(settings, database_url=target)
    assert await seed_release_demo(on_target, "release-demo") == reports["release-demo"]
    assert await state(target) == before

    # A restore never lands on top of data.
    again = await asyncio.to_thread(cli, settings, target, "restore", str(dump))
    assert again.returncode == 1
    assert "already has data" in again.stderr
