"""Projection indexes keyed for one-scope partitions: the scope goes last or goes.

Since migration 7 every partition holds exactly one scope, so a leading `scope` column is
the same in every entry of a partition's index: it makes each entry wider and each
comparison of a sort or a descent start with a full comparison of equal strings, and it
defeats PostgreSQL's abbreviated sort keys. A REBUILD builds every index of a scope from
scratch, where that was a third of PostgreSQL's work (docs/benchmarks.md). Unique keys
must still contain the partition key, so they end with it; the other indexes drop it
(a query names its scope, pruning picks the partition, the partition's index does the
rest). The edges' endpoint indexes also drop their trailing edge_id: a node's edges are
paged by (log_seq, edge_id), and the few edges that share an endpoint and a log_seq are
sorted after the index scan.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from server.store.raw_migration import raw_sql_migration

ID = "2026-12-06T00:00:10:000000"
VERSION = "1.38.0"
DESCRIPTION = "projection indexes without a leading scope"

_KEYS = {
    "dg_cg_nodes": "node_id",
    "dg_cg_edges": "edge_id",
    "dg_trace_summary": "trace_id",
    "dg_policy_eval_index": "index_id",
    "dg_precedent_index": "source_event_id",
}
_INDEXES = {
    "dg_cg_edges_from": "dg_cg_edges (from_node_id, log_seq)",
    "dg_cg_edges_to": "dg_cg_edges (to_node_id, log_seq)",
    "dg_trace_summary_recent": "dg_trace_summary (last_log_seq DESC, trace_id)",
    "dg_trace_summary_workflow": "dg_trace_summary (workflow)",
    "dg_policy_eval_trace": "dg_policy_eval_index (trace_id)",
    "dg_precedent_policy": "dg_precedent_index (policy_id, policy_version)",
    "dg_precedent_trace": "dg_precedent_index (trace_id)",
}

SQL = "\n".join(
    [
        *(
            f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey, "
            f"ADD CONSTRAINT {table}_pkey PRIMARY KEY ({key}, scope);"
            for table, key in _KEYS.items()
        ),
        *(f"DROP INDEX {name}; CREATE INDEX {name} ON {on};" for name, on in _INDEXES.items()),
    ]
)


async def forwards() -> MigrationManager:
    return raw_sql_migration(ID, DESCRIPTION, SQL)
