"""Review workflows on PostgreSQL: the journal, the workflow projection and its reads.

The projection ("workflows", a cursor beside the other three) folds the log's decision
events with the journal merged in by position (core/workflow.fold). Manual actions and
SLA timers take the projection's advisory lock, validate against the current item, append
their journal entry at the projection's current position and apply it, all in one
transaction; catch-up batches take the same lock. So the live order of inputs is the order
a rebuild replays.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import asyncpg

from server.core.canonical_json import payload_hash_mismatch
from server.core.clock import parse_timestamp
from server.core.digest import DigestWriter
from server.core.envelope import StoredEvent
from server.core.errors import DecisionGraphError, conflict, not_found
from server.core.projection_batch import BatchReport, Failure
from server.core.workflow import (
    DEADLINE_RISK,
    DECISION_EVENT_TYPES,
    OPEN,
    SLA_ESCALATE,
    WORKFLOWS,
    ActionRow,
    DueTimer,
    FoldResult,
    InboxFilter,
    JournalEntry,
    NotificationRow,
    TraceInfo,
    WorkflowItem,
    action_dict,
    action_from_dict,
    apply_entry,
    decision_targets,
    fold,
    item_from_dict,
    notification_dict,
    notification_from_dict,
    target_trace,
    timer_kind,
)
from server.store.database import translated
from server.store.event_log import EVENT_COLUMNS, row_to_event
from server.store.partitions import sql_literal
from server.store.projection_writer import record_failure, save_cursors

_LOCK_TRY: Final = "SELECT pg_try_advisory_xact_lock(hashtextextended($1 || ':workflows', 0))"
_LOCK_WAIT: Final = "SELECT pg_advisory_xact_lock(hashtextextended($1 || ':workflows', 0))"
_WORKFLOW_TABLES: Final = ("dg_workflow_items", "dg_workflow_actions", "dg_workflow_notifications")
_CURSOR: Final = """SELECT last_log_seq FROM dg_projection_cursors
                    WHERE scope = $1 AND projection = 'workflows'"""
# The decision events of a window, one range of the log's (tenant, type, position) index
# per type, merged. Asked as one `event_type = ANY(...)` filter, PostgreSQL (no statistics
# on tenant columns, ADR 0007) walked the window by the primary key and threw away every
# other event: a REBUILD's pass over a 10,000-event log read all 10,000 rows to find none
# (6.7 ms, 0.03 ms by the type index; ADR 0007), and every catch-up batch read all that the
# log gained since the last one.
_DECISIONS: Final = f"""
    SELECT e.* FROM unnest($4::text[]) AS wanted(event_type)
    CROSS JOIN LATERAL (
        SELECT {EVENT_COLUMNS} FROM dg_event_log
        WHERE tenant_id = $1 AND event_type = wanted.event_type
          AND log_seq > $2 AND log_seq <= $3
        ORDER BY log_seq LIMIT $5
    ) AS e
    ORDER BY e.log_seq LIMIT $5
"""
_JOURNAL: Final = """
    SELECT journal_id, position, kind, workflow_id, actor_id, actor_type, actor_account_id,
           input_json, at
    FROM dg_workflow_journal
    WHERE tenant_id = $1 AND position > $2 AND position <= $3
    ORDER BY position, journal_id
"""
_STARTS: Final = """
    SELECT trace_id, payload_json FROM dg_event_log
    WHERE tenant_id = $1 AND trace_id = ANY($2::text[]) AND trace_seq = 0
      AND event_type = 'TraceStarted'
"""
_ITEMS: Final = """SELECT item_json FROM dg_workflow_items
                   WHERE scope = $1 AND workflow_id = ANY($2::text[])"""
_UPSERT_ITEMS: Final = """
    INSERT INTO dg_workflow_items (scope, workflow_id, trace_id, workflow_kind, status,
        priority, assigned_account_id, assigned_role, requested_at, sla_due, item_json,
        fragment)
    SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
        $7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::text[], $12::text[])
    ON CONFLICT (scope, workflow_id) DO UPDATE SET
        status = EXCLUDED.status, priority = EXCLUDED.priority,
        assigned_account_id = EXCLUDED.assigned_account_id,
        assigned_role = EXCLUDED.assigned_role, requested_at = EXCLUDED.requested_at,
        sla_due = EXCLUDED.sla_due, item_json = EXCLUDED.item_json,
        fragment = EXCLUDED.fragment, workflow_kind = EXCLUDED.workflow_kind
"""
_INSERT_ACTIONS: Final = """
    INSERT INTO dg_workflow_actions (scope, seq, action_id, workflow_id, trace_id,
        action_type, resulting_status, action_json, fragment)
    SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
        $7::text[], $8::text[], $9::text[])
"""
_INSERT_NOTIFICATIONS: Final = """
    INSERT INTO dg_workflow_notifications (scope, dedupe_key, seq, workflow_id, category,
        notification_json)
    SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[])
    ON CONFLICT DO NOTHING
"""
_JOURNAL_HAS_KEY: Final = (
    "SELECT 1 FROM dg_workflow_journal WHERE tenant_id = $1 AND dedupe_key = $2"
)
_NEXT_SEQ: Final = "SELECT coalesce(max(seq), 0) FROM dg_workflow_actions WHERE scope = $1"
# A batch's start (the scope's cursor) and the log's end, in one round trip.
_CURSOR_AND_TAIL: Final = f"""
    SELECT coalesce(({_CURSOR}), 0)::int8,
           coalesce((SELECT last_log_seq FROM dg_tenants WHERE tenant_id = $2), 0)::int8
"""
_INSERT_JOURNAL: Final = """
    INSERT INTO dg_workflow_journal (tenant_id, position, kind, workflow_id, actor_id,
        actor_type, actor_account_id, input_json, at, dedupe_key)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
    ON CONFLICT DO NOTHING
    RETURNING journal_id
"""


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _entry(row: asyncpg.Record) -> JournalEntry:
    return JournalEntry(
        journal_id=row["journal_id"],
        position=row["position"],
        kind=row["kind"],
        workflow_id=row["workflow_id"],
        actor_id=row["actor_id"],
        actor_type=row["actor_type"],
        actor_account_id=row["actor_account_id"],
        input=json.loads(row["input_json"]),
        at=row["at"],
    )


def _first_tampered(events: Sequence[StoredEvent]) -> Failure | None:
    """The first decision event whose payload no longer matches its hash (spec §6.2)."""
    for event in events:
        try:
            actual = payload_hash_mismatch(event.payload, event.payload_hash)
        except DecisionGraphError as error:  # e.g. a float written behind our back
            return Failure(event, error)
        if actual is not None:
            message = (
                f"Payload hash mismatch for event {event.event_id}: "
                f"expected {event.payload_hash}, got {actual}"
            )
            return Failure(event, conflict(message))
    return None


def _sla(item: WorkflowItem) -> datetime | None:
    return parse_timestamp(item.sla_due_at) if item.sla_due_at else None


async def _load_items(
    conn: asyncpg.Connection, scope: str, ids: Sequence[str]
) -> dict[str, WorkflowItem]:
    if not ids:  # most batches touch no workflow: no round trip for nothing
        return {}
    rows = await conn.fetch(_ITEMS, scope, list(ids))
    items = [item_from_dict(json.loads(r["item_json"])) for r in rows]
    return {i.workflow_id: i for i in items}


async def _write(conn: asyncpg.Connection, scope: str, result: FoldResult) -> int:
    """Persist a fold's changes; the last action seq written (0 when none)."""
    if result.items:
        items = list(result.items.values())
        await conn.execute(
            _UPSERT_ITEMS,
            scope,
            [i.workflow_id for i in items],
            [i.trace_id for i in items],
            [i.kind for i in items],
            [i.status for i in items],
            [i.priority for i in items],
            [i.assigned_account_id for i in items],
            [i.assigned_role for i in items],
            [i.requested_at for i in items],
            [_sla(i) for i in items],
            [_dumps(i.digest_dict()) for i in items],
            [i.fragment() for i in items],
        )
    if not result.actions:
        return 0
    first = int(await conn.fetchval(_NEXT_SEQ, scope)) + 1
    seqs = list(range(first, first + len(result.actions)))
    actions = result.actions
    await conn.execute(
        _INSERT_ACTIONS,
        scope,
        seqs,
        [a.action_id for a in actions],
        [a.workflow_id for a in actions],
        [a.trace_id for a in actions],
        [a.action_type for a in actions],
        [a.resulting_status for a in actions],
        [_dumps(action_dict(a)) for a in actions],
        [a.fragment() for a in actions],
    )
    if result.notifications:
        notices = result.notifications
        await conn.execute(
            _INSERT_NOTIFICATIONS,
            scope,
            [n.dedupe_key for n in notices],
            [seqs[-1]] * len(notices),
            [n.workflow_id for n in notices],
            [n.category for n in notices],
            [_dumps(notification_dict(n)) for n in notices],
        )
    return seqs[-1]


async def _trace_infos(
    conn: asyncpg.Connection, tenant_id: str, trace_ids: Sequence[str]
) -> dict[str, TraceInfo]:
    if not trace_ids:
        return {}
    rows = await conn.fetch(_STARTS, tenant_id, sorted(set(trace_ids)))
    infos = {}
    for row in rows:
        payload = json.loads(row["payload_json"])
        payload = payload if isinstance(payload, dict) else {}
        title, workflow = payload.get("title"), payload.get("workflow")
        infos[row["trace_id"]] = TraceInfo(
            title=title if isinstance(title, str) else "",
            workflow=workflow if isinstance(workflow, str) and workflow else "unknown",
        )
    return infos


@translated
class PostgresWorkflows:
    def __init__(self, pool: asyncpg.Pool, batch_size: int = 1000) -> None:
        self._pool = pool
        self._batch_size = batch_size

    # -- the projection ------------------------------------------------------------------

    async def catch_up(
        self, tenant_id: str, scope: str | None = None, until: int | None = None
    ) -> BatchReport:
        """One batch of the workflow projection, in one transaction."""
        scope = scope or tenant_id
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval(_LOCK_TRY, scope):
                return BatchReport((), 0, {}, more=False, busy=(WORKFLOWS,))
            return await self._batch(conn, tenant_id, scope, until)

    async def rebuild(self, tenant_id: str) -> BatchReport:
        """The tenant's projection cleared and replayed to the log's end (or to a failing
        event) in one transaction, so that readers, and a worker killed on the way, see
        the old projection or the new one, never a half-built one. One report for it all."""
        async with self._pool.acquire() as conn, conn.transaction():
            await self._lock_and_clear(conn, tenant_id)
            applied = 0
            while True:
                report = await self._batch(conn, tenant_id, tenant_id, None)
                applied += report.applied
                if not report.more or report.failure is not None:
                    return dataclasses.replace(report, applied=applied)

    async def _batch(
        self, conn: asyncpg.Connection, tenant_id: str, scope: str, until: int | None
    ) -> BatchReport:
        """One batch inside the caller's transaction, which holds the scope's lock."""
        cursor, tail = await conn.fetchrow(_CURSOR_AND_TAIL, scope, tenant_id)
        end = tail if until is None else min(tail, until)
        if end <= cursor:
            return BatchReport((WORKFLOWS,), 0, {WORKFLOWS: cursor}, more=False)
        rows = await conn.fetch(
            _DECISIONS, tenant_id, cursor, end, list(DECISION_EVENT_TYPES), self._batch_size
        )
        events = [row_to_event(r) for r in rows]
        more = len(events) == self._batch_size
        reached = events[-1].log_seq if more else end
        failure = _first_tampered(events)
        if failure is not None:  # stop before it, as every projection does
            events = [e for e in events if e.log_seq < failure.event.log_seq]
            reached, more = failure.event.log_seq - 1, False
            await record_failure(conn, scope, WORKFLOWS, failure.event, failure.error)
        entries = [_entry(r) for r in await conn.fetch(_JOURNAL, tenant_id, cursor, reached)]
        wanted = {t for e in events if (t := decision_targets(e))}
        wanted |= {j.workflow_id for j in entries}
        items = await _load_items(conn, scope, sorted(wanted))
        infos = await _trace_infos(conn, tenant_id, [target_trace(e) for e in events])
        result = fold(items, events, entries, infos)
        await _write(conn, scope, result)
        await save_cursors(conn, scope, {WORKFLOWS: reached}, resolve=failure is None)
        return BatchReport((WORKFLOWS,), reached - cursor, {WORKFLOWS: reached}, more, failure)

    async def reset(self, scope: str) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await self._lock_and_clear(conn, scope)

    @staticmethod
    async def _lock_and_clear(conn: asyncpg.Connection, scope: str) -> None:
        """Inside the caller's transaction: the scope's lock, then its rows and cursor gone,
        in one round trip (each costs both processes more than these statements do)."""
        literal = sql_literal(scope)
        await conn.execute(
            ";\n".join(
                [
                    _LOCK_WAIT.replace("$1", literal),
                    *(f"DELETE FROM {table} WHERE scope = {literal}" for table in _WORKFLOW_TABLES),
                    f"DELETE FROM dg_projection_cursors WHERE scope = {literal} "
                    "AND projection = 'workflows'",
                ]
            )
        )

    async def drop_scope(self, scope: str) -> None:
        await self.reset(scope)

    async def digest(self, scope: str) -> tuple[int, str]:
        """(cursor, digest) of the projection: C3 of {"actions": [...], "items": [...]}."""
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            cursor = int(await conn.fetchval(_CURSOR, scope) or 0)
            writer = DigestWriter()
            writer.text('{"actions":[')
            async for row in conn.cursor(
                "SELECT fragment FROM dg_workflow_actions WHERE scope = $1 ORDER BY seq", scope
            ):
                writer.element(row["fragment"])
            writer.text('],"items":[')
            async for row in conn.cursor(
                "SELECT fragment FROM dg_workflow_items WHERE scope = $1 ORDER BY workflow_id",
                scope,
            ):
                writer.element(row["fragment"])
            writer.text("]}")
            return cursor, writer.hexdigest()

    # -- people and timers ---------------------------------------------------------------

    async def act(
        self,
        tenant_id: str,
        workflow_id: str,
        kind: str,
        request: Mapping[str, Any],
        actor: tuple[str, str, str | None],
        at: str,
        check: Any,
        dedupe_key: str | None = None,
    ) -> tuple[WorkflowItem, int] | None:
        """Validate (`check(item)` -> journal input) and apply one journal entry.

        Returns the updated item and the last action seq, or None when an entry with the
        same dedupe key was already recorded (a timer fires once; a retried request applies
        once, even when the workflow has moved on so that the check would now refuse it).
        """
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_LOCK_WAIT, tenant_id)
            items = await _load_items(conn, tenant_id, [workflow_id])
            item = items.get(workflow_id)
            if item is None:
                raise not_found(f"Workflow not found: {workflow_id}")
            if dedupe_key is not None and await conn.fetchval(
                _JOURNAL_HAS_KEY, tenant_id, dedupe_key
            ):
                return None
            cleaned = check(item)
            if cleaned is None:
                return None
            position = int(await conn.fetchval(_CURSOR, tenant_id) or 0)
            journal_id = await conn.fetchval(
                _INSERT_JOURNAL,
                tenant_id,
                position,
                kind,
                workflow_id,
                actor[0],
                actor[1],
                actor[2],
                _dumps(cleaned),
                at,
                dedupe_key,
            )
            if journal_id is None:
                return None
            entry = JournalEntry(
                journal_id, position, kind, workflow_id, actor[0], actor[1], actor[2], cleaned, at
            )
            step = apply_entry(item, entry)
            assert step.item is not None
            result = FoldResult({workflow_id: step.item}, step.actions, step.notifications)
            seq = await _write(conn, tenant_id, result)
            return step.item, seq

    async def due(self, now: datetime, horizon_minutes: int) -> list[DueTimer]:
        """Open items of every tenant whose SLA timer owes something now."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT i.scope, i.item_json,
                          EXISTS (SELECT 1 FROM dg_workflow_notifications n
                                  WHERE n.scope = i.scope
                                    AND n.dedupe_key = 'deadline_risk:' || i.workflow_id || ':'
                                        || (i.item_json::json ->> 'sla_due_at'))
                              AS warned
                   FROM dg_workflow_items i
                   WHERE i.status = ANY($1::text[])
                     AND i.sla_due <= $2::timestamptz + make_interval(mins => $3)
                     AND i.scope NOT LIKE 'verify:%'""",
                list(OPEN),
                now,
                horizon_minutes,
            )
        due = []
        for row in rows:
            item = item_from_dict(json.loads(row["item_json"]))
            kind = timer_kind(item, now, row["warned"])
            if kind in (SLA_ESCALATE, DEADLINE_RISK):
                due.append(DueTimer(row["scope"], item.workflow_id, kind, item.sla_due_at or ""))
        return due

    # -- reads ---------------------------------------------------------------------------

    async def get(self, scope: str, workflow_id: str) -> WorkflowItem | None:
        async with self._pool.acquire() as conn:
            return (await _load_items(conn, scope, [workflow_id])).get(workflow_id)

    async def items(self, scope: str, filters: InboxFilter, now: datetime) -> list[WorkflowItem]:
        """Every item matching `filters` (the caller orders and pages: "overdue" moves
        with the clock, so the inbox order cannot live in an index)."""
        statuses = filters.statuses or (OPEN if filters.only_open else None)
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT item_json FROM dg_workflow_items
                   WHERE scope = $1
                     AND ($2::text[] IS NULL OR status = ANY($2::text[]))
                     AND ($3::text IS NULL OR assigned_account_id = $3)
                     AND ($4::text IS NULL OR assigned_role = $4)
                     AND ($5::text IS NULL OR priority = $5)
                     AND ($6::text IS NULL OR trace_id = $6)
                     AND ($7::text IS NULL OR workflow_kind = $7)
                     AND (NOT $8 OR (status = ANY($9::text[]) AND sla_due < $10))""",
                scope,
                list(statuses) if statuses else None,
                filters.assigned_account_id,
                filters.assigned_role,
                filters.priority,
                filters.trace_id,
                filters.kind,
                filters.only_overdue,
                list(OPEN),
                now,
            )
        return [item_from_dict(json.loads(r["item_json"])) for r in rows]

    async def actions(self, scope: str, workflow_id: str) -> list[tuple[int, ActionRow]]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT seq, action_json FROM dg_workflow_actions
                   WHERE scope = $1 AND workflow_id = $2 ORDER BY seq""",
                scope,
                workflow_id,
            )
        return [(r["seq"], action_from_dict(json.loads(r["action_json"]))) for r in rows]

    async def changes(
        self, scope: str, after_seq: int, limit: int
    ) -> list[tuple[int, ActionRow, str]]:
        """Actions after `after_seq` in order, each with its workflow's current status."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT a.seq, a.action_json, i.status
                   FROM dg_workflow_actions a
                   JOIN dg_workflow_items i ON i.scope = a.scope AND i.workflow_id = a.workflow_id
                   WHERE a.scope = $1 AND a.seq > $2 ORDER BY a.seq LIMIT $3""",
                scope,
                after_seq,
                limit,
            )
        return [
            (r["seq"], action_from_dict(json.loads(r["action_json"])), r["status"]) for r in rows
        ]

    async def last_change(self, scope: str) -> int:
        async with self._pool.acquire() as conn:
            return int(await conn.fetchval(_NEXT_SEQ, scope))

    async def notifications(
        self, scope: str, workflow_id: str | None = None, limit: int = 100
    ) -> list[tuple[int, NotificationRow]]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT seq, notification_json FROM dg_workflow_notifications
                   WHERE scope = $1 AND ($2::text IS NULL OR workflow_id = $2)
                   ORDER BY seq DESC, dedupe_key LIMIT $3""",
                scope,
                workflow_id,
                limit,
            )
        return [
            (r["seq"], notification_from_dict(json.loads(r["notification_json"]))) for r in rows
        ]

    async def journal(self, tenant_id: str, workflow_ids: Sequence[str]) -> list[JournalEntry]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT journal_id, position, kind, workflow_id, actor_id, actor_type,
                          actor_account_id, input_json, at
                   FROM dg_workflow_journal
                   WHERE tenant_id = $1 AND workflow_id = ANY($2::text[])
                   ORDER BY position, journal_id""",
                tenant_id,
                list(workflow_ids),
            )
        return [_entry(r) for r in rows]
