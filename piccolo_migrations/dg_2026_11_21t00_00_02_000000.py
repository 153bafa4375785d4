"""Projection tables (scoped per tenant, or per VERIFY scratch scope), cursors, digests,
failures and replay runs."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from server.store.raw_migration import raw_sql_migration

ID = "2026-11-21T00:00:02:000000"
VERSION = "1.38.0"
DESCRIPTION = "projections"

# `scope` is the tenant id for live projections and `verify:<replay_id>` for the scratch
# state a VERIFY replay builds; tenant ids cannot contain ':', so the two never meet.
# `fragment` is the row's C3 JSON, so a digest streams rows in id order without
# re-serialising them. Ids are COLLATE "C": code-point order, as the reference sorts.
SQL = """
CREATE TABLE dg_projection_cursors (
    scope          TEXT COLLATE "C" NOT NULL,
    projection     TEXT COLLATE "C" NOT NULL,
    last_log_seq   BIGINT NOT NULL DEFAULT 0,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, projection)
);

CREATE TABLE dg_cg_nodes (
    scope          TEXT COLLATE "C" NOT NULL,
    node_id        TEXT COLLATE "C" NOT NULL,
    node_type      TEXT COLLATE "C" NOT NULL,
    trace_id       TEXT COLLATE "C" NOT NULL,
    log_seq        BIGINT NOT NULL,
    created_at     TEXT NOT NULL,
    metadata_json  TEXT NOT NULL DEFAULT '{}',
    fragment       TEXT NOT NULL,
    PRIMARY KEY (scope, node_id)
);

CREATE TABLE dg_cg_edges (
    scope          TEXT COLLATE "C" NOT NULL,
    edge_id        TEXT COLLATE "C" NOT NULL,
    edge_type      TEXT COLLATE "C" NOT NULL,
    from_node_id   TEXT COLLATE "C" NOT NULL,
    to_node_id     TEXT COLLATE "C" NOT NULL,
    trace_id       TEXT COLLATE "C" NOT NULL,
    log_seq        BIGINT NOT NULL,
    created_at     TEXT NOT NULL,
    metadata_json  TEXT NOT NULL DEFAULT '{}',
    fragment       TEXT NOT NULL,
    PRIMARY KEY (scope, edge_id)
);
CREATE INDEX dg_cg_edges_from ON dg_cg_edges (scope, from_node_id, log_seq, edge_id);
CREATE INDEX dg_cg_edges_to ON dg_cg_edges (scope, to_node_id, log_seq, edge_id);

CREATE TABLE dg_trace_summary (
    scope               TEXT COLLATE "C" NOT NULL,
    trace_id            TEXT COLLATE "C" NOT NULL,
    workflow            TEXT NOT NULL,
    title               TEXT NOT NULL,
    primary_entity_type TEXT,
    primary_entity_id   TEXT,
    outcome             TEXT,
    started_at          TEXT NOT NULL,
    finished_at         TEXT,
    event_count         INTEGER NOT NULL DEFAULT 0,
    last_log_seq        BIGINT NOT NULL,
    fragment            TEXT NOT NULL,
    PRIMARY KEY (scope, trace_id)
);
CREATE INDEX dg_trace_summary_recent ON dg_trace_summary (scope, last_log_seq DESC, trace_id);
CREATE INDEX dg_trace_summary_workflow ON dg_trace_summary (scope, workflow);

CREATE TABLE dg_policy_eval_index (
    scope          TEXT COLLATE "C" NOT NULL,
    index_id       TEXT COLLATE "C" NOT NULL,
    trace_id       TEXT COLLATE "C" NOT NULL,
    policy_id      TEXT COLLATE "C" NOT NULL,
    policy_version TEXT COLLATE "C" NOT NULL,
    log_seq        BIGINT NOT NULL,
    created_at     TEXT NOT NULL,
    PRIMARY KEY (scope, index_id)
);
CREATE INDEX dg_policy_eval_trace ON dg_policy_eval_index (scope, trace_id);

CREATE TABLE dg_precedent_index (
    scope                 TEXT COLLATE "C" NOT NULL,
    source_event_id       TEXT COLLATE "C" NOT NULL,
    log_seq               BIGINT NOT NULL,
    trace_id              TEXT COLLATE "C" NOT NULL,
    policy_id             TEXT COLLATE "C" NOT NULL,
    policy_version        TEXT COLLATE "C" NOT NULL,
    exception_id          TEXT COLLATE "C",
    primary_entity_type   TEXT,
    primary_entity_system TEXT,
    primary_entity_id     TEXT,
    fragment              TEXT NOT NULL,
    PRIMARY KEY (scope, source_event_id)
);
CREATE INDEX dg_precedent_policy ON dg_precedent_index (scope, policy_id, policy_version);
CREATE INDEX dg_precedent_trace ON dg_precedent_index (scope, trace_id);

-- A digest is a pure function of (scope's log, projection, cursor): cache it by cursor.
CREATE TABLE dg_projection_digests (
    scope          TEXT COLLATE "C" NOT NULL,
    projection     TEXT COLLATE "C" NOT NULL,
    last_log_seq   BIGINT NOT NULL,
    digest         TEXT NOT NULL,
    computed_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, projection)
);

CREATE TABLE dg_projection_failures (
    failure_id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope          TEXT COLLATE "C" NOT NULL,
    projection     TEXT COLLATE "C" NOT NULL,
    log_seq        BIGINT NOT NULL,
    event_id       TEXT NOT NULL,
    trace_id       TEXT NOT NULL,
    error_code     TEXT NOT NULL,
    error_message  TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    attempts       INTEGER NOT NULL DEFAULT 1,
    first_seen_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at    TIMESTAMPTZ,
    UNIQUE (scope, projection, log_seq)
);
CREATE INDEX dg_projection_failures_open ON dg_projection_failures (scope) WHERE status = 'open';

CREATE TABLE dg_replays (
    replay_id        TEXT COLLATE "C" PRIMARY KEY,
    tenant_id        TEXT COLLATE "C" NOT NULL,
    projection       TEXT NOT NULL,
    mode             TEXT NOT NULL CHECK (mode IN ('CATCH_UP', 'REBUILD', 'VERIFY')),
    status           TEXT NOT NULL CHECK (status IN
                         ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED')),
    phase            TEXT NOT NULL DEFAULT 'start',
    reason           TEXT NOT NULL,
    requested_by     TEXT NOT NULL,
    requested_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at       TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ,
    heartbeat_at     TIMESTAMPTZ,
    attempts         INTEGER NOT NULL DEFAULT 0,
    processed_events BIGINT NOT NULL DEFAULT 0,
    target_json      TEXT NOT NULL DEFAULT '{}',
    last_log_seq     BIGINT NOT NULL DEFAULT 0,
    expected_json    TEXT,
    actual_json      TEXT,
    digests_match    BOOLEAN,
    cancel_requested BOOLEAN NOT NULL DEFAULT false,
    error_code       TEXT,
    error_message    TEXT
);
CREATE INDEX dg_replays_tenant ON dg_replays (tenant_id, requested_at DESC);
CREATE INDEX dg_replays_active ON dg_replays (status) WHERE status IN ('QUEUED', 'RUNNING');

-- See the event log migration: per-scope statistics go stale the moment a scope starts.
ALTER TABLE dg_projection_cursors ALTER COLUMN scope SET STATISTICS 0;
ALTER TABLE dg_cg_nodes ALTER COLUMN scope SET STATISTICS 0;
ALTER TABLE dg_cg_edges ALTER COLUMN scope SET STATISTICS 0;
ALTER TABLE dg_trace_summary ALTER COLUMN scope SET STATISTICS 0;
ALTER TABLE dg_policy_eval_index ALTER COLUMN scope SET STATISTICS 0;
ALTER TABLE dg_precedent_index ALTER COLUMN scope SET STATISTICS 0;
"""


async def forwards() -> MigrationManager:
    return raw_sql_migration(ID, DESCRIPTION, SQL)
