"""Review workflows through GraphQL, with the real worker loop beside the app."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from server.core.audit_bundle import verify_bundle
from server.core.errors import StorageError
from server.core.workflow import DECISION_EVENT_TYPES, WORKFLOWS
from server.settings import Settings
from server.startup import create_key
from server.store.projections import PostgresProjections
from server.store.workflows import PostgresWorkflows
from tests.support import GraphQLClient, envelope, finished, input_observed, new_tenant, started

pytestmark = pytest.mark.anyio

WORKFLOW_FIELDS = """workflowId traceId kind status priority slaDueAt overdue assignedRole
  assignedAccountId currentDecision currentReason escalationCount"""
INBOX = f"""query($n: Long, $open: Boolean!) {{ workflows(onlyOpen: $open, atLeast: $n) {{
  edges {{ node {{ {WORKFLOW_FIELDS} }} }} totalCount
  summary {{ total open overdue requested inReview escalated approved rejected overridden }} }} }}"""
DETAIL = f"""query($id: String!) {{ workflow(workflowId: $id) {{ {WORKFLOW_FIELDS}
  history {{ action actorId resultingStatus note }} notifications {{ category message }}
  timeline {{ traceId traceSeq eventType }} policyBasis
  precedents {{ traceId outcome }} }} }}"""
REVIEW = f"""mutation($id: String!, $d: ReviewDecision!, $why: String!, $ev: [JSON!]) {{
  reviewWorkflow(workflowId: $id, decision: $d, rationale: $why, evidence: $ev) {{
    workflow {{ {WORKFLOW_FIELDS} }} appendedEventId errors {{ code message }} }} }}"""
ACT = f"""mutation($id: String!, $a: WorkflowActionKind!, $reason: String, $note: String,
  $role: String, $confirm: String) {{ workflowAction(workflowId: $id, action: $a,
  reason: $reason, note: $note, assignedRole: $role, confirmation: $confirm) {{
    workflow {{ {WORKFLOW_FIELDS} }} appendedEventId errors {{ code message }} }} }}"""
START = """mutation($t: String!, $tpl: String, $why: String!) {
  startTraceReview(traceId: $t, templateId: $tpl, reason: $why) {
    workflow { workflowId kind status priority slaDueAt title } created errors { code message } } }"""


def now(offset: timedelta = timedelta()) -> str:
    return (datetime.now(UTC) + offset).strftime("%Y-%m-%dT%H:%M:%SZ")


def renewal(trace: str, occurred: str | None = None) -> list[dict[str, Any]]:
    """The flagship: a renewal discount above the cap, evaluated, exception requested."""
    at = occurred or now()
    policy = {"policy_id": "discount-cap", "policy_version": "2026.03"}
    return [
        started(trace, occurred_at=at),
        input_observed(trace, 1, occurred_at=at),
        envelope(trace, 2, "PolicyEvaluated",
                 {"policy": policy, "inputs": [f"input:{trace}:1"], "decision": "require_exception"},
                 occurred_at=at),
        envelope(trace, 3, "ExceptionRequested",
                 {"exception_id": f"ex-{trace}", "policy": policy,
                  "reason": "Discount above the renewal cap",
                  "evidence": [{"locator": "crm://opp/1"}]},
                 occurred_at=at),
    ]  # fmt: skip


def wid(trace: str) -> str:
    return f"{trace}:exception:ex-{trace}"


async def opened(gql: GraphQLClient, trace: str = "r1", occurred: str | None = None) -> str:
    stored = await gql.append_ok(renewal(trace, occurred))
    await gql.data(INBOX, {"n": stored[-1]["logSeq"], "open": True})
    return wid(trace)


async def act(gql: GraphQLClient, workflow: str, action: str, **extra: Any) -> dict[str, Any]:
    data = await gql.data(ACT, {"id": workflow, "a": action} | extra)
    result: dict[str, Any] = data["workflowAction"]
    return result


async def key(settings: Settings, tenant: str, role: str) -> str:
    return await create_key(settings, None, [tenant], [role])


async def test_an_exception_request_becomes_an_inbox_item_with_context(
    gql: GraphQLClient, worker: object
) -> None:
    workflow = await opened(gql)
    inbox = (await gql.data(INBOX, {"n": None, "open": True}))["workflows"]
    (node,) = [e["node"] for e in inbox["edges"]]
    assert node["workflowId"] == workflow and node["kind"] == "EXCEPTION_REVIEW"
    assert (node["status"], node["priority"], node["assignedRole"]) == (
        "REQUESTED",
        "high",
        "admin",
    )
    assert node["overdue"] is False and node["slaDueAt"] > now()
    assert inbox["summary"]["open"] == 1 and inbox["summary"]["requested"] == 1
    detail = (await gql.data(DETAIL, {"id": workflow}))["workflow"]
    assert [h["action"] for h in detail["history"]] == ["requested"]
    assert [n["category"] for n in detail["notifications"]] == ["assignment"]
    assert detail["policyBasis"]["policy"]["policy_id"] == "discount-cap"
    assert [e["eventType"] for e in detail["timeline"]][-1] == "ExceptionRequested"


async def test_approving_appends_approval_recorded_to_the_trace(
    gql: GraphQLClient, worker: object
) -> None:
    workflow = await opened(gql)
    evidence = [{"locator": "review://finance/1"}, "signed off by the CFO"]
    result = (
        await gql.data(REVIEW, {"id": workflow, "d": "APPROVE", "why": "Strategic", "ev": evidence})
    )["reviewWorkflow"]
    assert result["errors"] == []
    assert result["workflow"]["status"] == "APPROVED"
    assert result["workflow"]["currentDecision"] == "approved"
    trace = await gql.data(
        """{ trace(traceId: "r1") { events { edges { node { eventId eventType payload } } } } }"""
    )
    last = trace["trace"]["events"]["edges"][-1]["node"]
    assert last["eventType"] == "ApprovalRecorded" and last["eventId"] == result["appendedEventId"]
    assert last["payload"]["subject"] == {"subject_type": "exception", "subject_id": "ex-r1"}
    assert last["payload"]["evidence"][1] == {"value": "signed off by the CFO"}
    history = (await gql.data(DETAIL, {"id": workflow}))["workflow"]["history"]
    assert [h["action"] for h in history] == ["requested", "approve"]


async def test_decisions_on_a_finished_trace_go_to_its_review_trace(
    gql: GraphQLClient, worker: object
) -> None:
    workflow = await opened(gql)
    await gql.append_ok([finished("r1", 4, outcome="failure")])
    result = (await gql.data(REVIEW, {"id": workflow, "d": "REJECT", "why": "Margin floor"}))[
        "reviewWorkflow"
    ]
    assert result["errors"] == [] and result["workflow"]["status"] == "REJECTED"
    events = await gql.data('{ trace(traceId: "r1") { finished eventCount } }')
    assert events["trace"] == {"finished": True, "eventCount": 5}  # the lock holds
    review = await gql.data(
        """{ trace(traceId: "review:r1") { events { edges { node { eventType payload } } } } }"""
    )
    kinds = [e["node"]["eventType"] for e in review["trace"]["events"]["edges"]]
    assert kinds == ["TraceStarted", "ApprovalRecorded"]
    assert review["trace"]["events"]["edges"][1]["node"]["payload"]["reviewed_trace_id"] == "r1"
    timeline = (await gql.data(DETAIL, {"id": workflow}))["workflow"]["timeline"]
    assert [e["traceId"] for e in timeline][-2:] == ["review:r1", "review:r1"]


async def test_people_actions_follow_the_state_machine(gql: GraphQLClient, worker: object) -> None:
    workflow = await opened(gql)
    claimed = await act(gql, workflow, "CLAIM")
    assert claimed["workflow"]["status"] == "IN_REVIEW"
    assert claimed["workflow"]["assignedAccountId"] is not None
    commented = await act(gql, workflow, "COMMENT", note="checking the quote")
    assert commented["workflow"]["status"] == "IN_REVIEW"
    changes = await act(gql, workflow, "REQUEST_CHANGES", reason="attach the quote")
    assert changes["workflow"]["status"] == "CHANGES_REQUESTED"
    moved = await act(gql, workflow, "REASSIGN", role="finance")
    assert moved["workflow"]["assignedRole"] == "finance"
    up = await act(gql, workflow, "ESCALATE", reason="needs the CFO")
    assert (up["workflow"]["status"], up["workflow"]["escalationCount"]) == ("ESCALATED", 1)
    again = await act(gql, workflow, "ESCALATE", reason="still")
    assert again["errors"] == [
        {"code": "DG_ERR_CONFLICT", "message": f"Workflow {workflow} is already escalated"}
    ]
    detail = (await gql.data(DETAIL, {"id": workflow}))["workflow"]
    assert [h["action"] for h in detail["history"]] == [
        "requested", "claim", "comment", "request_changes", "reassign", "escalate",
    ]  # fmt: skip
    assert {n["category"] for n in detail["notifications"]} == {"assignment", "escalation"}
    decided = await gql.data(REVIEW, {"id": workflow, "d": "APPROVE", "why": "CFO agreed"})
    assert decided["reviewWorkflow"]["workflow"]["status"] == "APPROVED"
    late = await act(gql, workflow, "CLAIM")
    assert late["errors"][0]["message"] == f"Workflow {workflow} is already approved"
    note = await act(gql, workflow, "COMMENT", note="for the record")
    assert note["errors"] == [] and note["workflow"]["status"] == "APPROVED"


async def test_a_retried_request_applies_once(gql: GraphQLClient, worker: object) -> None:
    """A client that lost the answer sends the same requestId again: the action or decision
    is not repeated, and the retry is not refused although the workflow has moved on."""
    workflow = await opened(gql)
    claim = """mutation($id: String!, $req: String) { workflowAction(workflowId: $id,
      action: CLAIM, requestId: $req) { workflow { status } errors { code message } } }"""
    comment = """mutation($id: String!, $req: String) { workflowAction(workflowId: $id,
      action: COMMENT, note: "checked margins", requestId: $req) {
      workflow { status } errors { code } } }"""
    decide = """mutation($id: String!, $req: String) { reviewWorkflow(workflowId: $id,
      decision: APPROVE, rationale: "fine", requestId: $req) {
      workflow { status } appendedEventId errors { code message } } }"""
    for _ in range(2):
        result = (await gql.data(claim, {"id": workflow, "req": "claim-1"}))["workflowAction"]
        assert result == {"workflow": {"status": "IN_REVIEW"}, "errors": []}
        result = (await gql.data(comment, {"id": workflow, "req": "note-1"}))["workflowAction"]
        assert result["errors"] == []
    # Without a requestId, the same comment again is a second comment.
    assert (await act(gql, workflow, "COMMENT", note="checked margins"))["errors"] == []
    first = (await gql.data(decide, {"id": workflow, "req": "decide-1"}))["reviewWorkflow"]
    again = (await gql.data(decide, {"id": workflow, "req": "decide-1"}))["reviewWorkflow"]
    assert first["errors"] == again["errors"] == []
    assert again["appendedEventId"] == first["appendedEventId"]
    assert again["workflow"]["status"] == "APPROVED"
    other = (await gql.data(decide, {"id": workflow, "req": "decide-2"}))["reviewWorkflow"]
    assert other["errors"][0]["code"] == "DG_ERR_CONFLICT"
    history = (await gql.data(DETAIL, {"id": workflow}))["workflow"]["history"]
    assert [h["action"] for h in history] == [
        "requested", "claim", "comment", "comment", "approve"
    ]  # fmt: skip


async def test_override_needs_admin_the_phrase_and_an_exception_review(
    gql: GraphQLClient, worker: object, http: httpx.AsyncClient, settings: Settings, tenant: str
) -> None:
    workflow = await opened(gql)
    reviewer = GraphQLClient(http, await key(settings, tenant, "reviewer"), tenant)
    forbidden = await act(reviewer, workflow, "OVERRIDE", reason="x", confirm="whatever")
    assert forbidden["errors"][0]["code"] == "DG_ERR_FORBIDDEN"
    wrong = await act(gql, workflow, "OVERRIDE", reason="exec call", confirm="OVERRIDE")
    assert wrong["errors"][0]["code"] == "DG_ERR_INVALID_ARGUMENT"
    assert f"OVERRIDE {workflow.upper()}" in wrong["errors"][0]["message"]
    done = await act(
        gql, workflow, "OVERRIDE", reason="exec call", confirm=f"OVERRIDE {workflow.upper()}"
    )
    assert done["errors"] == [] and done["workflow"]["status"] == "OVERRIDDEN"
    assert done["workflow"]["currentDecision"] == "override_approved"
    review = await gql.data(START, {"t": "r1", "tpl": "incident_triage", "why": "look"})
    incident = review["startTraceReview"]["workflow"]["workflowId"]
    refused = await act(
        gql, incident, "OVERRIDE", reason="x", confirm=f"OVERRIDE {incident.upper()}"
    )
    assert refused["errors"][0]["message"] == (
        "Override is only supported for exception review workflows"
    )


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("unknown workflow", "DG_ERR_NOT_FOUND"),
        ("missing reason", "DG_ERR_INVALID_ARGUMENT"),
        ("reader key", "DG_ERR_FORBIDDEN"),
        ("foreign tenant", "DG_ERR_NOT_FOUND"),
        ("key without the tenant", "DG_ERR_FORBIDDEN"),
    ],
)
async def test_bad_requests_get_their_codes(
    gql: GraphQLClient,
    worker: object,
    http: httpx.AsyncClient,
    settings: Settings,
    tenant: str,
    case: str,
    code: str,
) -> None:
    workflow = await opened(gql)
    client, target, variables = gql, workflow, {"a": "ESCALATE", "reason": "late"}
    if case == "unknown workflow":
        target = "r1:exception:nope"
    elif case == "missing reason":
        variables = {"a": "ESCALATE"}
    elif case == "reader key":
        client = GraphQLClient(http, await key(settings, tenant, "reader"), tenant)
    elif case == "foreign tenant":
        other = new_tenant()
        client = GraphQLClient(http, await key(settings, other, "admin"), other)
    else:
        client = GraphQLClient(http, await key(settings, new_tenant(), "admin"), tenant)
    result = (await client.data(ACT, {"id": target} | variables))["workflowAction"]
    assert result["workflow"] is None
    assert result["errors"][0]["code"] == code
    review = await client.data(
        REVIEW, {"id": target, "d": "APPROVE", "why": "" if case == "missing reason" else "ok"}
    )
    assert review["reviewWorkflow"]["errors"][0]["code"] == code


async def test_a_trace_review_opens_once_and_works_on_finished_traces(
    gql: GraphQLClient, worker: object
) -> None:
    await gql.append_ok([*renewal("r2"), finished("r2", 4, outcome="failure")])
    first = (await gql.data(START, {"t": "r2", "tpl": None, "why": "why did it fail?"}))[
        "startTraceReview"
    ]
    assert first["errors"] == [] and first["created"] is True
    assert first["workflow"]["workflowId"] == "r2:trace_review:exception_follow_up"
    assert (first["workflow"]["kind"], first["workflow"]["status"]) == (
        "INCIDENT_REVIEW",
        "REQUESTED",
    )
    again = (await gql.data(START, {"t": "r2", "tpl": None, "why": "again"}))["startTraceReview"]
    assert again["created"] is False
    assert again["workflow"]["workflowId"] == first["workflow"]["workflowId"]
    missing = (await gql.data(START, {"t": "nope", "tpl": None, "why": "x"}))["startTraceReview"]
    assert missing["errors"][0]["code"] == "DG_ERR_NOT_FOUND"
    bad = (await gql.data(START, {"t": "r2", "tpl": "nope", "why": "x"}))["startTraceReview"]
    assert bad["errors"][0]["code"] == "DG_ERR_INVALID_ARGUMENT"
    empty = (await gql.data(START, {"t": "r2", "tpl": None, "why": "  "}))["startTraceReview"]
    assert empty["errors"][0]["code"] == "DG_ERR_INVALID_ARGUMENT"


async def test_templates_and_the_dry_run(gql: GraphQLClient, worker: object) -> None:
    templates = await gql.data("{ workflowTemplates { templateId kind defaultSlaHours } }")
    assert [t["templateId"] for t in templates["workflowTemplates"]] == [
        "incident_triage", "exception_follow_up", "precedent_gap_review",
    ]  # fmt: skip
    await gql.append_ok([started("d1"), finished("d1", 1, outcome="failure")])
    sim = await gql.data(
        """{ policySimulation(traceId: "d1") { riskSignals priority draftWorkflowId
             template { templateId } replaySuggestion { mode projection } } }"""
    )
    assert sim["policySimulation"]["riskSignals"] == ["unfavorable outcome", "no close precedents"]
    assert sim["policySimulation"]["priority"] == "urgent"
    assert sim["policySimulation"]["template"]["templateId"] == "incident_triage"


async def test_audit_export_verifies_offline_and_catches_tampering(
    gql: GraphQLClient, worker: object
) -> None:
    workflow = await opened(gql)
    await act(gql, workflow, "COMMENT", note="checked")
    await gql.data(REVIEW, {"id": workflow, "d": "APPROVE", "why": "fine"})
    await gql.append_ok([finished("r1", 5)])
    for query, variables in [
        ("query($w: String) { auditExport(workflowId: $w) }", {"w": workflow}),
        ("query($t: String) { auditExport(traceId: $t) }", {"t": "r1"}),
    ]:
        bundle = (await gql.data(query, variables))["auditExport"]
        assert verify_bundle(bundle) == []
        assert bundle["audit_summary"] == {
            "event_count": 6, "workflow_count": 1, "action_count": 3, "open_workflows": 0,
        }  # fmt: skip
    tampered = json.loads(json.dumps(bundle))
    tampered["traces"][0]["events"][3]["payload"]["reason"] = "something else"
    problems = verify_bundle(tampered)
    assert any("payload hash" in p for p in problems)
    relabelled = json.loads(json.dumps(bundle))
    relabelled["workflows"][0]["status"] = "rejected"
    assert verify_bundle(relabelled)  # the bundle digest no longer matches


async def test_workflows_rebuild_and_verify_like_any_projection(
    gql: GraphQLClient, worker: object
) -> None:
    workflow = await opened(gql)
    await act(gql, workflow, "CLAIM")
    await act(gql, workflow, "COMMENT", note="journal entries replay too")
    digest = "{ projectionHealth { digests { workflows } } }"
    before = (await gql.data(digest))["projectionHealth"]["digests"]["workflows"]
    for mode in ("REBUILD", "VERIFY"):
        run = await gql.data(
            f"""mutation {{ requestReplay(projection: WORKFLOWS, mode: {mode}, reason: "check")
                {{ replay {{ replayId }} errors {{ code }} }} }}"""
        )
        replay_id = run["requestReplay"]["replay"]["replayId"]
        for _ in range(200):
            state = await gql.data(
                """query($id: String!) { replay(replayId: $id) { status digestsMatch
                   actualDigests { workflows } } }""",
                {"id": replay_id},
            )
            if state["replay"]["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
                break
            await asyncio.sleep(0.05)
        assert state["replay"]["status"] == "COMPLETED"
        if mode == "VERIFY":
            assert state["replay"]["digestsMatch"] is True
            assert state["replay"]["actualDigests"]["workflows"] == before
    after = (await gql.data(digest))["projectionHealth"]["digests"]["workflows"]
    assert after == before
    detail = (await gql.data(DETAIL, {"id": workflow}))["workflow"]
    assert [h["action"] for h in detail["history"]] == ["requested", "claim", "comment"]


class _CrashingWorkflows(PostgresWorkflows):
    """Fails its second batch, as a worker killed in the middle of a rebuild would."""

    calls = 0

    async def _batch(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("worker gone")
        return await super()._batch(*args, **kwargs)


async def test_a_workflow_rebuild_that_dies_halfway_leaves_the_projection_as_it_was(
    gql: GraphQLClient, worker: object, pool: asyncpg.Pool, tenant: str
) -> None:
    """REBUILD clears the workflow projection and replays it in one transaction: dying
    after its first batch must leave the old projection, not an empty or partial one."""
    first = await opened(gql, "w1")
    second = await opened(gql, "w2")
    await act(gql, first, "CLAIM")
    digest = "{ projectionHealth { projectedTo digests { workflows } } }"
    before = (await gql.data(digest))["projectionHealth"]
    crashing = _CrashingWorkflows(pool, batch_size=1)  # one decision event a batch
    with pytest.raises(StorageError, match="worker gone"):  # the store's error tree
        await crashing.rebuild(tenant)
    assert crashing.calls == 2
    assert (await gql.data(digest))["projectionHealth"] == before
    for workflow in (first, second):
        assert (await gql.data(DETAIL, {"id": workflow}))["workflow"]["workflowId"] == workflow
    rebuilt = await PostgresWorkflows(pool, batch_size=1).rebuild(tenant)
    assert rebuilt.failure is None and rebuilt.applied > 1
    assert (await gql.data(digest))["projectionHealth"] == before


async def test_at_least_on_the_inbox_waits_for_the_precedent_index_too(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    """A fresh review must not show 'no precedent' because the precedent index lags the
    workflow projection: `atLeast` covers every projection the read shows."""
    await gql.append_ok([*renewal("p-2025"), finished("p-2025", 4)])  # the precedent
    stored = await gql.append_ok(renewal("p-2026"))
    projections = PostgresProjections(pool)
    while (await projections.catch_up(tenant, projections=[WORKFLOWS])).more:
        pass  # only the workflow projection is current; no worker runs here
    query = """query($n: Long) { workflows(onlyOpen: true, atLeast: $n) { edges { node {
               traceId precedents { traceId outcome } } } } }"""
    lagging = await gql.execute(query, {"n": stored[-1]["logSeq"]})
    assert lagging["errors"][0]["extensions"]["code"] == "DG_ERR_PROJECTION_OUT_OF_DATE"
    while (await projections.catch_up(tenant)).more:
        pass
    data = await gql.data(query, {"n": stored[-1]["logSeq"]})
    nodes = {e["node"]["traceId"]: e["node"] for e in data["workflows"]["edges"]}
    assert nodes["p-2026"]["precedents"] == [{"traceId": "p-2025", "outcome": "success"}]


async def test_decision_events_are_found_by_type_not_by_reading_the_whole_window(
    gql: GraphQLClient, worker: object, pool: asyncpg.Pool, tenant: str
) -> None:
    """The workflow projection reads only the decision events of a window of the log, in
    log order, across their types. It must find them by the log's (tenant, type, position)
    index: walking the window by position and filtering read every event of it (a
    REBUILD of a 10,000-event log read all 10,000 rows to find a handful)."""
    from server.store import workflows as store

    first = await opened(gql, "d1")
    await gql.append_ok([input_observed("d1", n) for n in range(4, 40)])
    await gql.data(REVIEW, {"id": first, "d": "APPROVE", "why": "Strategic", "ev": []})
    await opened(gql, "d2")
    async with pool.acquire() as conn:
        await conn.execute("ANALYZE dg_event_log")  # statistics as a live log has them
        end = await conn.fetchval(
            "SELECT max(log_seq) FROM dg_event_log WHERE tenant_id = $1", tenant
        )
        kinds = sorted(DECISION_EVENT_TYPES)
        everything = await conn.fetch(store._DECISIONS, tenant, 0, end, kinds, 100)
        found = [(r["trace_id"], r["event_type"]) for r in everything]
        assert found == [
            ("d1", "ExceptionRequested"),
            ("d1", "ApprovalRecorded"),
            ("d2", "ExceptionRequested"),
        ]
        assert [r["log_seq"] for r in everything] == sorted(r["log_seq"] for r in everything)
        first_two = await conn.fetch(store._DECISIONS, tenant, 0, end, kinds, 2)
        assert [r["log_seq"] for r in first_two] == [r["log_seq"] for r in everything[:2]]
        after_first = await conn.fetch(
            store._DECISIONS, tenant, everything[0]["log_seq"], end, kinds, 100
        )
        assert after_first == everything[1:]
        plan = "\n".join(
            r[0]
            for r in await conn.fetch(f"EXPLAIN {store._DECISIONS}", tenant, 0, end, kinds, 100)
        )
    assert "dg_event_log_by_type" in plan and "dg_event_log_pkey" not in plan, plan
