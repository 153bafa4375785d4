"""`decisiongraph demo seed`: the report of spec/platform.md §7.7 (with the changes of
spec/api.md "Release demo report"), field by field, on a fresh tenant of the test database.

Digests and positions are per tenant, so the recorded values below hold on every database;
they are also recomputed here from the planned events with the in-memory oracle, so a
change to the demo data shows up as a mismatch with the oracle, not as a silent re-record.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from server.core.append_plan import LogState, plan_batch
from server.core.digest import full_digest
from server.core.envelope import envelope_from_dict
from server.core.projector import InMemoryProjector
from server.core.validation import validate_envelope
from server.demo.release_demo import (
    INCIDENT,
    LIVE,
    LIVE_WORKFLOW,
    PRECEDENT,
    PRECEDENT_WORKFLOW,
    REVIEW_WORKFLOW,
    release_demo_events,
)
from server.demo.seed import seed_release_demo
from server.settings import Settings
from tests.support import ROOT, new_tenant, process_env

pytestmark = pytest.mark.anyio

INCIDENT_EXCEPTION = f"{INCIDENT}:exception:ex-incident-review-003"

# Recorded once from a fresh seed; per tenant, so stable across databases.
RECORDED_DIGESTS = {
    "context_graph": "sha256:1a83bdee0f5c5faa0d12d6d564c968b71adb6f033025dc886e083a6783db63ea",
    "precedent_index": "sha256:c72f5d5127f512aed18e1a0e127f45bfd994405f3b575100c344103f9e94f1ff",
    "trace_summary": "sha256:5b1a8da9e454888da65ac1ae9d438f0b2ccd71b8645994e00f2e57bf00a00344",
    "full_projection": "sha256:b85b780f9f5957f76c32d8d9f00cee8d11b7db4778a3c6915f92d599aec68e05",
}


def oracle_digests() -> dict[str, str]:
    validated = [validate_envelope(envelope_from_dict(raw)) for raw in release_demo_events()]
    oracle = InMemoryProjector()
    oracle.apply_all(p.event for p in plan_batch(validated, LogState(0, {}, {}, frozenset()), "t"))
    digests = oracle.digests().as_dict()
    digests["full_projection"] = full_digest(
        digests["context_graph"], digests["trace_summary"], digests["precedent_index"]
    )
    return digests


def test_the_recorded_digests_are_the_oracles() -> None:
    assert oracle_digests() == RECORDED_DIGESTS


def test_the_demo_is_the_22_events_of_the_spec() -> None:
    events = release_demo_events()
    assert [e["trace_id"] for e in events] == [PRECEDENT] * 9 + [INCIDENT] * 7 + [LIVE] * 6
    assert events[0]["idempotency_key"] == f"tracestarted:{PRECEDENT}:0"
    assert events[-1]["event_id"] == f"{LIVE}-precedent_cited-5"
    assert events[-1]["payload"]["similarity_score"] == "0.92"
    assert {e["correlation_id"] for e in events} == {
        f"phase10:{t}" for t in (PRECEDENT, INCIDENT, LIVE)
    }


async def _counts(pool: asyncpg.Pool, tenant: str) -> dict[str, int]:
    async with pool.acquire() as conn:
        return {
            table: await conn.fetchval(f"SELECT count(*) FROM {table} WHERE {column} = $1", tenant)
            for table, column in (
                ("dg_event_log", "tenant_id"),
                ("dg_workflow_items", "scope"),
                ("dg_workflow_actions", "scope"),
                ("dg_workflow_notifications", "scope"),
                ("dg_workflow_journal", "tenant_id"),
            )
        }


async def _actions(pool: asyncpg.Pool, tenant: str) -> list[tuple[str, str, str]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT workflow_id, action_type, resulting_status FROM dg_workflow_actions
               WHERE scope = $1 ORDER BY seq""",
            tenant,
        )
    return [(r["workflow_id"], r["action_type"], r["resulting_status"]) for r in rows]


def _assert_report(report: dict[str, Any], tenant: str) -> None:
    assert sorted(report) == [
        "api_examples", "console_paths", "console_snapshot", "event_count",
        "highlighted_traces", "live_trace", "precedent_trace_id", "projection_digests",
        "projection_results", "recent_trace_ids", "review_workflow", "seed_profile",
        "tenant_id", "workflow_inbox",
    ]  # fmt: skip
    assert sorted(report["api_examples"]) == [
        "export_workflow", "projection_health", "recent_workflows", "selected_trace"
    ]  # fmt: skip
    assert REVIEW_WORKFLOW in report["api_examples"]["export_workflow"]
    assert LIVE in report["api_examples"]["selected_trace"]
    assert report["console_paths"] == {
        "default": f"/?tenant={tenant}&trace_id={LIVE}&workflow_id={LIVE_WORKFLOW}",
        "incident_review": f"/?tenant={tenant}&trace_id={INCIDENT}&workflow_id={REVIEW_WORKFLOW}",
    }
    assert report["console_snapshot"] == {
        "alert_count": 1,  # "Workflow SLA risk detected": two overdue reviews, nothing else
        "selected_trace_id": LIVE,
        "selected_workflow_id": LIVE_WORKFLOW,
    }
    assert report["event_count"] == 22
    assert report["highlighted_traces"] == [
        {"title": "Approved precedent", "trace_id": PRECEDENT, "workflow_id": PRECEDENT_WORKFLOW},
        {"title": "Live exception review", "trace_id": LIVE, "workflow_id": LIVE_WORKFLOW},
        {"title": "Incident review", "trace_id": INCIDENT, "workflow_id": REVIEW_WORKFLOW},
    ]
    assert report["live_trace"] == {
        "event_count": 6,
        "precedent_trace_ids": [PRECEDENT],
        "trace_id": LIVE,
        "workflow_id": LIVE_WORKFLOW,
        "workflow_status": "escalated",
    }
    assert report["precedent_trace_id"] == PRECEDENT
    assert report["projection_digests"] == RECORDED_DIGESTS
    assert report["projection_results"] == [
        {
            "last_log_seq": 22,
            "pending_events": 0,
            "processed_events": 22,
            "projection_name": name,
            "tenant_id": tenant,
        }
        for name in ("context_graph", "trace_summary", "precedent_index")
    ]
    assert report["recent_trace_ids"] == [LIVE, INCIDENT, PRECEDENT]
    assert report["review_workflow"] == {
        "trace_id": INCIDENT,
        "workflow_id": REVIEW_WORKFLOW,
        "workflow_status": "escalated",
    }
    assert report["seed_profile"] == "release_demo"
    assert report["tenant_id"] == tenant
    assert report["workflow_inbox"] == {
        "item_ids": [REVIEW_WORKFLOW, LIVE_WORKFLOW, PRECEDENT_WORKFLOW, INCIDENT_EXCEPTION],
        "open_count": 2,
        "overdue_count": 2,
    }


async def test_the_seed_report_matches_the_spec_field_by_field_and_reseeding_changes_nothing(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    tenant = new_tenant()
    first = await seed_release_demo(settings, tenant)
    _assert_report(first, tenant)
    counts = await _counts(pool, tenant)
    assert counts == {
        "dg_event_log": 22,
        "dg_workflow_items": 4,
        "dg_workflow_actions": 8,
        "dg_workflow_notifications": 8,
        "dg_workflow_journal": 2,  # the two SLA escalations, fired by the timer sweep
    }
    actions = await _actions(pool, tenant)
    assert sorted(actions) == sorted(
        [
            (PRECEDENT_WORKFLOW, "requested", "requested"),
            (PRECEDENT_WORKFLOW, "approve", "approved"),
            (INCIDENT_EXCEPTION, "requested", "requested"),
            (INCIDENT_EXCEPTION, "reject", "rejected"),
            (REVIEW_WORKFLOW, "incident_review_requested", "requested"),
            (REVIEW_WORKFLOW, "escalate", "escalated"),
            (LIVE_WORKFLOW, "requested", "requested"),
            (LIVE_WORKFLOW, "escalate", "escalated"),
        ]
    )

    second = await seed_release_demo(settings, tenant)
    assert second == first
    assert await _counts(pool, tenant) == counts
    assert await _actions(pool, tenant) == actions


def test_the_cli_writes_the_report_and_prints_the_summary(
    settings: Settings, tmp_path: Path
) -> None:
    tenant = new_tenant()
    output = tmp_path / "report.json"
    env = process_env(settings)
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "demo", "seed", "--tenant", tenant,
         "--output", str(output)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(output.read_text())
    _assert_report(report, tenant)
    lines = done.stdout.splitlines()
    assert lines[0] == "DecisionGraph release demo seeded"
    assert f"  tenant_id: {tenant}" in lines
    assert f"  live_workflow_id: {LIVE_WORKFLOW}" in lines
    assert f"  console default: {report['console_paths']['default']}" in lines
