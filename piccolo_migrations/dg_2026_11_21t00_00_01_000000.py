"""Tenants, API keys, the append-only event log and its database-enforced guards."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from server.store.raw_migration import raw_sql_migration

ID = "2026-11-21T00:00:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "event log"

# Ids are COLLATE "C": ordering and comparisons follow code points like the reference.
SQL = """
CREATE TABLE dg_tenants (
    tenant_id      TEXT COLLATE "C" PRIMARY KEY
                   CHECK (tenant_id ~ '^[a-z0-9-]{1,63}$'),
    last_log_seq   BIGINT NOT NULL DEFAULT 0,
    trace_count    BIGINT NOT NULL DEFAULT 0,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE dg_api_keys (
    key_id         TEXT COLLATE "C" PRIMARY KEY,
    name           TEXT NOT NULL,
    token_hash     TEXT NOT NULL UNIQUE,
    tenants        TEXT[] NOT NULL,
    roles          TEXT[] NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at     TIMESTAMPTZ
);

CREATE TABLE dg_event_log (
    tenant_id          TEXT COLLATE "C" NOT NULL,
    log_seq            BIGINT NOT NULL CHECK (log_seq > 0),
    event_id           TEXT COLLATE "C" NOT NULL,
    trace_id           TEXT COLLATE "C" NOT NULL,
    trace_seq          INTEGER NOT NULL,
    event_type         TEXT COLLATE "C" NOT NULL,
    occurred_at        TEXT NOT NULL,
    recorded_at        TEXT NOT NULL,
    producer_id        TEXT COLLATE "C" NOT NULL,
    system             TEXT NOT NULL,
    subsystem          TEXT,
    actor_type         TEXT NOT NULL,
    actor_id           TEXT NOT NULL,
    correlation_id     TEXT,
    causation_event_id TEXT,
    idempotency_key    TEXT COLLATE "C" NOT NULL,
    schema_version     INTEGER NOT NULL,
    payload_json       TEXT NOT NULL,
    payload_hash       TEXT NOT NULL,
    tags_json          TEXT NOT NULL DEFAULT '[]',
    CONSTRAINT dg_event_log_pkey PRIMARY KEY (tenant_id, log_seq),
    CONSTRAINT dg_event_log_trace_seq_key UNIQUE (tenant_id, trace_id, trace_seq),
    CONSTRAINT dg_event_log_idempotency_key UNIQUE (tenant_id, producer_id, idempotency_key),
    CONSTRAINT dg_event_log_event_id_key UNIQUE (tenant_id, event_id)
);
-- No statistics on tenant_id: sampled per-tenant counts go stale as soon as a new tenant
-- starts writing (the planner then believes it has ~1 row and "ties" a scan of its rows
-- with a unique-key probe, turning every idempotency lookup into O(tenant size)). With
-- the default selectivity, a full unique-key probe always wins.
ALTER TABLE dg_event_log ALTER COLUMN tenant_id SET STATISTICS 0;
CREATE UNIQUE INDEX dg_event_log_one_finish
    ON dg_event_log (tenant_id, trace_id) WHERE event_type = 'TraceFinished';
CREATE INDEX dg_event_log_by_type ON dg_event_log (tenant_id, event_type, log_seq);

-- The log is append-only: no UPDATE, DELETE or TRUNCATE, whoever asks.
CREATE FUNCTION dg_refuse_log_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'dg_event_log is append-only (% refused)', TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER dg_event_log_append_only
    BEFORE UPDATE OR DELETE ON dg_event_log
    FOR EACH STATEMENT EXECUTE FUNCTION dg_refuse_log_change();
CREATE TRIGGER dg_event_log_no_truncate
    BEFORE TRUNCATE ON dg_event_log
    FOR EACH STATEMENT EXECUTE FUNCTION dg_refuse_log_change();

-- The finished-trace lock holds even for rows inserted behind the application's back.
-- One set-based check per statement (INSERT or COPY) over its transition table: a new
-- non-finish row is refused when its trace already had a finish, or when a finish
-- of the same statement precedes it. A per-row trigger costs a function call per row.
CREATE FUNCTION dg_block_events_after_finish() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    offending TEXT;
BEGIN
    SELECT n.trace_id INTO offending
    FROM new_rows n
    CROSS JOIN LATERAL (
        SELECT log_seq FROM dg_event_log
        WHERE tenant_id = n.tenant_id AND trace_id = n.trace_id
          AND event_type = 'TraceFinished'
        LIMIT 1  -- a fence: one probe of the partial index per new row
    ) AS f
    WHERE n.event_type <> 'TraceFinished'
      AND (f.log_seq < n.log_seq
           OR NOT EXISTS (SELECT 1 FROM new_rows x
                          WHERE x.tenant_id = n.tenant_id AND x.log_seq = f.log_seq))
    LIMIT 1;
    IF offending IS NOT NULL THEN
        RAISE EXCEPTION 'trace_finished: trace % is already finished', offending
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER dg_block_events_after_finish
    AFTER INSERT ON dg_event_log
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION dg_block_events_after_finish();

CREATE TABLE dg_audit_log (
    audit_id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    tenant_id    TEXT COLLATE "C",
    key_id       TEXT,
    action       TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    target       TEXT,
    reason       TEXT,
    detail_json  TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX dg_audit_log_by_tenant ON dg_audit_log (tenant_id, at);
"""


async def forwards() -> MigrationManager:
    return raw_sql_migration(ID, DESCRIPTION, SQL)
