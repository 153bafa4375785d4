"""dg_append: a planned group written in one round trip, under the tenant's row lock.

Writers plan outside any lock (server/store/event_log.py). Writing used to take one
autocommit statement when nobody else wrote the tenant, and three round trips under the
lock (lock, insert, commit) when another process did, with the lock held while the
Python side got around to sending the next message. In a VOLATILE PL/pgSQL function
every statement takes a fresh snapshot (READ COMMITTED), so the function can lock the
tenant row and then see everything committed before the lock was granted, all inside one
autocommit call: the lock is held for the insert and the commit, nothing else.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from server.store.raw_migration import raw_sql_migration

ID = "2026-11-21T00:00:03:000000"
VERSION = "1.38.0"
DESCRIPTION = "append function"

# Returns the position the plan was written after: the plan's own `p_from` when the
# tenant had not moved, a later one when it had and nothing committed since `p_from`
# touches the group's traces, event ids or idempotency scopes (the plan still holds; its
# positions shift). NULL when something does: the caller re-plans under the lock.
SQL = """
CREATE FUNCTION dg_append(
    p_tenant text,
    p_from bigint,
    p_started bigint,
    p_log_seq bigint[],
    p_event_id text[],
    p_trace_id text[],
    p_trace_seq int[],
    p_event_type text[],
    p_occurred_at text[],
    p_recorded_at text[],
    p_producer_id text[],
    p_system text[],
    p_subsystem text[],
    p_actor_type text[],
    p_actor_id text[],
    p_correlation_id text[],
    p_causation_event_id text[],
    p_idempotency_key text[],
    p_schema_version int[],
    p_payload_json text[],
    p_payload_hash text[],
    p_tags_json text[],
    p_probe_traces text[],
    p_probe_event_ids text[],
    p_probe_producers text[],
    p_probe_keys text[]
) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
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
               OR d.event_id IN (SELECT unnest(p_probe_event_ids))
               OR (d.producer_id, d.idempotency_key)
                  IN (SELECT * FROM unnest(p_probe_producers, p_probe_keys)))
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
    FROM unnest(p_log_seq, p_event_id, p_trace_id, p_trace_seq, p_event_type, p_occurred_at,
        p_recorded_at, p_producer_id, p_system, p_subsystem, p_actor_type, p_actor_id,
        p_correlation_id, p_causation_event_id, p_idempotency_key, p_schema_version,
        p_payload_json, p_payload_hash, p_tags_json)
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
