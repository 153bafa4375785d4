"""simulatePolicy through the public API: inline for a small tenant, on a worker (followed
over a real websocket) for a larger one, admin only and audited."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from decisiongraph.sdk import LiveConnection
from server.demo.release_demo import INCIDENT, PRECEDENT, release_demo_events
from server.settings import Settings
from server.startup import create_key
from tests.e2e.conftest import Process, Server, free_port, start_ready
from tests.e2e.test_scored_precedent import _scored
from tests.support import GraphQLClient, new_tenant, process_env

pytestmark = pytest.mark.e2e

SIMULATE = """mutation($rules: [PolicyRuleInput!]!) { simulatePolicy(policyId: "discount-cap",
  rules: $rules, reason: "what if the cap were higher") {
  simulation { simulationId status total processed
    summary { evaluated flipped loosened tightened flippedApprovals
              flippedApprovalsWithIncident flippedRejections }
    flips { traceId recorded simulated rule reviewDecision committed incident } }
  errors { code message } } }"""
RUN = """query($id: String!) { policySimulationRun(simulationId: $id) { status processed
  summary { evaluated flipped } } }"""
FOLLOW = """subscription($id: String!) { policySimulationRun(simulationId: $id) { status processed
  summary { evaluated flipped flippedApprovals } } }"""
CAP = [{"fact": "requested_discount_pct", "op": "GT", "value": 30}]


def _gql(url: str, settings: Settings, tenant: str, role: str = "admin") -> GraphQLClient:
    token = asyncio.run(create_key(settings, None, [tenant], [role]))
    return GraphQLClient(httpx.AsyncClient(base_url=url, timeout=60), token)


async def _demo(gql: GraphQLClient) -> None:
    stored = await gql.append_ok(release_demo_events())
    await _scored(gql, "trace-live-renewal-002", 1, stored[-1]["logSeq"])


def test_raising_the_cap_flips_the_demo_decisions_with_their_outcomes(
    server: Server, worker_process: Process, settings: Settings
) -> None:
    tenant = new_tenant()
    gql, reader = _gql(server.url, settings, tenant), _gql(server.url, settings, tenant, "reader")

    async def scenario() -> dict[str, Any]:
        async with gql.http, reader.http:
            await _demo(gql)
            # Bad input and a reader: refused with the spec's codes, and nothing stored.
            bad = [{"fact": "requested_discount_pct", "op": "GT", "value": "thirty"}]
            refusals = [
                (await gql.data(SIMULATE, {"rules": bad}))["simulatePolicy"],
                (await gql.data(SIMULATE, {"rules": []}))["simulatePolicy"],
                (await reader.data(SIMULATE, {"rules": CAP}))["simulatePolicy"],
            ]
            codes = [r["errors"][0]["code"] for r in refusals]
            assert codes == ["DG_ERR_INVALID_ARGUMENT"] * 2 + ["DG_ERR_FORBIDDEN"], refusals
            assert all(r["simulation"] is None for r in refusals)
            runs = await gql.data("{ policySimulationRuns { simulationId } }")
            assert runs["policySimulationRuns"] == []
            result: dict[str, Any] = (await gql.data(SIMULATE, {"rules": CAP}))["simulatePolicy"]
            return result

    result = asyncio.run(scenario())
    assert result["errors"] == []
    run = result["simulation"]
    assert run["status"] == "COMPLETED"  # two finished cases: answered inline
    # A cap at 30% would have let both recorded exceptions through without review: the
    # approved Acme renewal and the rejected Delta one (which then went to incident review).
    assert run["summary"] == {"evaluated": 2, "flipped": 2, "loosened": 2, "tightened": 0,
                              "flippedApprovals": 1, "flippedApprovalsWithIncident": 0,
                              "flippedRejections": 1}  # fmt: skip
    assert run["flips"] == [
        {"traceId": PRECEDENT, "recorded": "require_exception", "simulated": "allow",
         "rule": None, "reviewDecision": "approved", "committed": True, "incident": False},
        {"traceId": INCIDENT, "recorded": "require_exception", "simulated": "allow",
         "rule": None, "reviewDecision": "rejected", "committed": False, "incident": True},
    ]  # fmt: skip

    async def audited() -> list[tuple[str, str]]:
        conn = await asyncpg.connect(settings.require_database_url)
        try:
            rows = await conn.fetch(
                "SELECT action, outcome FROM dg_audit_log WHERE tenant_id = $1 "
                "AND action = 'policy.simulate' ORDER BY audit_id",
                tenant,
            )
        finally:
            await conn.close()
        return [(r["action"], r["outcome"]) for r in rows]

    # The two refusals are audited too (the reader never got past authorization).
    assert asyncio.run(audited()) == [
        ("policy.simulate", "rejected"),
        ("policy.simulate", "rejected"),
        ("policy.simulate", "accepted"),
    ]


def test_a_large_tenants_simulation_runs_on_a_worker_with_progress_on_the_replay_topic(
    worker_process: Process, settings: Settings, tmp_path: Path
) -> None:
    """A server told to run nothing inline (DG_SIMULATION_INLINE_CASES=0) queues the run;
    the worker finishes it and a websocket subscriber follows it to the end."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = process_env(settings, DG_HTTP_PORT=str(port), DG_SIMULATION_INLINE_CASES="0")
    server = start_ready("sim-server", ["serve"], env, tmp_path, f"{url}/healthz")
    try:
        tenant = new_tenant()
        gql = _gql(url, settings, tenant)

        async def scenario() -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
            async with gql.http, LiveConnection(url, gql.token) as live:
                await _demo(gql)
                queued = (await gql.data(SIMULATE, {"rules": CAP}))["simulatePolicy"]
                run_id = queued["simulation"]["simulationId"]
                seen = []
                async with asyncio.timeout(60):
                    async for data in live.subscribe(FOLLOW, {"id": run_id}):
                        seen.append(data["policySimulationRun"])
                final = (await gql.data(RUN, {"id": run_id}))["policySimulationRun"]
                return queued["simulation"], seen, final

        queued, seen, final = asyncio.run(scenario())
    finally:
        server.stop()
    assert queued["status"] in ("QUEUED", "RUNNING", "COMPLETED")
    assert queued["summary"] is None or queued["status"] == "COMPLETED"
    assert seen[-1]["status"] == "COMPLETED"  # the subscription ends with the run
    assert seen[-1]["summary"] == {"evaluated": 2, "flipped": 2, "flippedApprovals": 1}
    assert final == {"status": "COMPLETED", "processed": 2,
                     "summary": {"evaluated": 2, "flipped": 2}}  # fmt: skip
