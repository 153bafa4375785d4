"""PostgreSQL implementation of the EventLog port.

Positions (`log_seq`) are gapless per tenant and commit in order, or a reader tailing
`log_seq > last_seen` could skip a row whose lower position commits after a higher one
(the reasoning of pyeventsourcing's Postgres recorder). Every write therefore goes
through the tenant's `dg_tenants` row lock. PostgreSQL makes a transaction visible before
it releases its row locks, so the next writer and every reader see all earlier positions
first; a refused write consumes nothing, so there are no gaps.

Concurrent appends of one tenant in a process are group-committed: they queue behind the
write in flight and are planned one after another into the next one, each request staying
all-or-nothing on its own. Plans are made outside the lock, from one read of the log, and
written by one call of `dg_append` (migration 3): it takes the tenant's lock, checks what
was committed since the plan's position and inserts. If nothing committed in between
touches the group's traces, event ids or idempotency scopes, the plan holds (its positions
shift when another process wrote meanwhile); otherwise the group is planned again, this
time under the lock. The lock is held for the insert and the commit, never for a round
trip to Python.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg
import msgspec

from server.core.append_plan import LogState, PlannedEvent, TraceHead, plan_and_advance
from server.core.canonical_json import stored_text_matches_hash
from server.core.envelope import ActorRef, EventEnvelope, LoggedFacts, SourceRef, StoredEvent
from server.core.errors import (
    DecisionGraphError,
    conflict,
    idempotency_conflict,
    sequence_invalid,
    storage,
)
from server.core.event_types import TRACE_STARTED
from server.core.projected_payload import decode_projected
from server.core.validation import ValidatedEvent
from server.observability import metrics
from server.service.ports import LogStats, TraceOverview
from server.store.database import translate, translated

_log = logging.getLogger(__name__)

EVENT_COLUMNS: Final = (
    "log_seq, event_id, trace_id, trace_seq, event_type, occurred_at, recorded_at, "
    "producer_id, system, subsystem, actor_type, actor_id, correlation_id, "
    "causation_event_id, idempotency_key, schema_version, payload_json, payload_hash, tags_json"
)
_COLUMN_NAMES: Final = [column.strip() for column in EVENT_COLUMNS.split(",")]
_PREFIXED: Final = ", ".join(f"e.{column}" for column in _COLUMN_NAMES)
_NULLS: Final = ", ".join(["NULL"] * len(_COLUMN_NAMES))
_INT_COLUMNS: Final = {"log_seq": "bigint", "trace_seq": "int", "schema_version": "int"}
# The first branch of a UNION names and types the columns, so it spells them out.
_NAMED_NULLS: Final = ", ".join(
    f"NULL::{_INT_COLUMNS.get(column, 'text')} AS {column}" for column in _COLUMN_NAMES
)

MAX_GROUP_EVENTS: Final = 2_000

# Everything a plan needs, in one statement (one snapshot): the tenant's position
# (kind 't'), events sharing an idempotency scope or an event_id with the batch ('e'),
# and each batch trace's head ('h'). Every probe is a LATERAL equality lookup on a unique
# index driven by the batch arrays; LIMIT 1 keeps the planner from flattening a probe into
# a scan of the tenant's rows, whatever the statistics say.
_READ_STATE: Final = f"""
    SELECT 't' AS kind, {_NAMED_NULLS}, last_log_seq AS num, NULL::bool AS flag
    FROM dg_tenants WHERE tenant_id = $1
    UNION ALL
    SELECT 'e', {_PREFIXED}, NULL, NULL
    FROM unnest(($2::text[])[1:1], ($2::text[])[2:2]) AS k(producer_id, idempotency_key)
    CROSS JOIN LATERAL (
        SELECT * FROM dg_event_log
        WHERE tenant_id = $1 AND producer_id = k.producer_id
          AND idempotency_key = k.idempotency_key
        LIMIT 1
    ) AS e
    UNION ALL
    SELECT 'e', {_PREFIXED}, NULL, NULL
    FROM unnest(($2::text[])[3:3]) AS i(event_id)
    CROSS JOIN LATERAL (
        SELECT * FROM dg_event_log WHERE tenant_id = $1 AND event_id = i.event_id LIMIT 1
    ) AS e
    UNION ALL
    SELECT 'h', {_NULLS}, head.trace_seq, finish.found IS NOT NULL
    FROM unnest($3::text[]) WITH ORDINALITY AS t(trace_id, n)
    LEFT JOIN LATERAL (
        SELECT trace_seq FROM dg_event_log
        WHERE tenant_id = $1 AND trace_id = t.trace_id
        ORDER BY trace_seq DESC LIMIT 1
    ) AS head ON true
    LEFT JOIN LATERAL (
        SELECT true AS found FROM dg_event_log
        WHERE tenant_id = $1 AND trace_id = t.trace_id AND event_type = 'TraceFinished'
        LIMIT 1
    ) AS finish ON true
"""

_INSERT_ROWS: Final = """
    INSERT INTO dg_event_log (tenant_id, log_seq, event_id, trace_id, trace_seq, event_type,
        occurred_at, recorded_at, producer_id, system, subsystem, actor_type, actor_id,
        correlation_id, causation_event_id, idempotency_key, schema_version, payload_json,
        payload_hash, tags_json)
    SELECT $1, u.* FROM unnest($2::bigint[], ($5::text[])[1:1], ($5::text[])[2:2], $3::int[],
        ($5::text[])[3:3], ($5::text[])[4:4], ($5::text[])[5:5], ($5::text[])[6:6],
        ($5::text[])[7:7], ($5::text[])[8:8], ($5::text[])[9:9], ($5::text[])[10:10],
        ($5::text[])[11:11], ($5::text[])[12:12], ($5::text[])[13:13], $4::int[],
        ($5::text[])[14:14], ($5::text[])[15:15], ($5::text[])[16:16]) AS u
"""

_APPEND: Final = "SELECT dg_append_matrix($1, $2, $3, $4, $5, $6, $7, $8, $9)"
# Positions of the integer columns in EVENT_COLUMNS; the others travel as text rows.
_INT_POSITIONS: Final = (0, 3, 15)
_CREATE_TENANT: Final = "INSERT INTO dg_tenants (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING"
# A new tenant's projection partitions (migration 7) are made with the tenant, by the
# request that brings its first events: that DDL then never delays the first catch-up of
# a worker that has a queue of new tenants to go through.
_CREATE_PARTITIONS: Final = "SELECT dg_ensure_projection_partitions($1)"
_ADVANCE: Final = """
    UPDATE dg_tenants SET last_log_seq = $2, trace_count = trace_count + $3
    WHERE tenant_id = $1
"""
_TENANT_LITERAL: Final = re.compile(r"[a-z0-9-]{1,63}")


# Stored text is what Python's encoder wrote (no NaN, no lone surrogates), which msgspec
# decodes to the same values as the stdlib, about twice as fast.
_decode: Final = msgspec.json.Decoder().decode


@functools.lru_cache(maxsize=4096)
def _tags(text: str) -> tuple[str, ...]:
    """Producers repeat the same few tag sets; decode each once."""
    return tuple(_decode(text))


def row_to_event(
    row: asyncpg.Record | tuple[Any, ...], decode: Callable[[str], Any] = _decode
) -> StoredEvent:
    """A row selected as EVENT_COLUMNS (in that order: unpacked, not looked up by name)."""
    (
        log_seq, event_id, trace_id, trace_seq, event_type, occurred_at, recorded_at,
        producer_id, system, subsystem, actor_type, actor_id, correlation_id,
        causation_event_id, idempotency_key, schema_version, payload_json, payload_hash,
        tags_json,
    ) = row  # fmt: skip
    try:
        payload = decode(payload_json)
        tags = _tags(tags_json)
    except (msgspec.DecodeError, ValueError, TypeError) as exc:
        raise storage(f"Failed to deserialize event data for event_id={event_id}: {exc}") from None
    return StoredEvent(
        log_seq, event_id, trace_id, trace_seq, event_type, occurred_at, recorded_at,
        SourceRef(producer_id, system, subsystem), ActorRef(actor_type, actor_id),
        idempotency_key, payload, payload_hash, correlation_id, causation_event_id,
        schema_version, tags,
    )  # fmt: skip


# Windows of the log are read by the primary key, in its order: sorting is off for the
# reading transaction (for its rest too: the transactions that set it sort nothing
# else). With no statistics on tenant columns (ADR 0007) PostgreSQL guesses ~100 rows for
# any window and prefers a bitmap scan plus a sort of the whole window, which cost it
# 2-2.4x the index scan's CPU for windows of 1,000-2,000 events (a quarter of a REBUILD's
# PostgreSQL time; docs/benchmarks.md). Sorting stays possible where nothing else gives
# the order; it is only no longer chosen over the index.
IN_LOG_ORDER: Final = "SET LOCAL enable_sort = off"

# The columns a projection reads (core ProjectedEvent), in row_to_facts order.
FACT_COLUMNS: Final = (
    "log_seq, event_id, trace_id, trace_seq, event_type, occurred_at, actor_type, actor_id, "
    "payload_json, payload_hash"
)


def row_to_facts(row: asyncpg.Record | tuple[Any, ...]) -> LoggedFacts:
    """A row selected as FACT_COLUMNS: what a whole-log projection needs of an event.

    When the stored text passes the hash check as it is (stored_text_matches_hash), the
    check is done here and only the payload keys the projections read are decoded;
    otherwise the whole payload is, and the projector checks it the exact way."""
    (
        log_seq, event_id, trace_id, trace_seq, event_type, occurred_at, actor_type, actor_id,
        payload_json, payload_hash,
    ) = row  # fmt: skip
    stored = payload_json.encode()
    payload = decode_projected(stored) if stored_text_matches_hash(stored, payload_hash) else None
    verified = payload is not None
    if not verified:
        try:
            payload = _decode(stored)
        except (msgspec.DecodeError, ValueError, TypeError) as exc:
            raise storage(
                f"Failed to deserialize event data for event_id={event_id}: {exc}"
            ) from None
    return LoggedFacts(
        log_seq, event_id, trace_id, trace_seq, event_type, occurred_at,
        ActorRef(actor_type, actor_id), payload, payload_hash, verified,
    )  # fmt: skip


def _translate_write_error(exc: asyncpg.PostgresError) -> DecisionGraphError:
    """Spec §5.2 DB-level mapping, for writes that slip past the planned checks."""
    text = (getattr(exc, "message", None) or str(exc)).lower()
    constraint = (getattr(exc, "constraint_name", None) or "").lower()
    if "trace_finished" in text or constraint == "dg_event_log_one_finish":
        return conflict("Trace is already finished")
    if isinstance(exc, asyncpg.UniqueViolationError):
        if "idempotency" in constraint:
            return idempotency_conflict("Idempotency key already used")
        if "trace_seq" in constraint:
            return sequence_invalid("trace_seq already exists for trace")
    return translate(exc)


@dataclass
class _Request:
    batch: Sequence[ValidatedEvent]
    recorded_at: str
    future: asyncio.Future[list[PlannedEvent]]


@dataclass
class _GroupPlan:
    """The outcome of planning a group: per-request plans or errors, and the rows to write."""

    accepted: list[tuple[_Request, list[PlannedEvent]]] = field(default_factory=list)
    refused: list[tuple[_Request, DecisionGraphError]] = field(default_factory=list)
    columns: list[list[Any]] = field(default_factory=lambda: [[] for _ in _COLUMN_NAMES])
    new_events: int = 0
    started_traces: int = 0
    from_position: int = 0
    last_log_seq: int = 0

    def add(self, request: _Request, planned: list[PlannedEvent]) -> None:
        self.accepted.append((request, planned))
        for plan, validated in zip(planned, request.batch, strict=True):
            if plan.replay:
                continue
            e = plan.event
            values = (
                e.log_seq,
                e.event_id,
                e.trace_id,
                e.trace_seq,
                e.event_type,
                e.occurred_at,
                e.recorded_at,
                e.source.producer_id,
                e.source.system,
                e.source.subsystem,
                e.actor.actor_type,
                e.actor.actor_id,
                e.correlation_id,
                e.causation_event_id,
                e.idempotency_key,
                e.schema_version,
                validated.payload_json,
                e.payload_hash,
                validated.tags_json,
            )
            for column, value in zip(self.columns, values, strict=True):
                column.append(value)
            self.new_events += 1
            self.started_traces += e.event_type == TRACE_STARTED
            self.last_log_seq = e.log_seq

    def shifted(self, offset: int) -> _GroupPlan:
        """The same plan written `offset` positions later (others wrote in between)."""
        if offset == 0:
            return self
        moved = _GroupPlan(
            refused=self.refused,
            columns=self.columns,
            new_events=self.new_events,
            started_traces=self.started_traces,
            from_position=self.from_position + offset,
            last_log_seq=self.last_log_seq + offset,
        )
        for request, planned in self.accepted:
            moved.accepted.append((request, [_shift(p, offset) for p in planned]))
        return moved

    def probe_keys(self) -> tuple[list[str], list[list[str]]]:
        """Traces, and the idempotency scopes and event ids (_probe_rows) the plan depends on."""
        envelopes = [v.envelope for request, _ in self.accepted for v in request.batch]
        return sorted({e.trace_id for e in envelopes}), _probe_rows(envelopes)

    def row_arguments(self) -> tuple[list[Any], list[Any], list[Any], list[list[Any]]]:
        """log_seq, trace_seq, schema_version, and every text column as one row each.

        Text goes as one two-dimensional array: asyncpg checks each element of a
        one-dimensional array against collections.abc (two Python-level isinstance calls
        per string), but only the first row of a two-dimensional one (migration 6).
        """
        log_seq, trace_seq, schema_version = (self.columns[i] for i in _INT_POSITIONS)
        text = [c for i, c in enumerate(self.columns) if i not in _INT_POSITIONS]
        return log_seq, trace_seq, schema_version, text

    def resolve(self) -> None:
        for request, planned in self.accepted:
            if not request.future.done():
                request.future.set_result(planned)
        for request, error in self.refused:
            if not request.future.done():
                request.future.set_exception(error)


def _probe_rows(envelopes: Sequence[EventEnvelope]) -> list[list[str]]:
    """Producers, idempotency keys and event ids: the rows of one text[][] parameter (see
    _GroupPlan.row_arguments for why two-dimensional), as _READ_STATE and dg_append_matrix
    read them."""
    return [
        [e.source.producer_id for e in envelopes],
        [e.idempotency_key for e in envelopes],
        [e.event_id for e in envelopes],
    ]


def _shift(plan: PlannedEvent, offset: int) -> PlannedEvent:
    if plan.replay:
        return plan
    return PlannedEvent(plan.event.at(plan.event.log_seq + offset), False)


def _plan_group(requests: Sequence[_Request], state: LogState) -> _GroupPlan:
    group = _GroupPlan(from_position=state.last_log_seq, last_log_seq=state.last_log_seq)
    for request in requests:
        try:
            planned, state = plan_and_advance(request.batch, state, request.recorded_at)
        except DecisionGraphError as error:
            group.refused.append((request, error))
        else:
            group.add(request, planned)
    return group


@translated
class PostgresEventLog:
    def __init__(self, pool: asyncpg.Pool, *, plan_under_lock: bool = False) -> None:
        """`plan_under_lock` skips planning outside the lock (the contract tests run the
        re-planning path this way); it is never faster."""
        self._pool = pool
        self._plan_under_lock = plan_under_lock
        self._queues: dict[str, list[_Request]] = {}
        self._drainers: dict[str, asyncio.Task[None]] = {}

    async def append(
        self, tenant_id: str, batch: Sequence[ValidatedEvent], recorded_at: str
    ) -> list[PlannedEvent]:
        future: asyncio.Future[list[PlannedEvent]] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(tenant_id, []).append(_Request(batch, recorded_at, future))
        if tenant_id not in self._drainers:
            self._drainers[tenant_id] = asyncio.create_task(
                self._drain(tenant_id), name=f"dg-append-{tenant_id}"
            )
        # shield: a caller that goes away must not cancel its neighbours' group write.
        planned = await asyncio.shield(future)
        metrics.appended(len(batch), sum(1 for p in planned if not p.replay))
        return planned

    async def _drain(self, tenant_id: str) -> None:
        try:
            while pending := self._queues.get(tenant_id):
                group: list[_Request] = []
                size = 0
                while pending and (not group or size + len(pending[0].batch) <= MAX_GROUP_EVENTS):
                    request = pending.pop(0)
                    size += len(request.batch)
                    group.append(request)
                await self._write_group(tenant_id, group)
        finally:
            # No await since the loop condition failed: nothing can have been queued.
            self._drainers.pop(tenant_id, None)
            if not self._queues.get(tenant_id):
                self._queues.pop(tenant_id, None)

    async def _write_group(self, tenant_id: str, group: list[_Request]) -> None:
        try:
            await self._write(tenant_id, group)
        except DecisionGraphError as error:
            if len(group) > 1:  # isolate whoever caused it; the others still succeed
                for request in group:
                    await self._write_group(tenant_id, [request])
                return
            _fail(group, error)
        except asyncpg.PostgresError as exc:
            if len(group) > 1:
                for request in group:
                    await self._write_group(tenant_id, [request])
                return
            _fail(group, _translate_write_error(exc))
        except Exception as exc:  # connection loss and the like
            _fail(group, translate(exc))

    async def _write(self, tenant_id: str, group: list[_Request]) -> None:
        batches = [v for request in group for v in request.batch]
        async with self._pool.acquire() as conn:
            state, known = await self._read_state(conn, tenant_id, batches)
            if not known:
                await conn.execute(_CREATE_TENANT, tenant_id)
                await conn.execute(_CREATE_PARTITIONS, tenant_id)
                state, known = await self._read_state(conn, tenant_id, batches)
            plan = _plan_group(group, state)
            if plan.new_events:
                plan = await self._write_planned(conn, tenant_id, group, batches, plan)
        plan.resolve()

    async def _write_planned(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        group: list[_Request],
        batches: list[ValidatedEvent],
        plan: _GroupPlan,
    ) -> _GroupPlan:
        """Write a plan made outside the lock: as planned, shifted, or planned again."""
        if not self._plan_under_lock:
            traces, probes = plan.probe_keys()
            position = await conn.fetchval(
                _APPEND,
                tenant_id,
                plan.from_position,
                plan.started_traces,
                *plan.row_arguments(),
                traces,
                probes,
            )
            if position is not None:
                return plan.shifted(position - plan.from_position)
        return await self._replan_locked(conn, tenant_id, group, batches)

    async def _replan_locked(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        group: list[_Request],
        batches: list[ValidatedEvent],
    ) -> _GroupPlan:
        """What was committed meanwhile touches this group: plan it again, under the lock."""
        if _TENANT_LITERAL.fullmatch(tenant_id) is None:  # it is inlined just below
            raise storage(f"Database error: invalid tenant id {tenant_id!r}")
        # One round trip opens the transaction and takes the tenant's row lock.
        await conn.execute(
            f"BEGIN; SELECT 1 FROM dg_tenants WHERE tenant_id = '{tenant_id}' FOR UPDATE"
        )
        try:
            state, _ = await self._read_state(conn, tenant_id, batches)
            plan = _plan_group(group, state)
            if plan.new_events:
                await conn.execute(_INSERT_ROWS, tenant_id, *plan.row_arguments())
                await conn.execute(_ADVANCE, tenant_id, plan.last_log_seq, plan.started_traces)
            await conn.execute("COMMIT")
        except BaseException:
            if not conn.is_closed():
                await conn.execute("ROLLBACK")
            raise
        return plan

    async def _read_state(
        self, conn: asyncpg.Connection, tenant_id: str, batch: Sequence[ValidatedEvent]
    ) -> tuple[LogState, bool]:
        envelopes = [v.envelope for v in batch]
        traces = sorted({e.trace_id for e in envelopes})
        rows = await conn.fetch(_READ_STATE, tenant_id, _probe_rows(envelopes), traces)
        position = next((row["num"] for row in rows if row["kind"] == "t"), None)
        # An 'e' row is its kind, the event's columns, then the two columns of the others.
        events = [row_to_event(tuple(row)[1:-2]) for row in rows if row["kind"] == "e"]
        scopes = {(e.source.producer_id, e.idempotency_key) for e in envelopes}
        heads = (row for row in rows if row["kind"] == "h")
        state = LogState(
            last_log_seq=position or 0,
            by_scope={e.idempotency_scope: e for e in events if e.idempotency_scope in scopes},
            heads={
                trace: TraceHead(row["num"] + 1, row["flag"])
                for trace, row in zip(traces, heads, strict=True)
                if row["num"] is not None
            },
            existing_event_ids=frozenset(e.event_id for e in events),
        )
        return state, position is not None

    async def stats(self, tenant_id: str) -> LogStats:
        row = await self._fetchrow(
            "SELECT last_log_seq, trace_count FROM dg_tenants WHERE tenant_id = $1", tenant_id
        )
        if row is None:
            return LogStats(0, 0)
        return LogStats(last_log_seq=row["last_log_seq"], trace_count=row["trace_count"])

    async def list_events(
        self,
        tenant_id: str,
        *,
        after_log_seq: int = 0,
        until_log_seq: int | None = None,
        event_type: str | None = None,
        trace_id: str | None = None,
        limit: int | None = None,
    ) -> list[StoredEvent]:
        sql = f"""
            SELECT {EVENT_COLUMNS} FROM dg_event_log
            WHERE tenant_id = $1 AND log_seq > $2
              AND ($3::bigint IS NULL OR log_seq <= $3)
              AND ($4::text IS NULL OR event_type = $4)
              AND ($5::text IS NULL OR trace_id = $5)
            ORDER BY log_seq LIMIT $6
        """
        rows = await self._fetch(
            sql, tenant_id, after_log_seq, until_log_seq, event_type, trace_id, limit
        )
        return [row_to_event(row) for row in rows]

    async def trace_events(
        self,
        tenant_id: str,
        trace_id: str,
        *,
        after_trace_seq: int = -1,
        limit: int | None = None,
    ) -> list[StoredEvent]:
        sql = f"""
            SELECT {EVENT_COLUMNS} FROM dg_event_log
            WHERE tenant_id = $1 AND trace_id = $2 AND trace_seq > $3
            ORDER BY trace_seq LIMIT $4
        """
        rows = await self._fetch(sql, tenant_id, trace_id, after_trace_seq, limit)
        return [row_to_event(row) for row in rows]

    async def trace_overview(self, tenant_id: str, trace_id: str) -> TraceOverview | None:
        sql = f"""
            SELECT {EVENT_COLUMNS} FROM dg_event_log
            WHERE tenant_id = $1 AND trace_id = $2
              AND (trace_seq = 0 OR event_type = 'TraceFinished'
                   OR trace_seq = (SELECT max(trace_seq) FROM dg_event_log
                                   WHERE tenant_id = $1 AND trace_id = $2))
            ORDER BY trace_seq
        """
        rows = await self._fetch(sql, tenant_id, trace_id)
        if not rows or rows[0]["trace_seq"] != 0:
            return None
        events = [row_to_event(row) for row in rows]
        finished = next((e for e in events if e.event_type == "TraceFinished"), None)
        return TraceOverview(events[0], finished, events[-1].trace_seq + 1, events[-1].log_seq)

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        try:
            async with self._pool.acquire() as conn:
                return list(await conn.fetch(sql, *args))
        except Exception as exc:
            raise translate(exc) from exc

    async def _fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        try:
            async with self._pool.acquire() as conn:
                row: asyncpg.Record | None = await conn.fetchrow(sql, *args)
                return row
        except Exception as exc:
            raise translate(exc) from exc


def _fail(group: list[_Request], error: DecisionGraphError) -> None:
    for request in group:
        if not request.future.done():
            request.future.set_exception(error)
