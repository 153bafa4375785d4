"""Our migrations are hand-written SQL; Piccolo runs each in its own transaction."""

from __future__ import annotations

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder


def raw_sql_migration(migration_id: str, description: str, sql: str) -> MigrationManager:
    manager = MigrationManager(
        migration_id=migration_id, app_name="decisiongraph", description=description
    )

    async def run() -> None:
        engine = engine_finder()
        assert engine is not None
        transaction = engine.current_transaction.get()
        assert transaction is not None
        await transaction.connection.execute(sql)

    manager.add_raw(run)
    return manager
