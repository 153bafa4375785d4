"""Precedent cases: each trace folded into what scored precedent compares.

Not a spec projection and in no digest: derived from the log like the others, caught up
by the workers with a cursor of its own, and read by the servers into an in-memory
index per tenant (server/core/precedent_score.py, docs/precedent.md).
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from server.store.raw_migration import raw_sql_migration

ID = "2026-12-06T00:00:08:000000"
VERSION = "1.38.0"
DESCRIPTION = "precedent cases"

SQL = """
CREATE TABLE dg_precedent_cases (
    scope          TEXT COLLATE "C" NOT NULL,
    trace_id       TEXT COLLATE "C" NOT NULL,
    finished       BOOLEAN NOT NULL,
    last_log_seq   BIGINT NOT NULL,
    case_json      BYTEA NOT NULL,
    PRIMARY KEY (scope, trace_id)
);
-- The servers load finished cases in the order they finished, from where they left off.
CREATE INDEX dg_precedent_cases_finished ON dg_precedent_cases (scope, last_log_seq)
    WHERE finished;
ALTER TABLE dg_precedent_cases ALTER COLUMN scope SET STATISTICS 0;

CREATE TABLE dg_precedent_case_cursors (
    scope          TEXT COLLATE "C" PRIMARY KEY,
    last_log_seq   BIGINT NOT NULL DEFAULT 0
);
"""


async def forwards() -> MigrationManager:
    return raw_sql_migration(ID, DESCRIPTION, SQL)
