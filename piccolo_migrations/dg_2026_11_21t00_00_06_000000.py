"""dg_append_matrix: dg_append with the group's text columns in one two-dimensional array.

asyncpg checks every element of a one-dimensional array parameter against
collections.abc to detect nesting: two Python-level isinstance calls per string, about
1 us each on our machines, for ~20 text values per appended event. In a two-dimensional
array only the first row's elements are checked, so the server sends the group's text
columns as rows of one text[][] (column k is `p_text[k:k]`) and its probes likewise.
Same checks, same writes, same result as dg_append (migration 3), which stays for servers
of the previous release during a rolling upgrade.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from server.store.raw_migration import raw_sql_migration

ID = "2026-11-21T00:00:06:000000"
VERSION = "1.38.0"
DESCRIPTION = "append function, text columns as one matrix"

# p_text rows: event_id, trace_id, event_type, occurred_at, recorded_at, producer_id,
# system, subsystem, actor_type, actor_id, correlation_id, causation_event_id,
# idempotency_key, payload_json, payload_hash, tags_json.
# p_probes rows: producers, idempotency keys, event ids of every event in the group.
SQL = """
CREATE FUNCTION dg_append_matrix(
    p_tenant text,
    p_from bigint,
    p_started bigint,
    p_log_seq bigint[],
    p_trace_seq int[],
    p_schema_version int[],
    p_text text[],
    p_probe_traces text[],
    p_probes text[]
) RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT AS $$
DECLARE
    v_pos bigint;
    v_count bigint := cardinality(p_log_seq);
BEGIN
    SELECT last_log_seq INTO v_pos FROM dg_tenants WHERE tenant_id = p_tenant FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown tenant %', p_tenant;
    END IF;
    IF v_pos <> p_from AND EXISTS (
        SELECT 1 FROM dg_event_log d
        WHERE d.tenant_id = p_tenant AND d.log_seq > p_from AND d.log_seq <= v_pos
          -- IN (SELECT unnest(..)) is a hashed subplan; = ANY(array) would scan the
          -- array for every row committed in between.
          AND (d.trace_id IN (SELECT unnest(p_probe_traces))
               OR d.event_id IN (SELECT unnest(p_probes[3:3]))
               OR (d.producer_id, d.idempotency_key)
                  IN (SELECT * FROM unnest(p_probes[1:1], p_probes[2:2])))
    ) THEN
        RETURN NULL;
    END IF;
    INSERT INTO dg_event_log (tenant_id, log_seq, event_id, trace_id, trace_seq, event_type,
        occurred_at, recorded_at, producer_id, system, subsystem, actor_type, actor_id,
        correlation_id, causation_event_id, idempotency_key, schema_version, payload_json,
        payload_hash, tags_json)
    SELECT p_tenant, u.log_seq + (v_pos - p_from), u.event_id, u.trace_id, u.trace_seq,
           u.event_type, u.occurred_at, u.recorded_at, u.producer_id, u.system, u.subsystem,
           u.actor_type, u.actor_id, u.correlation_id, u.causation_event_id,
           u.idempotency_key, u.schema_version, u.payload_json, u.payload_hash, u.tags_json
    FROM unnest(p_log_seq, p_text[1:1], p_text[2:2], p_trace_seq, p_text[3:3], p_text[4:4],
        p_text[5:5], p_text[6:6], p_text[7:7], p_text[8:8], p_text[9:9], p_text[10:10],
        p_text[11:11], p_text[12:12], p_text[13:13], p_schema_version, p_text[14:14],
        p_text[15:15], p_text[16:16])
        AS u(log_seq, event_id, trace_id, trace_seq, event_type, occurred_at, recorded_at,
             producer_id, system, subsystem, actor_type, actor_id, correlation_id,
             causation_event_id, idempotency_key, schema_version, payload_json,
             payload_hash, tags_json);
    UPDATE dg_tenants
    SET last_log_seq = v_pos + v_count, trace_count = trace_count + p_started
    WHERE tenant_id = p_tenant;
    RETURN v_pos;
END
$$;
"""


async def forwards() -> MigrationManager:
    return raw_sql_migration(ID, DESCRIPTION, SQL)
