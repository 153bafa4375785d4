"""Review workflows: the journal (a source, append-only, per tenant) and the workflow
projection (items, actions, notifications; per scope, rebuildable from log + journal)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from server.store.raw_migration import raw_sql_migration

ID = "2026-11-21T00:00:04:000000"
VERSION = "1.38.0"
DESCRIPTION = "workflows"

# The journal holds what is not a decision event: claims, comments, change requests,
# reassignments, escalations (manual and SLA) and deadline warnings, each with the log
# position the workflow projection had reached when it was taken, so a rebuild merges
# them back in the same order. It is append-only, like the log.
SQL = """
CREATE TABLE dg_workflow_journal (
    journal_id       BIGSERIAL PRIMARY KEY,
    tenant_id        TEXT COLLATE "C" NOT NULL REFERENCES dg_tenants (tenant_id),
    position         BIGINT NOT NULL,
    kind             TEXT NOT NULL,
    workflow_id      TEXT COLLATE "C" NOT NULL,
    actor_id         TEXT NOT NULL,
    actor_type       TEXT NOT NULL,
    actor_account_id TEXT,
    input_json       TEXT NOT NULL,
    at               TEXT NOT NULL,
    -- the SLA timer's entries are unique per workflow and due time: never twice
    dedupe_key       TEXT,
    recorded_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX dg_workflow_journal_position ON dg_workflow_journal (tenant_id, position, journal_id);
CREATE UNIQUE INDEX dg_workflow_journal_dedupe ON dg_workflow_journal (tenant_id, dedupe_key)
    WHERE dedupe_key IS NOT NULL;
ALTER TABLE dg_workflow_journal ALTER COLUMN tenant_id SET STATISTICS 0;

CREATE FUNCTION dg_refuse_journal_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'dg_workflow_journal is append-only';
END $$;
CREATE TRIGGER dg_workflow_journal_append_only
    BEFORE UPDATE OR DELETE ON dg_workflow_journal
    FOR EACH ROW EXECUTE FUNCTION dg_refuse_journal_change();
CREATE TRIGGER dg_workflow_journal_no_truncate
    BEFORE TRUNCATE ON dg_workflow_journal
    FOR EACH STATEMENT EXECUTE FUNCTION dg_refuse_journal_change();

CREATE TABLE dg_workflow_items (
    scope                TEXT COLLATE "C" NOT NULL,
    workflow_id          TEXT COLLATE "C" NOT NULL,
    trace_id             TEXT COLLATE "C" NOT NULL,
    workflow_kind        TEXT NOT NULL,
    status               TEXT NOT NULL,
    priority             TEXT NOT NULL,
    assigned_account_id  TEXT,
    assigned_role        TEXT,
    requested_at         TEXT NOT NULL,
    sla_due              TIMESTAMPTZ,
    item_json            TEXT NOT NULL,
    fragment             TEXT NOT NULL,
    PRIMARY KEY (scope, workflow_id)
);
CREATE INDEX dg_workflow_items_trace ON dg_workflow_items (scope, trace_id);
CREATE INDEX dg_workflow_items_open_due ON dg_workflow_items (sla_due)
    WHERE status IN ('requested', 'in_review', 'changes_requested', 'escalated');

CREATE TABLE dg_workflow_actions (
    scope            TEXT COLLATE "C" NOT NULL,
    seq              BIGINT NOT NULL,
    action_id        TEXT COLLATE "C" NOT NULL,
    workflow_id      TEXT COLLATE "C" NOT NULL,
    trace_id         TEXT COLLATE "C" NOT NULL,
    action_type      TEXT NOT NULL,
    resulting_status TEXT NOT NULL,
    action_json      TEXT NOT NULL,
    fragment         TEXT NOT NULL,
    PRIMARY KEY (scope, seq),
    UNIQUE (scope, action_id)
);
CREATE INDEX dg_workflow_actions_workflow ON dg_workflow_actions (scope, workflow_id, seq);

CREATE TABLE dg_workflow_notifications (
    scope            TEXT COLLATE "C" NOT NULL,
    dedupe_key       TEXT COLLATE "C" NOT NULL,
    seq              BIGINT NOT NULL,
    workflow_id      TEXT COLLATE "C" NOT NULL,
    category         TEXT NOT NULL,
    notification_json TEXT NOT NULL,
    PRIMARY KEY (scope, dedupe_key)
);
CREATE INDEX dg_workflow_notifications_workflow
    ON dg_workflow_notifications (scope, workflow_id, seq);

ALTER TABLE dg_workflow_items ALTER COLUMN scope SET STATISTICS 0;
ALTER TABLE dg_workflow_actions ALTER COLUMN scope SET STATISTICS 0;
ALTER TABLE dg_workflow_notifications ALTER COLUMN scope SET STATISTICS 0;
"""


async def forwards() -> MigrationManager:
    return raw_sql_migration(ID, DESCRIPTION, SQL)
