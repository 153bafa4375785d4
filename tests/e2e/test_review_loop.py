"""Human review with real processes: SLA timers in the worker, and the flagship loop."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from decisiongraph.sdk import DecisionGraphClient, LiveConnection
from server.settings import Settings
from server.startup import create_key
from tests.e2e.conftest import Process, Server
from tests.support import ROOT, envelope, finished, input_observed, new_tenant, started, to_input

pytestmark = pytest.mark.e2e

CHANGES = """subscription { workflowChanged(afterSeq: 0) {
  seq workflowId status action actorId at } }"""
INBOX = """{ workflows { edges { node { workflowId status overdue escalationCount
  precedents { traceId outcome } } } } }"""
POLICY = {"policy_id": "discount-cap", "policy_version": "2026.03"}


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def renewal(trace: str, occurred: str, exception: bool = True) -> list[dict[str, Any]]:
    events = [
        started(trace, occurred_at=occurred),
        input_observed(trace, 1, occurred_at=occurred),
        envelope(trace, 2, "PolicyEvaluated",
                 {"policy": POLICY, "inputs": [], "decision": "require_exception"},
                 occurred_at=occurred),
    ]  # fmt: skip
    if exception:
        events.append(
            envelope(trace, 3, "ExceptionRequested",
                     {"exception_id": f"ex-{trace}", "policy": POLICY, "reason": "above the cap"},
                     occurred_at=occurred)
        )  # fmt: skip
    return [to_input(e) for e in events]


async def watch_changes(base: str, token: str, until: Callable[[list[dict[str, Any]]], bool],
                        within: float) -> list[dict[str, Any]]:  # fmt: skip
    seen: list[dict[str, Any]] = []
    async with LiveConnection(base, token) as live:
        try:
            async with asyncio.timeout(within):
                async for data in live.subscribe(CHANGES):
                    change = data["workflowChanged"] | {"received": time.time()}
                    seen.append(change)
                    if until(seen):
                        break
        except TimeoutError:
            pass
    return seen


def escalations(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in changes if c["action"] == "escalate"]


def test_an_sla_escalates_on_time_exactly_once_with_no_read(
    server: Server, start_worker: Callable[[], Process], settings: Settings
) -> None:
    tenant = new_tenant()
    token = asyncio.run(create_key(settings, None, [tenant], ["admin"]))
    start_worker()
    start_worker()  # two workers race for every timer

    async def scenario() -> tuple[float, list[dict[str, Any]], dict[str, Any]]:
        due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=4)
        async with DecisionGraphClient(server.url, token) as api:
            await api.append(renewal("sla", stamp(due - timedelta(hours=4))))
            # Nobody reads workflows from here on: only the subscription listens.
            changes = await watch_changes(
                server.url, token, lambda seen: len(escalations(seen)) > 1, within=12
            )
            inbox = await api.execute(INBOX)
        return due.timestamp(), changes, inbox

    due, changes, inbox = asyncio.run(scenario())
    actions = [c["action"] for c in changes]
    assert actions[0] == "requested"
    assert "deadline_risk" in actions  # warned first: due within 30 minutes
    (escalation,) = escalations(changes)  # exactly once, with two workers racing
    assert escalation["actorId"] == "workflow-sla" and escalation["status"] == "ESCALATED"
    fired = datetime.fromisoformat(escalation["at"].replace("Z", "+00:00")).timestamp()
    assert due <= fired <= due + 3, (due, fired)  # on time: a worker sweeps every second
    (node,) = [e["node"] for e in inbox["workflows"]["edges"]]
    assert (node["status"], node["overdue"], node["escalationCount"]) == ("ESCALATED", True, 1)


def test_an_sla_due_while_no_worker_runs_fires_once_when_one_starts(
    server: Server, start_worker: Callable[[], Process], settings: Settings
) -> None:
    tenant = new_tenant()
    token = asyncio.run(create_key(settings, None, [tenant], ["admin"]))
    first = start_worker()

    async def scenario() -> list[dict[str, Any]]:
        due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=10)
        async with DecisionGraphClient(server.url, token) as api:
            await api.append(renewal("restart", stamp(due - timedelta(hours=4))))
            # The first worker is alive and has taken the item in: it warned about it.
            warned = await watch_changes(
                server.url, token, lambda seen: seen[-1]["action"] == "deadline_risk", within=8
            )
            assert warned[-1]["action"] == "deadline_risk"
            first.popen.send_signal(signal.SIGKILL)
            first.popen.wait()
            await asyncio.sleep(max(0.0, due.timestamp() - time.time()) + 1.5)
            start_worker()  # after the due time: the new worker finds it owed
            start_worker()
            return await watch_changes(
                server.url, token, lambda seen: len(escalations(seen)) > 1, within=8
            )

    changes = asyncio.run(scenario())
    assert len(escalations(changes)) == 1
    assert [c["action"] for c in changes].count("deadline_risk") == 1


def test_the_flagship_review_loop_ends_in_an_export_that_verifies_offline(
    server: Server, worker_process: Process, settings: Settings, tmp_path: Path
) -> None:
    tenant = new_tenant()
    agent = asyncio.run(create_key(settings, "revenue-agent", [tenant], ["writer"]))
    finance = asyncio.run(create_key(settings, "finance-approver", [tenant], ["reviewer"]))
    admin = asyncio.run(create_key(settings, "investigator", [tenant], ["admin"]))
    today = stamp(datetime.now(UTC))

    async def scenario() -> dict[str, Any]:
        async with (
            DecisionGraphClient(server.url, agent) as bot,
            DecisionGraphClient(server.url, finance) as approver,
            DecisionGraphClient(server.url, admin) as investigator,
        ):
            # A precedent: an earlier renewal above the cap, approved and finished.
            earlier = renewal("renewal-2025", today, exception=False)
            earlier.append(to_input(finished("renewal-2025", 3, outcome="success")))
            await bot.append(earlier)
            # The live decision: the agent asks for a discount above the cap.
            stored = await bot.append(renewal("renewal-2026", today))
            inbox = await approver.execute(
                """query($n: Long) { workflows(onlyOpen: true, atLeast: $n) { edges { node {
                   workflowId status precedents { traceId outcome } } } } }""",
                {"n": stored[-1].log_seq},
            )
            (item,) = [e["node"] for e in inbox["workflows"]["edges"]]
            assert item["precedents"] == [{"traceId": "renewal-2025", "outcome": "success"}]
            decided = await approver.mutate(
                """mutation($id: String!) { reviewWorkflow(workflowId: $id, decision: APPROVE,
                   rationale: "Strategic renewal; margin floor holds",
                   evidence: [{locator: "review://finance/renewal-2026"}]) {
                   workflow { status } appendedEventId errors { code message } } }""",
                "reviewWorkflow",
                {"id": item["workflowId"]},
            )
            assert decided["workflow"]["status"] == "APPROVED"
            trace = await bot.execute(
                """{ trace(traceId: "renewal-2026") { eventCount
                   events { edges { node { eventType } } } } }"""
            )
            assert trace["trace"]["events"]["edges"][-1]["node"]["eventType"] == "ApprovalRecorded"
            seq = trace["trace"]["eventCount"]
            await bot.append([
                to_input(envelope("renewal-2026", seq, "ActionProposed", {
                    "action_id": "act-1", "action_type": "update", "target_system": "crm",
                    "target_entity": {"entity_type": "opportunity", "entity_id": "opp-1"},
                    "changes": [{"path": "discount_pct", "new_value": {"type": "number", "value": "21"}}],
                }, occurred_at=today)),
                to_input(envelope("renewal-2026", seq + 1, "ActionCommitted",
                                  {"action_id": "act-1", "status": "success"}, occurred_at=today)),
                to_input(finished("renewal-2026", seq + 2, occurred_at=today)),
            ])  # fmt: skip
            bundle = await investigator.execute('query { auditExport(traceId: "renewal-2026") }')
            return dict(bundle["auditExport"])

    bundle = asyncio.run(scenario())
    kinds = [e["event_type"] for t in bundle["traces"] for e in t["events"]]
    assert kinds[-5:] == [
        "ExceptionRequested", "ApprovalRecorded", "ActionProposed", "ActionCommitted",
        "TraceFinished",
    ]  # fmt: skip
    assert bundle["workflows"][0]["status"] == "approved"
    path = tmp_path / "renewal-2026.json"
    path.write_text(json.dumps(bundle))
    ok = subprocess.run(
        [sys.executable, "-m", "server.cli", "audit", "verify", str(path)],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("OK ")
    bundle["traces"][0]["events"][2]["payload"]["decision"] = "allow"  # tamper
    path.write_text(json.dumps(bundle))
    bad = subprocess.run(
        [sys.executable, "-m", "server.cli", "audit", "verify", str(path)],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert bad.returncode == 1 and "payload hash" in bad.stdout
