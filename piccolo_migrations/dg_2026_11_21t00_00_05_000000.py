"""Pin the search_path of the database functions, so they find their tables whoever calls
them: `pg_restore` (and any hardened client) runs with an empty search_path, under which the
finished-trace trigger could not see `dg_event_log` and refused every restored row."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from server.store.raw_migration import raw_sql_migration

ID = "2026-11-21T00:00:05:000000"
VERSION = "1.38.0"
DESCRIPTION = "pin function search_path"

# FROM CURRENT: the schema the migrations created the tables in, wherever that is.
SQL = """
ALTER FUNCTION dg_block_events_after_finish() SET search_path FROM CURRENT;
ALTER FUNCTION dg_refuse_log_change() SET search_path FROM CURRENT;
ALTER FUNCTION dg_refuse_journal_change() SET search_path FROM CURRENT;
DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN SELECT p.oid::regprocedure FROM pg_proc p
              WHERE p.proname = 'dg_append'
                AND p.pronamespace = (SELECT oid FROM pg_namespace
                                      WHERE nspname = current_schema())
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path FROM CURRENT', fn);
    END LOOP;
END
$$;
"""


async def forwards() -> MigrationManager:
    return raw_sql_migration(ID, DESCRIPTION, SQL)
