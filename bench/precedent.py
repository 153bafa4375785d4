"""Scored precedent on a tenant with 100k finished traces: query latency, projection rate."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from typing import Any

import httpx

from bench.environment import env_for, free_port, percentile, process
from bench.projection import _envelope
from fixtures.precedent_eval.generate import MEMBERS, generate
from server.core.validation import validate_envelope
from server.service import precedent_cases
from server.settings import Settings
from server.startup import create_key
from server.store.database import create_pool
from server.store.event_log import PostgresEventLog
from server.store.precedent_cases import PostgresPrecedentCases

SIMULATE = """mutation { simulatePolicy(policyId: "discount-cap", reason: "bench",
  rules: [{fact: "discount_pct", op: GT, value: 20}]) {
  simulation { simulationId status } errors { code message } } }"""
RUN = """query($id: String!) { policySimulationRun(simulationId: $id) { status processed
  summary { evaluated flipped } } }"""
QUERY = """query($t: String!) { scoredPrecedents(traceId: $t, first: 10) {
  candidates results { traceId score } } }"""


async def _seed(settings: Settings, tenant: str, events: list[dict[str, Any]]) -> float:
    """Append through the log's append path, then fold the cases; the fold's events/s."""
    pool = await create_pool(settings.require_database_url, size=2, application_name="bench")
    try:
        log = PostgresEventLog(pool)
        for start in range(0, len(events), 2000):
            batch = [validate_envelope(_envelope(e)) for e in events[start : start + 2000]]
            await log.append(tenant, batch, "2026-11-21T00:00:00.000000Z")
        began = time.perf_counter()
        await precedent_cases.catch_up(PostgresPrecedentCases(pool), tenant, 3600)
        return len(events) / (time.perf_counter() - began)
    finally:
        await pool.close()


async def _projected(url: str, token: str, tenant: str, events: int) -> None:
    """Wait until the worker has projected the seeded log (it starts on it at once): the
    measurements below are of a settled system, not of one still catching up."""
    headers = {"Authorization": f"Bearer {token}", "X-Tenant-ID": tenant}
    health = "query($n: Long!) { projectionHealth(atLeast: $n) { projectedTo } }"
    async with httpx.AsyncClient(base_url=url, timeout=600, headers=headers) as http:
        body = await http.post("/graphql", json={"query": health, "variables": {"n": events}})
        assert "errors" not in body.json(), body.json()


async def _queries(url: str, token: str, tenant: str, traces: list[str]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "X-Tenant-ID": tenant}
    async with httpx.AsyncClient(base_url=url, timeout=120, headers=headers) as http:

        async def ask(trace: str) -> tuple[float, dict[str, Any]]:
            began = time.perf_counter()
            body = (
                await http.post("/graphql", json={"query": QUERY, "variables": {"t": trace}})
            ).json()
            assert "errors" not in body, body
            return (time.perf_counter() - began) * 1000, body["data"]["scoredPrecedents"]

        cold, first = await ask(traces[0])  # loads the tenant's index into the process
        latencies = [(await ask(t))[0] for t in traces[1:]]
    return {"cold_ms": round(cold, 1), "candidates": first["candidates"],
            "queries": len(latencies), "p50_ms": round(percentile(latencies, 50), 1),
            "p99_ms": round(percentile(latencies, 99), 1)}  # fmt: skip


async def _simulation(url: str, token: str, tenant: str) -> dict[str, Any]:
    """simulatePolicy over every case, run by the worker: request to COMPLETED."""
    headers = {"Authorization": f"Bearer {token}", "X-Tenant-ID": tenant}
    async with httpx.AsyncClient(base_url=url, timeout=120, headers=headers) as http:
        began = time.perf_counter()
        body = (await http.post("/graphql", json={"query": SIMULATE})).json()
        run = body["data"]["simulatePolicy"]["simulation"]
        assert run is not None, body
        while True:
            request = {"query": RUN, "variables": {"id": run["simulationId"]}}
            state = (await http.post("/graphql", json=request)).json()["data"]
            state = state["policySimulationRun"]
            if state["status"] in ("COMPLETED", "FAILED"):
                break
            await asyncio.sleep(0.02)
        seconds = time.perf_counter() - began
    assert state["status"] == "COMPLETED", state
    evaluated = state["summary"]["evaluated"]
    return {"evaluated": evaluated, "flipped": state["summary"]["flipped"],
            "seconds": round(seconds, 2),
            "decisions_per_s": round(evaluated / seconds)}  # fmt: skip


def bench_precedent(settings: Settings, traces: int = 100_000) -> dict[str, Any]:
    tenant = f"precedent-{uuid.uuid4().hex[:6]}"
    events, _ = generate(traces // MEMBERS)
    print(f"  seeding {traces} traces ({len(events)} events) ...", flush=True)
    fold_rate = asyncio.run(_seed(settings, tenant, events))
    print(f"  case projection: {fold_rate:.0f} events/s", flush=True)
    token = asyncio.run(create_key(settings, "bench", ["*"], ["admin"]))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = env_for(settings, DG_HTTP_PORT=str(port), DG_READ_WAIT_SECONDS="600")
    ids = sorted({e["traceId"] for e in events})
    sample = random.Random(7).sample(ids, 301)
    with process(["serve"], env, ready_url=f"{url}/healthz"), process(["worker"], env):
        asyncio.run(_projected(url, token, tenant, len(events)))
        latency = asyncio.run(_queries(url, token, tenant, sample))
        simulation = asyncio.run(_simulation(url, token, tenant))
    print(f"  scored precedent: p50 {latency['p50_ms']} ms p99 {latency['p99_ms']} ms over "
          f"{latency['candidates']} cases (cold {latency['cold_ms']} ms)", flush=True)  # fmt: skip
    print(f"  policy simulation: {simulation['decisions_per_s']} decisions/s "
          f"({simulation['evaluated']} in {simulation['seconds']} s)", flush=True)  # fmt: skip
    return {"traces": traces, "events": len(events), "fold_events_per_s": round(fold_rate),
            "query": latency, "simulation": simulation}  # fmt: skip
