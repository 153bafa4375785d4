"""Projection rows without their stored C3 `fragment` (docs/adr/0015-digests-from-columns.md).

A fragment is a pure function of its row's columns. Storing it doubled the bytes of a
context-graph row, and so the work of every write: the COPY of a REBUILD, the inserts of a
catch-up, the pages a reader reads. Digests now build each fragment from the columns as
they stream the rows in id order. The workflow projection keeps its fragments: its rows
hold JSON documents whose C3 text is not a simple function of typed columns.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from server.store.raw_migration import raw_sql_migration

ID = "2026-12-06T00:00:11:000000"
VERSION = "1.38.0"
DESCRIPTION = "projection rows without stored fragments"

SQL = "\n".join(
    f"ALTER TABLE {table} DROP COLUMN fragment;"
    for table in ("dg_cg_nodes", "dg_cg_edges", "dg_trace_summary", "dg_precedent_index")
)


async def forwards() -> MigrationManager:
    return raw_sql_migration(ID, DESCRIPTION, SQL)
