"""Policy simulation runs: counterfactual replays of recorded decisions (docs/precedent.md)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from server.store.raw_migration import raw_sql_migration

ID = "2026-12-06T00:00:09:000000"
VERSION = "1.38.0"
DESCRIPTION = "policy simulation runs"

SQL = """
CREATE TABLE dg_policy_simulations (
    simulation_id  TEXT COLLATE "C" PRIMARY KEY,
    tenant_id      TEXT COLLATE "C" NOT NULL,
    policy_id      TEXT NOT NULL,
    request_json   TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED')),
    requested_by   TEXT NOT NULL,
    requested_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at     TIMESTAMPTZ,
    finished_at    TIMESTAMPTZ,
    total          INTEGER NOT NULL DEFAULT 0,
    processed      INTEGER NOT NULL DEFAULT 0,
    result_json    TEXT,
    error_code     TEXT,
    error_message  TEXT
);
CREATE INDEX dg_policy_simulations_tenant ON dg_policy_simulations (tenant_id, requested_at DESC);
"""


async def forwards() -> MigrationManager:
    return raw_sql_migration(ID, DESCRIPTION, SQL)
