"""REBUILD throughput beside a raw read of the same rows; ingest-to-queryable latency."""

from __future__ import annotations

import asyncio
import json
import math
import os
import statistics
import time
import uuid
from typing import Any, Final

import asyncpg
import httpx

from bench.environment import busy_core_seconds, env_for, free_port, percentile, process
from bench.ingest import APPEND, encoded_bodies, event_stream, trace_events
from bench.load_client import LoadConnection, post_request
from server.core.envelope import ActorRef, EventEnvelope, SourceRef
from server.core.native_projection import NativeProjector
from server.core.validation import validate_envelope
from server.settings import Settings
from server.startup import create_key
from server.store.bulk_rebuild import CHUNK, SMALL_TABLE, copy_window, index_on, log_end
from server.store.database import create_pool
from server.store.event_log import EVENT_COLUMNS, IN_LOG_ORDER, PostgresEventLog
from server.store.partitions import partition_name, sql_literal


def _envelope(e: dict[str, Any]) -> EventEnvelope:
    return EventEnvelope(
        e["eventId"], e["traceId"], e["traceSeq"], e["eventType"], e["occurredAt"],
        SourceRef("bench-agent", "bench", None), ActorRef("agent", "revenue-agent-7"),
        e["idempotencyKey"], e["payload"], None, None, 1, ("bench",),
    )  # fmt: skip


async def seed(settings: Settings, tenant: str, count: int, traces: int = 0) -> None:
    """`count` events through the append path (validated, positioned), not over HTTP:
    ten-event traces, or `traces` traces of count/traces events each; in batches of 1,000."""
    pool = await create_pool(settings.require_database_url, size=2, application_name="bench")
    try:
        log = PostgresEventLog(pool)
        if traces:
            stream = iter(
                [e for t in range(traces) for e in trace_events(f"{tenant}-{t}", count // traces)]
            )
        else:
            stream = event_stream(tenant)
        for done in range(0, count, 1000):
            size = min(1000, count - done)
            batch = [validate_envelope(_envelope(next(stream))) for _ in range(size)]
            await log.append(tenant, batch, "2026-11-21T00:00:00.000000Z")
    finally:
        await pool.close()


async def raw_read(dsn: str, tenants: list[str]) -> float:
    """Rows/s of a plain ordered read of the tenants' logs with asyncpg (no decoding)."""
    conn = await asyncpg.connect(dsn)
    try:
        started, rows = time.perf_counter(), 0
        for tenant in tenants:
            async with conn.transaction():
                query = (
                    f"SELECT {EVENT_COLUMNS} FROM dg_event_log WHERE tenant_id = $1 "
                    "ORDER BY log_seq"
                )
                async for _ in conn.cursor(query, tenant, prefetch=5000):
                    rows += 1
        return rows / (time.perf_counter() - started)
    finally:
        await conn.close()


_FLOOR_COPIES: tuple[tuple[str, str], ...] = (
    ("dg_cg_nodes", "node_id, node_type, trace_id, log_seq, created_at, metadata_json"),
    ("dg_cg_edges", "edge_id, edge_type, from_node_id, to_node_id, trace_id, log_seq, "
                    "created_at, metadata_json"),
    ("dg_trace_summary", "trace_id, workflow, title, primary_entity_type, primary_entity_id, "
                         "outcome, started_at, finished_at, event_count, last_log_seq"),
    ("dg_policy_eval_index", "index_id, trace_id, policy_id, policy_version, log_seq, "
                             "created_at"),
    ("dg_precedent_index", "source_event_id, log_seq, trace_id, policy_id, policy_version, "
                           "exception_id, primary_entity_type, primary_entity_system, "
                           "primary_entity_id"),
)  # fmt: skip


async def write_floor(dsn: str, tenants: list[str], events: int) -> float:
    """Events/s if writing a REBUILD's rows were all it did: PostgreSQL alone re-inserts the
    rebuilt rows into other scopes (INSERT ... SELECT into tables with their indexes, as the
    incremental projector writes, ON CONFLICT DO NOTHING), with no Python, no network and no
    projection work. Rolled back."""
    conn = await asyncpg.connect(dsn)
    scopes = [f"floor-{tenant}" for tenant in tenants]
    try:
        for scope in scopes:  # partitions are made once per scope, outside the clock
            await conn.execute("SELECT dg_ensure_projection_partitions($1)", scope)
        started = time.perf_counter()
        async with conn.transaction():
            for tenant in tenants:
                for table, columns in _FLOOR_COPIES:
                    await _into_floor(conn, table, columns, tenant)
            seconds = time.perf_counter() - started
            raise _Rollback
    except _Rollback:
        # Outside the clock, what the rolled-back rows left goes: their index entries
        # would be visited by the next run's uniqueness checks (each run was ~10% slower
        # than the one before it until this VACUUM), and autovacuum would otherwise clean
        # them up during whatever the bench measures next.
        await _vacuum(conn, scopes)
        return events / seconds
    finally:
        await conn.close()


async def _into_floor(conn: asyncpg.Connection, table: str, columns: str, tenant: str) -> None:
    """The tenant's rows of `table` again, into its floor scope's indexed partition, as the
    incremental projector writes them."""
    await conn.execute(
        f"INSERT INTO {table} (scope, {columns}) SELECT 'floor-' || scope, {columns} "
        f"FROM {table} WHERE scope = $1 ON CONFLICT DO NOTHING",
        tenant,
    )


class _Rollback(Exception):
    pass


async def _vacuum(conn: asyncpg.Connection, scopes: list[str], options: str = "") -> None:
    """VACUUM (with `options`) the partitions of these scopes in the tables a REBUILD
    writes."""
    partitions = [partition_name(t, scope) for scope in scopes for t, _ in _FLOOR_COPIES]
    await conn.execute(f"VACUUM {options}{', '.join(partitions)}")


async def settle(dsn: str, tenants: list[str] | None = None) -> None:
    """Outside the clock, what autovacuum would do to these tenants' projection partitions
    (None: to the whole database) a minute later, done now: VACUUM and ANALYZE. A REBUILD
    swaps in partitions that autovacuum then visits (~25 ms of CPU a 10,000-event tenant
    here, nearly all of it ANALYZE, which costs the same however the rows were written),
    and it ran during whichever measurement came next, on the cores that measurement
    used; the write floor's runs are rolled back and vacuumed by write_floor the same
    way. After seeding, the log and every projection have it all to do at once."""
    conn = await asyncpg.connect(dsn)
    try:
        if tenants is None:
            await conn.execute("VACUUM (ANALYZE)")
            return
        await _vacuum(conn, tenants, "(ANALYZE) ")
    finally:
        await conn.close()


async def _ship_log(conn: asyncpg.Connection, tenant: str) -> None:
    """The tenant's log to this client, window by window as a REBUILD reads it, dropped."""

    async def drop(_: bytes) -> None:
        pass

    for query in await _log_windows(conn, tenant):
        await conn.copy_from_query(query, output=drop, format="binary")


async def _log_windows(conn: asyncpg.Connection, tenant: str) -> list[str]:
    """The COPY queries a REBUILD reads the tenant's log with, CHUNK events each."""
    end = await log_end(conn, tenant)
    return [copy_window(tenant, low, min(low + CHUNK, end)) for low in range(0, end, CHUNK)]


_PARENT_INDEXES: Final = (
    "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = $1::regclass"
)


async def bulk_floor(
    dsn: str, tenants: list[str], events: int, connections: int, *, ship_log: bool = False
) -> tuple[float, float]:
    """Events/s if PostgreSQL alone wrote a REBUILD's rows the way a REBUILD writes them
    (ADR 0014), on `connections` connections at once (one per core, as the worker runs
    REBUILDs): a table of more than SMALL_TABLE rows by binary COPY FREEZE from this client
    into a fresh table without indexes, the parent's indexes built on it after; a smaller
    one into its indexed partition. The rows are fetched beforehand, outside the clock. No
    log to read, nothing to project, no swap, no job: what the bulk design costs
    PostgreSQL itself. With `ship_log`, each tenant's log also comes to this client first,
    as the REBUILD reads it (binary COPY in log order, CHUNK events at a time), and is
    dropped: the limit of any projector outside PostgreSQL, which must read every event
    (spec 6.2 hashes each payload). Each connection's tenants are one transaction, rolled
    back outside the clock, as the write floor is. Events/s, and the core-seconds the
    machine was busy meanwhile."""
    conns = [await asyncpg.connect(dsn) for _ in range(connections)]
    first = conns[0]
    try:
        indexes = {
            table: [r[0] for r in await first.fetch(_PARENT_INDEXES, table)]
            for table, _ in _FLOOR_COPIES
        }
        loads: dict[tuple[str, str], bytes] = {}  # the rows of the tables a REBUILD shadows
        for tenant in tenants:
            await first.execute("SELECT dg_ensure_projection_partitions($1)", f"floor-{tenant}")
            for table, columns in _FLOOR_COPIES:
                count = await first.fetchval(
                    f"SELECT count(*) FROM {table} WHERE scope = $1", tenant
                )
                if count > SMALL_TABLE:
                    loads[tenant, table] = await _copy_out(
                        first, f"SELECT scope, {columns} FROM {table} WHERE scope = "
                        f"{sql_literal(tenant)}",
                    )  # fmt: skip
        waiting = list(enumerate(tenants))

        async def write(conn: asyncpg.Connection) -> None:
            while waiting:
                n, tenant = waiting.pop(0)
                if ship_log:
                    await _ship_log(conn, tenant)
                for table, columns in _FLOOR_COPIES:
                    load = loads.get((tenant, table))
                    if load is None:
                        await _into_floor(conn, table, columns, tenant)
                        continue
                    fresh = f"bulk_floor_{n}_{table}"
                    await conn.execute(
                        f"CREATE TABLE {fresh} (LIKE {table}) WITH (autovacuum_enabled = false)"
                    )
                    await conn.copy_to_table(
                        fresh, source=memoryview(load), format="binary", freeze=True,
                        columns=["scope", *columns.split(", ")],
                    )  # fmt: skip
                    for i, definition in enumerate(indexes[table]):
                        await conn.execute(index_on(definition, f"{fresh}_i{i}", fresh))

        transactions = [conn.transaction() for conn in conns]
        for conn, transaction in zip(conns, transactions, strict=True):
            await transaction.start()
            await conn.execute(IN_LOG_ORDER)  # as the REBUILD's reader reads
        started, busy = time.perf_counter(), busy_core_seconds()
        await asyncio.gather(*(write(conn) for conn in conns))
        seconds, busy = time.perf_counter() - started, busy_core_seconds() - busy
        for transaction in transactions:
            await transaction.rollback()
        await _vacuum(first, [f"floor-{tenant}" for tenant in tenants])  # as write_floor does
        return events / seconds, busy
    finally:
        for conn in conns:
            await conn.close()


async def projection_cpu(dsn: str, tenants: list[str]) -> float:
    """CPU seconds the native pass alone takes to project the tenants' logs, in this
    process: the windows (CHUNK events, as a REBUILD reads them) fetched beforehand."""
    conn = await asyncpg.connect(dsn)
    try:
        logs = []
        for tenant in tenants:
            windows = [await _copy_out(conn, q) for q in await _log_windows(conn, tenant)]
            logs.append((tenant, windows))
    finally:
        await conn.close()
    started = time.process_time()
    for tenant, windows in logs:
        projector = NativeProjector(tenant)
        for window in windows:
            projector.feed_copy(window)
        projector.close()
    return time.process_time() - started


async def job_cpu(http: httpx.AsyncClient, token: str, tenants: list[str]) -> float:
    """Core-seconds per run of REBUILDs of tenants with a handful of events, requested and
    awaited as the measured rounds are: what a run costs apart from its events (the
    request, the job, the run's bookkeeping, its notices), on every process."""
    busy = busy_core_seconds()
    await _replays(http, token, tenants, "REBUILD")
    return (busy_core_seconds() - busy) / len(tenants)


async def _copy_out(conn: asyncpg.Connection, query: str) -> bytes:
    parts: list[bytes] = []

    async def keep(part: bytes) -> None:
        parts.append(part)

    await conn.copy_from_query(query, output=keep, format="binary")
    return b"".join(parts)


async def _gql(
    http: httpx.AsyncClient, token: str, tenant: str, query: str, variables: Any = None
) -> Any:
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {token}", "X-Tenant-ID": tenant},
    )  # fmt: skip
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


HEALTH = """query($n: Long!) { projectionHealth(atLeast: $n) { projectedTo
    digests { contextGraph traceSummary precedentIndex fullProjection } } }"""
STATUS = """query($id: String!) { replay(replayId: $id) { status startedAt finishedAt
    processedEvents digestsMatch } }"""


async def _digests(http: httpx.AsyncClient, token: str, tenant: str, n: int) -> Any:
    deadline = time.monotonic() + 600
    while True:  # the worker's sweep catches the seeded tenant up first
        try:
            return (await _gql(http, token, tenant, HEALTH, {"n": n}))["projectionHealth"]
        except AssertionError:
            if time.monotonic() > deadline:
                raise


CASES = """query($t: String!) { scoredPrecedents(traceId: $t, first: 1) { indexedTo } }"""


async def _cases(http: httpx.AsyncClient, token: str, tenant: str, n: int) -> None:
    deadline = time.monotonic() + 600
    while True:
        data = await _gql(http, token, tenant, CASES, {"t": f"{tenant}-0"})
        if data["scoredPrecedents"]["indexedTo"] >= n or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.1)


class _Lean:
    """GraphQL over the lean keep-alive client of bench/load_client.py, for the requests
    made while a measurement runs (status polls, the VERIFY reader): httpx spent ~1.5 ms
    of CPU per request in this process, on the two cores the measured runs use."""

    def __init__(self, conn: LoadConnection, url: str, token: str) -> None:
        self._conn, self._url, self._token = conn, url, token

    @classmethod
    async def open(cls, url: str, token: str) -> _Lean:
        return cls(await LoadConnection.open(url), url, token)

    async def data(self, tenant: str, query: str, variables: Any = None) -> Any:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        headers = {"Authorization": f"Bearer {self._token}", "X-Tenant-ID": tenant,
                   "Content-Type": "application/json"}  # fmt: skip
        response = await self._conn.send(post_request(self._url, "/graphql", body, headers))
        decoded = json.loads(response.body)
        assert "errors" not in decoded, decoded
        return decoded["data"]

    async def close(self) -> None:
        await self._conn.close()


async def _replays(
    http: httpx.AsyncClient, token: str, tenants: list[str], mode: str
) -> list[dict[str, Any]]:
    """Request one run per tenant, one request after another; wait for all; each one's
    final state. The requests go over the lean client too: the first runs start while the
    later requests are made, on the same two cores."""
    mutation = f"""mutation {{ requestReplay(projection: ALL, mode: {mode},
        reason: "benchmark") {{ replay {{ replayId }} }} }}"""
    lean = await _Lean.open(str(http.base_url).rstrip("/"), token)
    states = []
    try:
        ids = [
            (await lean.data(t, mutation))["requestReplay"]["replay"]["replayId"] for t in tenants
        ]
        for tenant, replay_id in zip(tenants, ids, strict=True):
            while True:  # the span comes from the runs' own timestamps, not from this poll
                state = (await lean.data(tenant, STATUS, {"id": replay_id}))["replay"]
                if state["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
                    break
                await asyncio.sleep(0.1)
            assert state["status"] == "COMPLETED", state
            states.append(state)
    finally:
        await lean.close()
    return states


def _span(states: list[dict[str, Any]], events: int) -> dict[str, Any]:
    from datetime import datetime

    starts = [datetime.fromisoformat(s["startedAt"]) for s in states]
    ends = [datetime.fromisoformat(s["finishedAt"]) for s in states]
    seconds = (max(ends) - min(starts)).total_seconds()
    runs = [round((e - s).total_seconds(), 3) for s, e in zip(starts, ends, strict=True)]
    return {"events": events, "seconds": round(seconds, 2), "runs_s": runs,
            "events_per_s": round(events / seconds)}  # fmt: skip


CORES: Final = os.cpu_count() or 1
WORKER_PROCESSES: Final = CORES
ROUNDS: Final = 5  # medians of 5: rounds and floors each vary by a third on these hosts
READ_HZ: Final = 50  # `trace` reads of the live projection per second during a VERIFY


_PER_ROUND: Final = ("floor_", "bulk_", "bound_")  # what a round keeps besides its rate


def _paired(runs: list[dict[str, Any]], events: int) -> dict[str, Any]:
    """Rounds of one kind, each with the raw read measured right after it: the median
    round by rate, and the median of the per-round shares of the raw read."""
    ordered = sorted(runs, key=lambda run: run["events_per_s"])
    middle = ordered[len(ordered) // 2]
    shares = [round(run["events_per_s"] / run["raw_rows_per_s"] * 100, 1) for run in runs]
    return middle | {
        "events": events,
        "rounds": [
            {"events_per_s": run["events_per_s"], "raw_rows_per_s": run["raw_rows_per_s"],
             "share": share} | {k: v for k, v in run.items() if k.startswith(_PER_ROUND)}
            for run, share in zip(runs, shares, strict=True)
        ],
        "share": statistics.median(shares),
    }  # fmt: skip


async def _reader(
    url: str, token: str, tenant: str, stop: asyncio.Event, latencies: list[float]
) -> None:
    """`trace` reads of the live projection at a steady READ_HZ, however fast the answers."""
    query = "query($t: String!) { trace(traceId: $t) { traceId eventCount } }"
    lean = await _Lean.open(url, token)
    due = time.perf_counter()
    try:
        while not stop.is_set():
            began = time.perf_counter()
            await lean.data(tenant, query, {"t": f"{tenant}-0"})
            latencies.append((time.perf_counter() - began) * 1000)
            due += 1 / READ_HZ
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
    finally:
        await lean.close()


async def rebuild_and_verify(
    url: str, token: str, tenants: list[str], events: int, dsn: str, tiny: list[str]
) -> dict[str, Any]:
    """ROUNDS times: REBUILD every tenant (one run each, requested one after another), then VERIFY
    every tenant while a reader keeps reading the live projection. Each round is followed
    by a raw read of the same rows, and each REBUILD round is bracketed by two runs of the
    write floor, so every ratio compares measurements taken seconds apart on this
    machine, whose speed drifts by minutes; the two kinds alternate, so VERIFY and
    REBUILD meet the same drift."""
    per_tenant = events // len(tenants)
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        before = [await _digests(http, token, t, per_tenant) for t in tenants]
        for tenant in tenants:  # the worker is idle once the case projection caught up too
            await _cases(http, token, tenant, per_tenant)
        # One round of each, unmeasured: the workers' pools grow to what ten runs at once
        # use (a new connection is a new PostgreSQL backend, whose catalog caches the first
        # DDL fills) and their processes learn the tables' layouts, as in a worker that has
        # been running; the first measured round paid all of it before.
        await _replays(http, token, tenants, "REBUILD")
        await _replays(http, token, tenants, "VERIFY")
        await settle(dsn)
        rebuilds, verifies = [], []
        for _ in range(ROUNDS):
            # The floor right before and right after the round, and their mean: one floor
            # run differs from the next by up to a third on the hosts we measure on (77k
            # then 127k events/s, seconds apart), so a round compared with one run says as
            # much about that run as about the round.
            before_floor = await write_floor(dsn, tenants, events)
            busy = busy_core_seconds()
            rebuilt = _span(await _replays(http, token, tenants, "REBUILD"), events)
            busy = busy_core_seconds() - busy
            await settle(dsn, tenants)
            raw = await raw_read(dsn, tenants)
            after_floor = await write_floor(dsn, tenants, events)
            floor = (before_floor + after_floor) / 2
            floor_raw = await raw_read(dsn, tenants)
            bulk, _ = await bulk_floor(dsn, tenants, events, CORES)
            shipped, shipped_busy = await bulk_floor(dsn, tenants, events, CORES, ship_log=True)
            bound = _inherent(
                events, len(tenants), shipped_busy, await projection_cpu(dsn, tenants),
                await job_cpu(http, token, tiny),
            )  # fmt: skip
            rebuilds.append(rebuilt | {"raw_rows_per_s": round(raw),
                                       "floor_events_per_s": round(floor),
                                       "floor_pair": [round(before_floor), round(after_floor)],
                                       "floor_raw_rows_per_s": round(floor_raw),
                                       "bulk_floor_events_per_s": round(bulk),
                                       "bulk_log_floor_events_per_s": round(shipped),
                                       "bound_rebuild_cpu_s": round(busy, 3)} | bound)  # fmt: skip
            after = [await _digests(http, token, t, per_tenant) for t in tenants]
            assert [b["digests"] for b in before] == [a["digests"] for a in after], (
                "REBUILD changed a digest"
            )
            stop, latencies = asyncio.Event(), list[float]()
            reading = asyncio.create_task(_reader(url, token, tenants[0], stop, latencies))
            try:
                states = await _replays(http, token, tenants, "VERIFY")
            finally:
                stop.set()
                await reading
            assert all(s["digestsMatch"] for s in states), states
            verified = _span(states, events) | {
                "reads": len(latencies),
                "read_p50_ms": round(percentile(latencies, 50), 1),
                "read_p99_ms": round(percentile(latencies, 99), 1),
            }
            verifies.append(verified | {"raw_rows_per_s": round(await raw_read(dsn, tenants))})
    ratios = [round(v["events_per_s"] / r["events_per_s"], 2)
              for r, v in zip(rebuilds, verifies, strict=True)]  # fmt: skip
    return {"rebuild": _paired(rebuilds, events),
            "verify": _paired(verifies, events) | {"vs_rebuild": ratios,
                                                   "vs_rebuild_median": statistics.median(ratios)},
            "digests_identical": True}  # fmt: skip


def _inherent(
    events: int, runs: int, ceiling: float, projecting: float, per_run: float
) -> dict[str, Any]:
    """What a REBUILD round of this design cannot do without, in core-seconds: the ceiling
    above (PostgreSQL reading the log to a client and bulk-writing the rows), the native
    pass projecting every event, and each run's request and job; and the rate it would
    reach with all of that on every core and nothing else. Nothing where the machine's
    busy time is unknown (no /proc)."""
    total = ceiling + projecting + runs * per_run
    design = ceiling + projecting  # no cost per run at all
    if not math.isfinite(total):
        return {}
    return {"bound_ceiling_cpu_s": round(ceiling, 3),
            "bound_design_events_per_s": round(events / (design / CORES)),
            "bound_projection_cpu_s": round(projecting, 3),
            "bound_job_cpu_ms_per_run": round(per_run * 1000, 1), "bound_cpu_s": round(total, 3),
            "bound_events_per_s": round(events / (total / CORES))}  # fmt: skip


def _bound(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The inherent bound of each round over its write floor, and the REBUILD's CPU over
    the bound's (what the implementation adds to what the design needs); nothing where a
    round has no bound."""
    if not all("bound_events_per_s" in r for r in rounds):
        return {}
    over = [round(r["bound_events_per_s"] / r["floor_events_per_s"], 2) for r in rounds]
    design = [round(r["bound_design_events_per_s"] / r["floor_events_per_s"], 2) for r in rounds]
    spent = [round(r["bound_rebuild_cpu_s"] / r["bound_cpu_s"], 2) for r in rounds]
    medians = {
        key: statistics.median(r[key] for r in rounds)
        for key in ("bound_ceiling_cpu_s", "bound_projection_cpu_s", "bound_job_cpu_ms_per_run",
                    "bound_cpu_s", "bound_rebuild_cpu_s", "bound_events_per_s")
    }  # fmt: skip
    return medians | {
        "bound_multiples": over, "bound_multiple": statistics.median(over),
        "bound_design_multiples": design, "bound_design_multiple": statistics.median(design),
        "bound_cpu_over": spent, "bound_cpu_over_median": statistics.median(spent),
    }  # fmt: skip


def _bulk_floor(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The bulk-design floors of each REBUILD round (without and with the log shipped):
    over the round's write floor, and the REBUILD's share of each."""
    summary: dict[str, Any] = {}
    for kind in ("bulk_floor", "bulk_log_floor"):
        runs = [r[f"{kind}_events_per_s"] for r in rounds]
        over = [round(b / r["floor_events_per_s"], 2) for b, r in zip(runs, rounds, strict=True)]
        shares = [round(r["events_per_s"] / b * 100, 1) for b, r in zip(runs, rounds, strict=True)]
        summary |= {
            f"{kind}_runs": runs, f"{kind}_events_per_s": statistics.median(runs),
            f"{kind}_multiples": over, f"{kind}_multiple": statistics.median(over),
            f"{kind}_shares": shares, f"{kind}_share": statistics.median(shares),
        }  # fmt: skip
    return summary


LONE_EVENTS: Final = 200_000  # one tenant's log for a REBUILD that runs on its own
LONE_ROUNDS: Final = 3
TINY_EVENTS: Final = 10  # a tenant whose REBUILD costs little but the run itself


async def lone_rebuild(url: str, token: str, tenant: str, dsn: str) -> dict[str, Any]:
    """REBUILD of one larger tenant with nothing else running, ROUNDS times, each paired
    with a raw read of its rows: what an operator rebuilding one tenant sees, where the
    run's own stages must overlap to use the cores (the rounds above run ten at once)."""
    rounds = []
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        for _ in range(LONE_ROUNDS):
            before_floor = await write_floor(dsn, [tenant], LONE_EVENTS)
            run = _span(await _replays(http, token, [tenant], "REBUILD"), LONE_EVENTS)
            await settle(dsn, [tenant])
            raw = await raw_read(dsn, [tenant])
            floor = (before_floor + await write_floor(dsn, [tenant], LONE_EVENTS)) / 2
            multiple = round(run["events_per_s"] / floor, 2)
            rounds.append(run | {"raw_rows_per_s": round(raw), "floor_events_per_s": round(floor),
                                 "floor_multiple": multiple})  # fmt: skip
    return _paired(rounds, LONE_EVENTS) | {
        "floor_multiples": [r["floor_multiple"] for r in rounds],
        "floor_multiple": statistics.median(r["floor_multiple"] for r in rounds),
    }


async def caught_up(url: str, token: str, tenant: str, events: int) -> None:
    """Until the worker's sweep has projected the tenant's seeded log (all projections)."""
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        await _digests(http, token, tenant, events)
        await _cases(http, token, tenant, events)


PACE_S = 0.04  # 4 writers x 20 events / 40 ms = 2,000 events/s offered


async def queryable_latency(url: str, token: str, probes: int, writers: int) -> dict[str, Any]:
    """Append one event and time until a read with atLeast sees it, under steady ingest."""
    tenant = f"lat-{uuid.uuid4().hex[:6]}"
    stop = asyncio.Event()
    written = {"events": 0}

    async with httpx.AsyncClient(base_url=url, timeout=60) as http:

        async def writer(i: int) -> None:
            # Paced, not flat out: "steady ingest" at a known rate (20 events every
            # PACE_S per writer), so that hosts of different speed are compared at one load.
            bodies = encoded_bodies(f"w{i}-{tenant}", 20, 2000)
            headers = {"Authorization": f"Bearer {token}", "X-Tenant-ID": tenant,
                       "Content-Type": "application/json"}  # fmt: skip
            due = time.perf_counter()
            for body in bodies:
                if stop.is_set():
                    return
                await http.post("/graphql", content=body, headers=headers)
                written["events"] += 20
                due += PACE_S
                await asyncio.sleep(max(0.0, due - time.perf_counter()))

        load = [asyncio.create_task(writer(i)) for i in range(writers)]
        await asyncio.sleep(1.0)
        stream = event_stream(f"probe-{tenant}")
        latencies: list[float] = []
        started = time.perf_counter()
        for _ in range(probes):
            events = [next(stream) for _ in range(10)]
            began = time.perf_counter()
            data = await _gql(http, token, tenant, APPEND, {"events": events})
            position = data["appendEvents"]["events"][-1]["logSeq"]
            await _gql(
                http,
                token,
                tenant,
                """query($n: Long!) { projectionHealth(atLeast: $n)
                       { projectedTo } }""",
                {"n": position},
            )
            latencies.append((time.perf_counter() - began) * 1000)
        elapsed = time.perf_counter() - started
        stop.set()
        await asyncio.gather(*load)
    return {"probes": probes, "writers": writers,
            "background_events_per_s": round(written["events"] / (elapsed + 1.0)),
            "p50_ms": round(percentile(latencies, 50), 1),
            "p99_ms": round(percentile(latencies, 99), 1)}  # fmt: skip


def bench_projection(settings: Settings, events: int = 100_000) -> dict[str, Any]:
    """REBUILD and VERIFY of `events` events over 20 traces and 10 tenants."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    token = asyncio.run(create_key(settings, "bench", ["*"], ["admin"]))
    run = uuid.uuid4().hex[:6]
    tenants = [f"rebuild-{run}-{n}" for n in range(10)]
    print(f"  seeding {events} events and one tenant of {LONE_EVENTS} ...", flush=True)
    for tenant in tenants:
        asyncio.run(seed(settings, tenant, events // len(tenants), traces=2))
    lone = f"lone-{run}"
    asyncio.run(seed(settings, lone, LONE_EVENTS, traces=LONE_EVENTS // 10_000))
    tiny = [f"tiny-{run}-{n}" for n in range(len(tenants))]  # a run's cost apart from events
    for tenant in tiny:
        asyncio.run(seed(settings, tenant, TINY_EVENTS))
    raw = asyncio.run(raw_read(settings.require_database_url, tenants))
    print(f"  raw read: {raw:.0f} rows/s", flush=True)
    env = env_for(settings, DG_HTTP_PORT=str(port), DG_READ_WAIT_SECONDS="600")
    # One worker process per core, as docs/operations.md advises: REBUILD and VERIFY are
    # bound by the Python work of projecting, which a process does on one core.
    workers = ["worker", "--processes", str(WORKER_PROCESSES)]
    dsn = settings.require_database_url
    with process(["serve"], env, ready_url=f"{url}/healthz"), process(workers, env):
        for tenant, count in [(lone, LONE_EVENTS)] + [(t, TINY_EVENTS) for t in tiny]:
            asyncio.run(caught_up(url, token, tenant, count))  # no catch-up under the clock
        runs = asyncio.run(rebuild_and_verify(url, token, tenants, events, dsn, tiny))
        rebuilt, verified = runs["rebuild"], runs["verify"]
        print(f"  rebuild: {rebuilt['events_per_s']} ev/s, {rebuilt['share']}% of the raw read "
              f"(rounds: {[r['share'] for r in rebuilt['rounds']]})", flush=True)  # fmt: skip
        print(f"  verify: {verified['events_per_s']} ev/s, {verified['share']}% of the raw "
              f"read, trace read p99 {verified['read_p99_ms']} ms", flush=True)  # fmt: skip
        rounds = rebuilt["rounds"]
        floor = statistics.median(r["floor_events_per_s"] for r in rounds)
        multiples = [round(r["events_per_s"] / r["floor_events_per_s"], 2) for r in rounds]
        print(f"  database write floor: {floor:.0f} ev/s; REBUILD over the floor of its "
              f"round: {multiples}", flush=True)  # fmt: skip
        bulk = _bulk_floor(rounds)
        for kind, what in (("bulk_floor", "bulk-design floor"),
                           ("bulk_log_floor", "... with the log shipped")):  # fmt: skip
            print(f"  {what}: {bulk[f'{kind}_events_per_s']} ev/s, "
                  f"{bulk[f'{kind}_multiples']} x the write floor; REBUILD "
                  f"{bulk[f'{kind}_shares']}% of it", flush=True)  # fmt: skip
        bound = _bound(rounds)
        if bound:
            print(
                f"  inherent bound (ceiling {bound['bound_ceiling_cpu_s']} + projection "
                f"{bound['bound_projection_cpu_s']} core-s + {bound['bound_job_cpu_ms_per_run']} "
                f"ms a run): {bound['bound_events_per_s']} ev/s, {bound['bound_multiples']} x "
                f"the write floor; REBUILD spent {bound['bound_cpu_over']} x its CPU",
                flush=True,
            )
        latency = asyncio.run(queryable_latency(url, token, probes=100, writers=4))
        print(
            f"  ingest -> queryable: p50 {latency['p50_ms']} ms p99 {latency['p99_ms']} ms",
            flush=True,
        )
        # Last: its 200,000-event rebuilds and floors write WAL enough for a checkpoint,
        # which the latency probes above should not meet.
        alone = asyncio.run(lone_rebuild(url, token, lone, dsn))
        print(f"  one tenant of {LONE_EVENTS} events alone: {alone['events_per_s']} ev/s, "
              f"{alone['share']}% of its raw read, over its floor {alone['floor_multiples']}",
              flush=True)  # fmt: skip
    raws = [raw] + [r["raw_rows_per_s"] for r in rebuilt["rounds"] + verified["rounds"]]
    return {"raw_read_rows_per_s": round(statistics.median(raws)), "rebuild": rebuilt,
            "verify": verified, "digests_identical": runs["digests_identical"], "alone": alone,
            "queryable": latency, "worker_processes": WORKER_PROCESSES,
            "share": rebuilt["share"], "verify_share": verified["share"],
            "write_floor_events_per_s": round(floor),
            "write_floor_runs": [r["floor_events_per_s"] for r in rounds],
            "write_floor_share": round(statistics.median(
                r["floor_events_per_s"] / r["floor_raw_rows_per_s"] * 100 for r in rounds), 1),
            "floor_multiples": multiples,
            "floor_multiple": statistics.median(multiples)} | bulk | bound  # fmt: skip
