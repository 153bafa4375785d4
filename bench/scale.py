"""Scale across processes: ingest with 1, 2 and 4 server processes, projection with 1, 2
and 4 worker processes, all on one database and this one machine."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, Final

import httpx

from bench.environment import env_for, free_port, process
from bench.ingest import run_scenario, trace_events
from bench.projection import seed
from server.settings import Settings
from server.startup import create_key

COUNTS: Final = (1, 2, 4)
TENANTS: Final = 8
EVENTS_PER_TENANT: Final = 10_000
HEALTH: Final = "query { projectionHealth { lastLogSeq projectedTo } }"


def _ingest(settings: Settings, token: str, servers: int, seconds: float) -> dict[str, Any]:
    """100-event batches from 8 clients on one tenant, median of 3 runs."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = env_for(settings, DG_HTTP_PORT=str(port), DG_HTTP_WORKERS=str(servers))
    with process(["serve"], env, ready_url=f"{url}/healthz"):
        runs = [
            asyncio.run(run_scenario(url, token, 100, 8, seconds, shared_tenant=True))
            for _ in range(3)
        ]
    rates = sorted(r.rate for r in runs)
    return {"servers": servers, "events_per_s": round(rates[1]),
            "runs": [round(r.rate) for r in runs],
            "errors": sum(r.errors for r in runs)}  # fmt: skip


NUDGE: Final = """mutation($e: [EventInput!]!) { appendEvents(events: $e) { errors { code } } }"""


async def _nudge(url: str, token: str, tenants: list[str]) -> None:
    """One more event per tenant over the API: its notice enqueues the tenant's catch-up
    job, as live ingest would (the bulk of each log was written with no notice)."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for tenant in tenants:
            event = trace_events(f"nudge-{tenant}", 2)[0]  # a TraceStarted
            body = (
                await http.post(
                    "/graphql",
                    json={"query": NUDGE, "variables": {"e": [event]}},
                    headers={"Authorization": f"Bearer {token}", "X-Tenant-ID": tenant},
                )
            ).json()
            assert not body["data"]["appendEvents"]["errors"], body


async def _caught_up(url: str, token: str, tenants: list[str], total: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for tenant in tenants:
            while True:
                body = (
                    await http.post(
                        "/graphql",
                        json={"query": HEALTH},
                        headers={"Authorization": f"Bearer {token}", "X-Tenant-ID": tenant},
                    )
                ).json()
                health = body["data"]["projectionHealth"]
                if health["projectedTo"] >= total:
                    break
                await asyncio.sleep(0.05)


def _projection(settings: Settings, token: str, workers: int) -> dict[str, Any]:
    """Fresh tenants' logs (appended with no worker running), `worker --processes N`
    started, then one event appended per tenant over the API; timed from that append until
    every tenant is projected to its end (all projections)."""
    run = uuid.uuid4().hex[:6]
    tenants = [f"scale-{run}-{n}" for n in range(TENANTS)]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # The sweep runs once at start and then not for an hour: the catch-up jobs the nudges
    # enqueue do all the projecting, as they do under live ingest.
    env = env_for(settings, DG_HTTP_PORT=str(port), DG_SWEEP_INTERVAL="3600")
    workers_cmd = ["worker", "--processes", str(workers)]
    with process(["serve"], env, ready_url=f"{url}/healthz"), process(workers_cmd, env):
        time.sleep(3.0)  # the worker processes are up and their first sweep is done
        for tenant in tenants:
            asyncio.run(seed(settings, tenant, EVENTS_PER_TENANT))
        began = time.perf_counter()
        asyncio.run(_nudge(url, token, tenants))
        asyncio.run(_caught_up(url, token, tenants, EVENTS_PER_TENANT + 1))
        seconds = time.perf_counter() - began
    events = TENANTS * (EVENTS_PER_TENANT + 1)
    return {"workers": workers, "events": events, "seconds": round(seconds, 2),
            "events_per_s": round(events / seconds)}  # fmt: skip


def bench_scale(settings: Settings, seconds: float = 5.0) -> dict[str, Any]:
    token = asyncio.run(create_key(settings, "bench", ["*"], ["admin"]))
    ingest = []
    for servers in COUNTS:
        ingest.append(_ingest(settings, token, servers, seconds))
        print(f"  ingest, {servers} server process(es): {ingest[-1]['events_per_s']} ev/s "
              f"(runs {ingest[-1]['runs']})", flush=True)  # fmt: skip
    projection = []
    for workers in COUNTS:
        projection.append(_projection(settings, token, workers))
        print(f"  projection, {workers} worker process(es): "
              f"{projection[-1]['events_per_s']} ev/s", flush=True)  # fmt: skip
    return {"ingest": ingest, "projection": projection}
