"""Batched ingest over real HTTP (uvicorn on loopback) beside raw asyncpg COPY.

Requests go out through bench.load_client, a lean keep-alive client, so the load generator
takes as little as possible of the two cores it shares with the server and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg

from bench.environment import env_for, free_port, percentile, process
from bench.load_client import LoadConnection, post_request
from server.core.canonical_json import payload_hash, stored_payload_json
from server.settings import Settings
from server.startup import create_key

APPEND = (
    "mutation($events: [EventInput!]!) { appendEvents(events: $events) "
    "{ events { logSeq } errors { code message } } }"
)
TRACE_LENGTH = 10


def trace_events(trace_id: str, length: int = TRACE_LENGTH) -> list[dict[str, Any]]:
    """A trace of `length` events (ten by default): started, observed inputs, finished."""
    base = {
        "traceId": trace_id,
        "occurredAt": "2026-11-21T10:00:00Z",
        "source": {"producerId": "bench-agent", "system": "bench"},
        "actor": {"actorType": "agent", "actorId": "revenue-agent-7"},
        "tags": ["bench"],
    }
    events: list[dict[str, Any]] = [
        base
        | {
            "eventId": f"{trace_id}-0",
            "traceSeq": 0,
            "eventType": "TraceStarted",
            "idempotencyKey": f"{trace_id}:0",
            "payload": {
                "workflow": "renewal_discount",
                "title": f"Renewal {trace_id}",
                "primary_entity": {
                    "entity_type": "account",
                    "entity_id": "acct-1",
                    "system": "crm",
                },
            },
        }
    ]
    for seq in range(1, length - 1):
        events.append(
            base
            | {
                "eventId": f"{trace_id}-{seq}",
                "traceSeq": seq,
                "eventType": "InputObserved",
                "idempotencyKey": f"{trace_id}:{seq}",
                "payload": {
                    "input_id": f"in-{seq}",
                    "source": {
                        "system": "crm",
                        "object_type": "opportunity",
                        "object_id": f"opp-{seq}",
                    },
                    "facts": [
                        {
                            "key": "discount_pct",
                            "value": {"type": "int", "value": "21"},
                            "as_of": "2026-11-21T10:00:00Z",
                        },
                        {"key": "arr_usd", "value": {"type": "int", "value": "620000"}},
                    ],
                },
            }
        )
    events.append(
        base
        | {
            "eventId": f"{trace_id}-{length - 1}",
            "traceSeq": length - 1,
            "eventType": "TraceFinished",
            "idempotencyKey": f"{trace_id}:{length - 1}",
            "payload": {"outcome": "success"},
        }
    )
    return events


def event_stream(prefix: str) -> Iterator[dict[str, Any]]:
    n = 0
    while True:
        yield from trace_events(f"{prefix}-{n}")
        n += 1


@dataclass
class Run:
    batch: int
    clients: int
    tenant_mode: str
    events: int
    seconds: float
    errors: int
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def summary(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "clients": self.clients,
            "tenants": self.tenant_mode,
            "events": self.events,
            "seconds": round(self.seconds, 2),
            "events_per_s": round(self.rate),
            "p50_ms": round(percentile(self.latencies_ms, 50), 2),
            "p99_ms": round(percentile(self.latencies_ms, 99), 2),
            "errors": self.errors,
        }


def encoded_bodies(prefix: str, batch: int, count: int) -> list[bytes]:
    """Request bodies built before the clock starts: client JSON work is not the server's."""
    stream = event_stream(prefix)
    return [
        json.dumps(
            {"query": APPEND, "variables": {"events": [next(stream) for _ in range(batch)]}}
        ).encode()
        for _ in range(count)
    ]


async def run_scenario(
    url: str,
    token: str,
    batch: int,
    clients: int,
    seconds: float,
    shared_tenant: bool,
    budget_events: int = 150_000,
) -> Run:
    run_id = uuid.uuid4().hex[:6]
    tenants = [
        f"bench-{run_id}" if shared_tenant else f"bench-{run_id}-{i}" for i in range(clients)
    ]
    per_client = max(2, budget_events // batch // clients)
    requests = [
        deque(
            post_request(
                url,
                "/graphql",
                body,
                {
                    "Authorization": f"Bearer {token}",
                    "X-Tenant-ID": tenants[i],
                    "Content-Type": "application/json",
                },
            )
            for body in encoded_bodies(f"c{i}-{run_id}", batch, per_client)
        )
        for i in range(clients)
    ]
    latencies: list[float] = []
    totals = {"events": 0, "errors": 0}
    connections = [await LoadConnection.open(url) for _ in range(clients)]

    async def client(i: int, deadline: float, record: bool) -> None:
        while requests[i] and time.perf_counter() < deadline:
            request = requests[i].popleft()  # in order: a trace may span batches
            started = time.perf_counter()
            response = await connections[i].send(request)
            elapsed = (time.perf_counter() - started) * 1000
            if not record:
                continue
            latencies.append(elapsed)
            if response.status != 200 or _has_errors(response.body):
                totals["errors"] += 1
            else:
                totals["events"] += batch

    try:
        # warm-up: one request per client, not measured
        await asyncio.gather(
            *(client(i, time.perf_counter() + 0.001, False) for i in range(clients))
        )
        start = time.perf_counter()
        await asyncio.gather(*(client(i, start + seconds, True) for i in range(clients)))
        elapsed = time.perf_counter() - start
    finally:
        for connection in connections:
            await connection.close()
    return Run(
        batch,
        clients,
        "shared" if shared_tenant else "one per client",
        totals["events"],
        elapsed,
        totals["errors"],
        latencies,
    )


def _has_errors(body: bytes) -> bool:
    result = json.loads(body)
    return bool(result.get("errors") or result["data"]["appendEvents"]["errors"])


def best_of(runs: list[Run]) -> dict[str, Any]:
    """The median run by throughput, with the spread of all runs."""
    ordered = sorted(runs, key=lambda r: r.rate)
    summary = ordered[len(ordered) // 2].summary()
    summary["runs_events_per_s"] = [round(r.rate) for r in runs]
    return summary


BARE_LOG = "dg_bench_bare_log"


async def create_bare_log(conn: asyncpg.Connection) -> None:
    """A scratch copy of dg_event_log with only its unique indexes and no triggers: the
    least any log that enforces the spec's uniqueness must do per row."""
    await conn.execute(f"DROP TABLE IF EXISTS {BARE_LOG}")
    await conn.execute(f"CREATE TABLE {BARE_LOG} (LIKE dg_event_log INCLUDING DEFAULTS)")
    for (definition,) in await conn.fetch(
        "SELECT pg_get_indexdef(indexrelid) FROM pg_index "
        "WHERE indrelid = 'dg_event_log'::regclass AND indisunique"
    ):
        head, _, rest = definition.partition(" ON ")
        await conn.execute(f"{head}_bare ON {BARE_LOG} {rest.split(' ', 1)[1]}")


async def copy_rate(
    dsn: str, rows: int = 50_000, repeats: int = 3, table: str = "dg_event_log"
) -> dict[str, Any]:
    """Raw asyncpg COPY into dg_event_log (same table, indexes and triggers), or into the
    bare log of create_bare_log."""
    conn = await asyncpg.connect(dsn)
    rates = []
    try:
        if table == BARE_LOG:
            await create_bare_log(conn)
        for _ in range(repeats):
            tenant = f"copy-{uuid.uuid4().hex[:8]}"
            await conn.execute("INSERT INTO dg_tenants (tenant_id) VALUES ($1)", tenant)
            stream = event_stream(tenant)
            records = []
            for position in range(1, rows + 1):
                e = next(stream)
                records.append(
                    (
                        tenant,
                        position,
                        e["eventId"],
                        e["traceId"],
                        e["traceSeq"],
                        e["eventType"],
                        e["occurredAt"],
                        "2026-11-21T10:00:00.000000Z",
                        "bench-agent",
                        "bench",
                        None,
                        "agent",
                        "revenue-agent-7",
                        None,
                        None,
                        e["idempotencyKey"],
                        1,
                        stored_payload_json(e["payload"]),
                        payload_hash(e["payload"]),
                        '["bench"]',
                    )
                )
            columns = [
                "tenant_id",
                "log_seq",
                "event_id",
                "trace_id",
                "trace_seq",
                "event_type",
                "occurred_at",
                "recorded_at",
                "producer_id",
                "system",
                "subsystem",
                "actor_type",
                "actor_id",
                "correlation_id",
                "causation_event_id",
                "idempotency_key",
                "schema_version",
                "payload_json",
                "payload_hash",
                "tags_json",
            ]
            started = time.perf_counter()
            await conn.copy_records_to_table(table, records=records, columns=columns)
            rates.append(rows / (time.perf_counter() - started))
        if table == BARE_LOG:
            await conn.execute(f"DROP TABLE {BARE_LOG}")
    finally:
        await conn.close()
    return {
        "rows": rows,
        "rows_per_s": round(sorted(rates)[len(rates) // 2]),
        "runs": [round(r) for r in rates],
    }


TARGET = (100, 8, True)  # batch, clients, one shared tenant


def bench_ingest(
    settings: Settings, seconds: float, workers: int, repeats: int = 3
) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    token = asyncio.run(create_key(settings, "bench", ["*"], ["admin"]))
    env = env_for(settings, DG_HTTP_PORT=str(port), DG_HTTP_WORKERS=str(workers))
    results: list[dict[str, Any]] = []
    scenarios = [(b, c, True) for c in (1, 8) for b in (1, 10, 100, 500)] + [(100, 8, False)]
    # The target compares 100-event batches from 8 clients with COPY. This machine's speed
    # drifts by tens of percent within minutes, so that scenario's runs are each paired with
    # a COPY measured right after it and the ratio is the median of the pairs.
    paired: list[float] = []
    paired_bare: list[float] = []
    with process(["serve"], env, ready_url=f"{url}/healthz"):
        for batch, clients, shared in scenarios:
            runs = []
            for _ in range(repeats):
                runs.append(asyncio.run(run_scenario(url, token, batch, clients, seconds, shared)))
                if (batch, clients, shared) == TARGET:
                    dsn = settings.require_database_url
                    beside = asyncio.run(copy_rate(dsn, repeats=1))
                    paired.append(runs[-1].rate / beside["rows_per_s"] * 100)
                    bare = asyncio.run(copy_rate(dsn, repeats=1, table=BARE_LOG))
                    paired_bare.append(runs[-1].rate / bare["rows_per_s"] * 100)
            summary = best_of(runs)
            results.append(summary)
            print(
                f"  ingest batch={batch:>3} clients={clients} {summary['tenants']:>14}: "
                f"{summary['events_per_s']:>7} ev/s p50={summary['p50_ms']}ms "
                f"p99={summary['p99_ms']}ms runs={summary['runs_events_per_s']}",
                flush=True,
            )
    copy = asyncio.run(copy_rate(settings.require_database_url, repeats=5))
    print(f"  raw COPY: {copy['rows_per_s']} rows/s (runs {copy['runs']})", flush=True)
    bare = asyncio.run(copy_rate(settings.require_database_url, repeats=5, table=BARE_LOG))
    print(f"  bare COPY: {bare['rows_per_s']} rows/s (runs {bare['runs']})", flush=True)
    return {
        "server_workers": workers,
        "seconds_per_run": seconds,
        "repeats": repeats,
        "runs": results,
        "copy": copy,
        "bare_copy": bare,
        "paired_share_percent": [round(share, 1) for share in paired],
        "paired_bare_share_percent": [round(share, 1) for share in paired_bare],
    }
