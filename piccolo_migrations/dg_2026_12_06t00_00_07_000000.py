"""Projection tables partitioned by scope, so that a REBUILD can swap a whole scope at once.

A REBUILD loads a scope's rows into standalone shadow tables with binary COPY, builds
their indexes once at the end, and swaps them in as the scope's partitions in one short
transaction (docs/adr/0014-bulk-rebuild-into-swapped-partitions.md). Each scope (a tenant)
has one partition per projection table, named by `dg_projection_partition`, created on
first use by `dg_ensure_projection_partitions`. Rows already stored move to their scope's
partition here, unchanged.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from server.store.raw_migration import raw_sql_migration

ID = "2026-12-06T00:00:07:000000"
VERSION = "1.38.0"
DESCRIPTION = "projection tables partitioned by scope"

TABLES = ("dg_cg_nodes", "dg_cg_edges", "dg_trace_summary", "dg_policy_eval_index",
          "dg_precedent_index")  # fmt: skip

_RENAME_OLD = (
    "\n".join(f"ALTER TABLE {t} RENAME TO {t}_unpartitioned;" for t in TABLES)
    + """
ALTER INDEX dg_cg_nodes_pkey RENAME TO dg_cg_nodes_unpartitioned_pkey;
ALTER INDEX dg_cg_edges_pkey RENAME TO dg_cg_edges_unpartitioned_pkey;
ALTER INDEX dg_cg_edges_from RENAME TO dg_cg_edges_unpartitioned_from;
ALTER INDEX dg_cg_edges_to RENAME TO dg_cg_edges_unpartitioned_to;
ALTER INDEX dg_trace_summary_pkey RENAME TO dg_trace_summary_unpartitioned_pkey;
ALTER INDEX dg_trace_summary_recent RENAME TO dg_trace_summary_unpartitioned_recent;
ALTER INDEX dg_trace_summary_workflow RENAME TO dg_trace_summary_unpartitioned_workflow;
ALTER INDEX dg_policy_eval_index_pkey RENAME TO dg_policy_eval_index_unpartitioned_pkey;
ALTER INDEX dg_policy_eval_trace RENAME TO dg_policy_eval_unpartitioned_trace;
ALTER INDEX dg_precedent_index_pkey RENAME TO dg_precedent_index_unpartitioned_pkey;
ALTER INDEX dg_precedent_policy RENAME TO dg_precedent_unpartitioned_policy;
ALTER INDEX dg_precedent_trace RENAME TO dg_precedent_unpartitioned_trace;
"""
)

_MOVE_ROWS = "\n".join(
    f"INSERT INTO {t} SELECT * FROM {t}_unpartitioned; DROP TABLE {t}_unpartitioned;"
    for t in TABLES
)

SQL = (
    _RENAME_OLD
    + """
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
) PARTITION BY LIST (scope);

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
) PARTITION BY LIST (scope);
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
) PARTITION BY LIST (scope);
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
) PARTITION BY LIST (scope);
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
) PARTITION BY LIST (scope);
CREATE INDEX dg_precedent_policy ON dg_precedent_index (scope, policy_id, policy_version);
CREATE INDEX dg_precedent_trace ON dg_precedent_index (scope, trace_id);

-- The partition of `parent` that holds `scope`; 64 bits of md5 keep names short and unique.
CREATE FUNCTION dg_projection_partition(parent text, scope text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT parent || '__' || substr(md5(scope), 1, 16) $$;

-- Every partition DDL (this, and a REBUILD's swap) first takes one advisory lock, so two
-- workers never create the same partition and a swap never meets a half-made one.
CREATE FUNCTION dg_ensure_projection_partitions(p_scope text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_parent text;
    v_name text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('dg_projection_partitions', 0));
    FOREACH v_parent IN ARRAY ARRAY['dg_cg_nodes', 'dg_cg_edges', 'dg_trace_summary',
                                    'dg_policy_eval_index', 'dg_precedent_index'] LOOP
        v_name := dg_projection_partition(v_parent, p_scope);
        IF to_regclass(v_name) IS NULL THEN
            -- Made apart and attached, not CREATE ... PARTITION OF: ATTACH takes a lock on
            -- the parent that ordinary reads and writes of other scopes do not wait for (nor
            -- it for them), so creating a scope never deadlocks with another's catch-up. The
            -- CHECK proves the partition bound, so ATTACH does not scan.
            EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING INDEXES, '
                           'CONSTRAINT %I CHECK (scope = %L))',
                           v_name, v_parent, v_name || '_scope', p_scope);
            EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES IN (%L)',
                           v_parent, v_name, p_scope);
        END IF;
    END LOOP;
END $$;

SELECT dg_ensure_projection_partitions(scope) FROM (
    SELECT scope FROM dg_cg_nodes_unpartitioned UNION SELECT scope FROM dg_cg_edges_unpartitioned
    UNION SELECT scope FROM dg_trace_summary_unpartitioned
    UNION SELECT scope FROM dg_policy_eval_index_unpartitioned
    UNION SELECT scope FROM dg_precedent_index_unpartitioned
) AS scopes;
"""
    + _MOVE_ROWS
)


async def forwards() -> MigrationManager:
    return raw_sql_migration(ID, DESCRIPTION, SQL)
