"""`examples/revenue_agent.py` runs the flagship scenario against real processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from decisiongraph.sdk import DecisionGraphClient
from tests.e2e.conftest import Process, Server
from tests.support import ROOT, new_tenant

pytestmark = pytest.mark.e2e


def test_the_revenue_agent_example_completes_the_scenario(
    server: Server, admin_token: str, worker_process: Process
) -> None:
    tenant = new_tenant()
    done = subprocess.run(
        [sys.executable, "examples/revenue_agent.py", "--url", server.url, "--token",
         admin_token, "--tenant", tenant, "--trace-id", "renewal-e2e"],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    steps = [line.split("]")[0].lstrip("[") for line in done.stdout.splitlines() if "]" in line]
    assert steps == [
        "ingest", "policy", "precedent", "operations", "operations", "review", "commit",
        "replay", "replay",
    ]  # fmt: skip
    assert "digests match: True" in done.stdout
    assert done.stdout.rstrip().endswith("scenario complete")

    async def check() -> None:
        async with DecisionGraphClient(server.url, admin_token, tenant) as dg:
            trace = await dg.trace("renewal-e2e")
            assert trace is not None and trace.finished and trace.outcome == "success"
            events = await dg.trace_events("renewal-e2e")
            assert [e.event_type for e in events] == [
                "TraceStarted", "InputObserved", "PolicyEvaluated", "ExceptionRequested",
                "PrecedentCited", "ApprovalRecorded", "ActionProposed", "ActionCommitted",
                "TraceFinished",
            ]  # fmt: skip
            assert events[4].payload["cited_trace_id"] == "renewal-northwind-2025"
            (review,) = await dg.workflows(trace_id="renewal-e2e")
            assert review.status == "APPROVED" and review.current_decision == "approved"

    asyncio.run(check())
