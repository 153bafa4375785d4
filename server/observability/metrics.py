"""Prometheus metrics: what each process counts, and what the database knows, on /metrics.

Two kinds of series. Counters and histograms a process keeps about its own work
(events appended, batch sizes, rate-limit refusals, open subscriptions): with several
server processes (`serve --workers N`) they live in prometheus_client's multiprocess
files (PROMETHEUS_MULTIPROC_DIR, which `serve` sets up) and are summed at scrape time.
And gauges read from PostgreSQL when scraped (log position and projection lag per tenant
and projection, replay progress, SLA escalations): the database is the one place every
server and worker writes to, so any server answers for all of them, workers included.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Final

import asyncpg
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST

EVENTS_APPENDED: Final = Counter(
    "dg_events_appended", "Events acknowledged as newly appended (idempotent replays excluded)"
)
BATCH_SIZE: Final = Histogram(
    "dg_append_batch_size",
    "Events per appendEvents batch",
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000),
)
RATE_LIMIT_REFUSALS: Final = Counter(
    "dg_rate_limit_refusals", "Requests refused by the rate limiter", ["scope"]
)
SUBSCRIPTIONS: Final = Gauge(
    "dg_subscriptions_active",
    "GraphQL subscriptions open now",
    multiprocess_mode="livesum",
)


def appended(batch: int, new: int) -> None:
    BATCH_SIZE.observe(batch)
    EVENTS_APPENDED.inc(new)


def refused(scope: str) -> None:
    RATE_LIMIT_REFUSALS.labels(scope=scope).inc()


_LAG: Final = """
    SELECT t.tenant_id, t.last_log_seq, p.projection, coalesce(c.last_log_seq, 0) AS cursor
    FROM dg_tenants t
    CROSS JOIN unnest($1::text[]) AS p(projection)
    LEFT JOIN dg_projection_cursors c ON c.scope = t.tenant_id AND c.projection = p.projection
    ORDER BY t.tenant_id, p.projection"""
_REPLAYS: Final = """
    SELECT tenant_id, replay_id, mode, status, processed_events, last_log_seq, target_json
    FROM dg_replays WHERE status IN ('QUEUED', 'RUNNING')"""
# The journal, not the projection: an escalation counts once it is decided, and the
# timers' dedupe keys make sure it is decided once.
_ESCALATIONS: Final = """
    SELECT tenant_id, count(*) FROM dg_workflow_journal
    WHERE kind = 'sla_escalate' GROUP BY tenant_id"""


class _Snapshot:
    """Database-derived families, read once per scrape (asyncpg is async; collectors
    are not, so the reading happens first and the collector only hands them over)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


async def database_families(conn: asyncpg.Connection, projections: Iterable[str]) -> list[Metric]:
    position = GaugeMetricFamily(
        "dg_log_position", "The tenant's last log_seq (rate() of it is the ingest rate)",
        labels=["tenant"],
    )  # fmt: skip
    lag = GaugeMetricFamily(
        "dg_projection_lag_events", "Log positions a projection is behind its tenant's log",
        labels=["tenant", "projection"],
    )  # fmt: skip
    seen: set[str] = set()
    for row in await conn.fetch(_LAG, list(projections)):
        if row["tenant_id"] not in seen:
            seen.add(row["tenant_id"])
            position.add_metric([row["tenant_id"]], row["last_log_seq"])
        lag.add_metric(
            [row["tenant_id"], row["projection"]], max(row["last_log_seq"] - row["cursor"], 0)
        )
    progress = GaugeMetricFamily(
        "dg_replay_processed_events", "Events a queued or running replay has processed",
        labels=["tenant", "replay_id", "mode", "status"],
    )  # fmt: skip
    for row in await conn.fetch(_REPLAYS):
        progress.add_metric(
            [row["tenant_id"], row["replay_id"], row["mode"], row["status"]],
            row["processed_events"],
        )
    escalations = CounterMetricFamily(
        "dg_sla_escalations", "SLA escalations fired by the timers", labels=["tenant"]
    )
    for row in await conn.fetch(_ESCALATIONS):
        escalations.add_metric([row["tenant_id"]], row["count"])
    return [position, lag, progress, escalations]


def exposition(families: list[Metric]) -> bytes:
    """This process's (or all processes') series, then the database's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        processes = CollectorRegistry()
        MultiProcessCollector(processes)  # type: ignore[no-untyped-call]
        own = generate_latest(processes)
    else:
        own = generate_latest(REGISTRY)
    database = CollectorRegistry(auto_describe=False)
    database.register(_Snapshot(families))
    return own + generate_latest(database)
