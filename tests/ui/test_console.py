"""Every console screen against the release demo, in NiceGUI's user simulation."""

from __future__ import annotations

import asyncio

import pytest
from nicegui.testing.user import User

from server.demo.release_demo import (
    INCIDENT,
    LIVE,
    LIVE_WORKFLOW,
    REVIEW_WORKFLOW,
    release_demo_events,
)
from server.settings import Settings
from server.startup import create_key
from tests.support import GraphQLClient, input_observed, started
from tests.ui.conftest import sign_in

pytestmark = pytest.mark.anyio


async def test_a_wrong_key_is_refused_at_sign_in(user: User) -> None:
    await user.open("/signin")
    user.find(marker="signin-token").type("dg_nope_nope")
    user.find(marker="signin-submit").click()
    await user.should_see("Sign-in refused", retries=50)
    await user.open("/")
    await user.should_see(marker="signin-token")  # still signed out: back to sign-in


async def test_overview_shows_health_reviews_and_alerts(
    user: User, demo: str, admin_token: str
) -> None:
    await sign_in(user, admin_token)
    await user.open(f"/?tenant={demo}")
    for name in ("context_graph", "trace_summary", "precedent_index", "workflows"):
        await user.should_see(marker=f"health-{name}", retries=50)
    await user.should_see("Workflow SLA risk detected")
    await user.should_see("Overdue reviews")


async def test_the_demo_deep_link_opens_the_live_review(
    user: User, demo: str, admin_token: str
) -> None:
    await sign_in(user, admin_token)
    await user.open(f"/?tenant={demo}&trace_id={LIVE}&workflow_id={LIVE_WORKFLOW}")
    await user.should_see(marker="workflow-detail", retries=50)
    await user.should_see("Live renewal exception review for Acme Platform")
    await user.should_see("overdue by")  # the SLA passed long ago: escalated by the timer
    await user.should_see(marker=f"workflow-{REVIEW_WORKFLOW}")
    await user.open(f"/?tenant={demo}&trace_id={INCIDENT}&workflow_id={REVIEW_WORKFLOW}")
    await user.should_see("Incident review for Delta Logistics rejection", retries=50)


async def test_a_deep_link_opened_before_its_review_exists_shows_it_once_projected(
    user: User, admin_token: str, gql: GraphQLClient, worker: asyncio.Task[None]
) -> None:
    await gql.append_ok([started("another-trace")])  # the tenant exists, the review not yet
    await sign_in(user, admin_token)
    await user.open(f"/?tenant={gql.tenant}&trace_id={LIVE}&workflow_id={LIVE_WORKFLOW}")
    await user.should_see("Workflow not found", retries=50)
    await gql.append_ok(release_demo_events())  # the agent's events arrive afterwards
    await user.should_see(marker="workflow-detail", retries=200)
    await user.should_see("Live renewal exception review for Acme Platform")


async def test_approving_from_the_inbox_records_the_decision(
    user: User, demo: str, admin_token: str, gql: GraphQLClient
) -> None:
    await sign_in(user, admin_token)
    await user.open(f"/?tenant={demo}&workflow_id={LIVE_WORKFLOW}&trace_id={LIVE}")
    await user.should_see(marker="rationale", retries=50)
    user.find(marker="rationale").type("Strategic renewal; margin holds")
    user.find(marker="action-approve").click()
    # The review's own status chip, on the reloaded page (the scored precedent beside the
    # form shows approved cases too, so the word alone proves nothing).
    await user.should_see(marker="workflow-status", content="approved", retries=50)
    data = await gql.data(
        "query($id: String!) { workflow(workflowId: $id) { status currentReason } }",
        {"id": LIVE_WORKFLOW},
    )
    assert data["workflow"] == {
        "status": "APPROVED",
        "currentReason": "Strategic renewal; margin holds",
    }


async def test_a_reader_sees_actions_disabled_with_the_reason(
    user: User, demo: str, settings: Settings
) -> None:
    reader = await create_key(settings, "auditor", [demo], ["reader"])
    await sign_in(user, reader)
    await user.open(f"/?tenant={demo}&workflow_id={LIVE_WORKFLOW}&trace_id={LIVE}")
    await user.should_see("Needs the reviewer or admin role", retries=50)
    approve = user.find(marker="action-approve").elements.pop()
    assert approve.enabled is False
    await user.open(f"/?tenant={demo}&view=replays")
    await user.should_see("Needs the admin role", retries=50)


async def test_trace_explorer_timeline_and_live_append(
    user: User, demo: str, admin_token: str, gql: GraphQLClient
) -> None:
    await sign_in(user, admin_token)
    await user.open(f"/?tenant={demo}&view=traces&trace_id={LIVE}")
    await user.should_see(marker="timeline", retries=50)
    await user.should_see("PrecedentCited")
    await user.should_see(marker=f"trace-{INCIDENT}")
    await gql.append_ok([input_observed(LIVE, 6, idempotency_key="console-live")])
    await user.should_see("7 events", retries=80)  # appended live, no reload


async def test_graph_precedents_replays_stream_and_status(
    user: User, demo: str, admin_token: str, gql: GraphQLClient
) -> None:
    await sign_in(user, admin_token)
    await user.open(f"/?tenant={demo}&view=graph&trace_id={LIVE}")
    await user.should_see(marker="graph-chart", retries=50)
    await user.should_see("nodes")
    await user.open(f"/?tenant={demo}&view=precedents&trace_id={LIVE}")
    await user.should_see(marker="precedent-trace-precedent-renewal-001", retries=50)
    await user.open(
        f"/?tenant={demo}&view=precedents&trace_id={LIVE}&compare=trace-precedent-renewal-001"
    )
    await user.should_see(marker="comparison", retries=50)
    await user.open(f"/?tenant={demo}&view=replays")
    user.find(marker="replay-reason").type("console check")
    user.find(marker="replay-confirm").type("VERIFY ALL")
    user.find(marker="replay-submit").click()
    await user.should_see("digests match", retries=150)
    await user.open(f"/?tenant={demo}&view=stream")
    await user.should_see(marker="stream-22", retries=50)
    await gql.append_ok([input_observed(LIVE, 6, idempotency_key="stream-live")])
    await user.should_see(marker="stream-23", retries=80)
    await user.open(f"/?tenant={demo}&view=status")
    await user.should_see(marker="component-database", retries=50)
