"""What an operator scrapes: /metrics moving while events are ingested, from real processes
(two server processes, so the per-process series are summed across them)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from decisiongraph.sdk import LiveConnection
from server.demo.release_demo import release_demo_events
from server.settings import Settings
from server.startup import create_key
from tests.e2e.conftest import Process, free_port, start_ready
from tests.support import (
    APPEND,
    GraphQLClient,
    finished,
    input_observed,
    new_tenant,
    process_env,
    started,
    to_input,
)

pytestmark = pytest.mark.e2e

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    out: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_move_while_events_are_ingested(
    worker_process: Process, settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = process_env_for(settings, port)
    server = start_ready(
        "metrics-server", ["serve", "--workers", "2"], env, tmp_path, f"{url}/healthz"
    )
    try:
        tenant = new_tenant()
        token = asyncio.run(create_key(settings, None, [tenant], ["admin"]))
        spender = asyncio.run(create_key(settings, None, [tenant], ["writer"]))
        refused = httpx.get(f"{url}/metrics", timeout=10)
        assert refused.status_code == 401  # DG_METRICS_TOKEN is set: scrapers need it
        before = scrape(url, "scrape-secret")

        async def scenario() -> tuple[Samples, Samples]:
            async with (
                httpx.AsyncClient(base_url=url, timeout=60) as http,
                LiveConnection(url, token) as live,
            ):
                gql = GraphQLClient(http, token)
                feed = live.subscribe("subscription { events(afterLogSeq: 0) { logSeq } }")
                first = asyncio.ensure_future(feed.__anext__())
                for n in range(10):  # 10 batches of 20 events: 2 ten-event traces each
                    batch = []
                    for t in (f"m{n}a", f"m{n}b"):
                        batch += [to_input(started(t))]
                        batch += [to_input(input_observed(t, s)) for s in range(1, 9)]
                        batch.append(to_input(finished(t, 9)))
                    await gql.data(APPEND, {"events": batch})
                await first  # the subscription is open and delivering
                during = await asyncio.to_thread(scrape, url, "scrape-secret")
                await gql.append_ok(release_demo_events())  # two overdue reviews to escalate
                # Another key of the tenant spends its write budget (60 a minute) until refused.
                for n in range(200):
                    response = await http.post(
                        "/graphql",
                        json={
                            "query": APPEND,
                            "variables": {"events": [to_input(started(f"x{n}"))]},
                        },
                        headers={"Authorization": f"Bearer {spender}"},
                    )
                    if response.status_code == 429:
                        break
                deadline = time.monotonic() + 30
                while True:  # the worker projects everything and fires the SLA timers
                    after = await asyncio.to_thread(scrape, url, "scrape-secret")
                    lagging = [
                        v for (name, labels), v in after.items()
                        if name == "dg_projection_lag_events" and ("tenant", tenant) in labels
                    ]  # fmt: skip
                    escalated = value(after, "dg_sla_escalations_total", tenant=tenant)
                    if lagging and max(lagging) == 0 and escalated == 2:
                        break
                    assert time.monotonic() < deadline, (lagging, escalated)
                    await asyncio.sleep(0.2)
                await feed.aclose()
                return during, after

        during, after = asyncio.run(scenario())
        echoed = httpx.get(f"{url}/healthz", headers={"X-Request-ID": "probe-123"}, timeout=10)
        assert echoed.headers["x-request-id"] == "probe-123"
        assert len(httpx.get(f"{url}/healthz", timeout=10).headers["x-request-id"]) == 32
    finally:
        server.stop()
    # Its logs: one JSON object per line; the access line of the probe carries its id.
    lines = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
    assert lines and all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    assert any(
        line.get("request_id") == "probe-123" and "/healthz" in line["message"] for line in lines
    ), lines[-5:]
    appended = value(after, "dg_events_appended_total") - value(before, "dg_events_appended_total")
    assert appended >= 222  # 200 + the demo's 22 (+ the spender's, admitted before refusal)
    batches = value(after, "dg_append_batch_size_count") - value(
        before, "dg_append_batch_size_count"
    )
    assert batches >= 11
    assert value(during, "dg_subscriptions_active") >= 1
    assert value(during, "dg_log_position", tenant=tenant) == 200
    assert value(after, "dg_log_position", tenant=tenant) >= 222
    lag_names = {labels for (name, labels) in after if name == "dg_projection_lag_events"}
    assert {dict(labels)["projection"] for labels in lag_names if ("tenant", tenant) in labels} >= {
        "context_graph", "trace_summary", "precedent_index", "workflows"
    }  # fmt: skip
    assert value(after, "dg_rate_limit_refusals_total", scope="write") >= 1
    assert value(after, "dg_sla_escalations_total", tenant=tenant) == 2


def process_env_for(settings: Settings, port: int) -> dict[str, str]:
    return process_env(
        settings,
        DG_HTTP_PORT=str(port),
        DG_METRICS_TOKEN="scrape-secret",
        DG_RATE_LIMIT_WRITE="60",
        DG_LOG_FORMAT="json",
        DG_LOG_LEVEL="info",
        DG_ACCESS_LOG="1",
    )
