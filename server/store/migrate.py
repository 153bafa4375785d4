"""Apply Piccolo migrations idempotently; concurrent callers queue on an advisory lock."""

from __future__ import annotations

import os
import sys
from contextlib import redirect_stdout

import asyncpg

_LOCK = "SELECT pg_advisory_lock(hashtextextended('decisiongraph:migrate', 0))"


async def migrate(database_url: str) -> None:
    # Piccolo locates its engine through PICCOLO_CONF; this is its one integration point.
    os.environ["PICCOLO_CONF"] = "server.store.piccolo_conf"
    from piccolo.apps.migrations.commands.forwards import run_forwards

    from server.store import piccolo_conf

    piccolo_conf.DB.config = {"dsn": database_url}
    lock = await asyncpg.connect(database_url)
    try:
        await lock.execute(_LOCK)
        # Piccolo narrates on stdout; keep stdout for command output (`keys create`).
        with redirect_stdout(sys.stderr):
            result = await run_forwards(app_name="decisiongraph")
        if not result.success:
            raise RuntimeError(f"migrations failed: {result.message}")
    finally:
        await lock.close()
