"""The workflow state machine (spec/platform.md §4.3/§4.4) as pure functions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.core import workflow as wf
from server.core.envelope import ActorRef, SourceRef, StoredEvent
from server.core.errors import DecisionGraphError

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
_seq = iter(range(1, 10_000))


def event(
    event_type: str,
    payload: dict[str, Any],
    trace: str = "t",
    occurred: str = "2026-11-21T10:00:00Z",
) -> StoredEvent:
    n = next(_seq)
    return StoredEvent(
        log_seq=n,
        event_id=f"e-{n}",
        trace_id=trace,
        trace_seq=n,
        event_type=event_type,
        occurred_at=occurred,
        recorded_at=occurred,
        source=SourceRef("p", "s", None),
        actor=ActorRef("agent", "bot"),
        idempotency_key=f"k-{n}",
        payload=payload,
        payload_hash="sha256:x",
    )


def exception_requested(trace: str = "t", **extra: Any) -> StoredEvent:
    payload = {
        "exception_id": "ex-1",
        "policy": {"policy_id": "cap", "policy_version": "1"},
        "reason": "needs approval",
    } | extra
    return event("ExceptionRequested", payload, trace)


def opened(status: str = wf.REQUESTED, kind: str = wf.EXCEPTION_REVIEW) -> wf.WorkflowItem:
    step = wf.apply_event({}, exception_requested(), wf.TraceInfo("Renewal", "revenue"))
    assert step.item is not None
    return replace(step.item, status=status, kind=kind)


def entry(
    kind: str, data: dict[str, Any], position: int = 5, journal_id: int = 1
) -> wf.JournalEntry:
    return wf.JournalEntry(
        journal_id,
        position,
        kind,
        "t:exception:ex-1",
        "ann",
        "api_key",
        "key-ann",
        data,
        "2026-11-21T11:00:00.000000Z",
    )


MANUAL = {
    wf.CLAIM: {},
    wf.COMMENT: {"note": "looks fine"},
    wf.REQUEST_CHANGES: {"reason": "attach the quote"},
    wf.REASSIGN: {"assigned_role": "finance"},
    wf.ESCALATE: {"reason": "needs the CFO"},
}
CONFLICT = "DG_ERR_CONFLICT"
# from status -> action -> resulting status, or CONFLICT (spec §4.3, `in_review` reachable
# by CLAIM)
TRANSITIONS = {
    status: {
        wf.CLAIM: wf.IN_REVIEW,
        wf.COMMENT: status,
        wf.REQUEST_CHANGES: wf.CHANGES_REQUESTED,
        wf.REASSIGN: status,
        wf.ESCALATE: CONFLICT if status == wf.ESCALATED else wf.ESCALATED,
    }
    for status in wf.OPEN
} | {
    status: {action: status if action == wf.COMMENT else CONFLICT for action in MANUAL}
    for status in wf.TERMINAL
}


@pytest.mark.parametrize(
    ("status", "action"),
    [(s, a) for s in wf.STATUSES for a in MANUAL],
    ids=[f"{s}-{a}" for s in wf.STATUSES for a in MANUAL],
)
def test_every_manual_transition_of_the_table(status: str, action: str) -> None:
    item = opened(status)
    expected = TRANSITIONS[status][action]
    if expected == CONFLICT:
        with pytest.raises(DecisionGraphError) as refused:
            wf.check_action(item, action, MANUAL[action])
        assert refused.value.code == CONFLICT
        assert refused.value.message == (
            f"Workflow {item.workflow_id} is already {status}"
            if status in wf.TERMINAL
            else f"Workflow {item.workflow_id} is already escalated"
        )
        return
    cleaned = wf.check_action(item, action, MANUAL[action])
    step = wf.apply_entry(item, entry(action, cleaned))
    assert step.item is not None and step.item.status == expected
    assert [a.action_type for a in step.actions] == [action]
    assert step.actions[0].resulting_status == expected


@pytest.mark.parametrize("status", wf.STATUSES)
@pytest.mark.parametrize("decision", [wf.APPROVE, wf.REJECT, wf.OVERRIDE])
def test_decisions_are_allowed_on_open_items_only(status: str, decision: str) -> None:
    item = opened(status)
    if status in wf.TERMINAL:
        with pytest.raises(DecisionGraphError) as refused:
            wf.check_decision(item, decision, "because")
        assert refused.value.code == CONFLICT
    else:
        assert wf.check_decision(item, decision, "  because  ") == "because"


def test_a_decision_needs_a_rationale() -> None:
    with pytest.raises(DecisionGraphError) as refused:
        wf.check_decision(opened(), wf.APPROVE, "   ")
    assert (refused.value.code, refused.value.message) == (
        "DG_ERR_INVALID_ARGUMENT",
        "A rationale is required",
    )


def test_override_is_for_exception_reviews_only() -> None:
    with pytest.raises(DecisionGraphError) as refused:
        wf.check_decision(opened(kind=wf.INCIDENT_REVIEW), wf.OVERRIDE, "r")
    assert refused.value.message == "Override is only supported for exception review workflows"


def test_the_override_phrase_names_the_workflow_in_upper_case() -> None:
    assert wf.override_phrase("t:exception:ex-1") == "OVERRIDE T:EXCEPTION:EX-1"


@pytest.mark.parametrize(
    ("action", "given", "message"),
    [
        (wf.COMMENT, {}, "A comment needs a note"),
        (wf.REQUEST_CHANGES, {"note": "x"}, "Requesting changes needs a reason"),
        (wf.ESCALATE, {"reason": "  "}, "Escalating needs a reason"),
        (wf.REASSIGN, {}, "Reassigning needs an account or a role"),
        (wf.REASSIGN, {"assigned_role": "admin"}, "is already assigned to role admin"),
        ("dance", {}, "Unknown workflow action 'dance'"),
        (wf.COMMENT, {"note": "x", "evidence": "a link"}, "evidence must be a list"),
    ],
)
def test_missing_or_bad_input_is_refused(action: str, given: dict[str, Any], message: str) -> None:
    with pytest.raises(DecisionGraphError) as refused:
        wf.check_action(opened(), action, given)
    assert refused.value.code == "DG_ERR_INVALID_ARGUMENT"
    assert message in refused.value.message


def test_an_exception_request_opens_a_review_with_its_sla_and_notice() -> None:
    step = wf.apply_event({}, exception_requested(), wf.TraceInfo("Renewal", "revenue"))
    item = step.item
    assert item is not None
    assert item.workflow_id == "t:exception:ex-1"
    assert (item.kind, item.name, item.title) == (wf.EXCEPTION_REVIEW, "revenue", "Renewal")
    assert (item.status, item.priority, item.assigned_role) == (wf.REQUESTED, "high", "admin")
    assert item.sla_due_at == "2026-11-21T14:00:00Z"  # occurred_at + 4 h
    assert [n.category for n in step.notifications] == ["assignment"]
    assert [a.action_type for a in step.actions] == ["requested"]


@pytest.mark.parametrize(
    ("extra", "priority"),
    [({}, "high"), ({"reason": "URGENT: quarter ends"}, "urgent"), ({"priority": "low"}, "low")],
)
def test_priority_comes_from_the_payload_then_the_reason(
    extra: dict[str, Any], priority: str
) -> None:
    step = wf.apply_event({}, exception_requested(**extra), None)
    assert step.item is not None and step.item.priority == priority


def test_approval_rejection_and_override_close_reviews() -> None:
    item = opened()
    items = {item.workflow_id: item}
    subject = {"subject_type": "exception", "subject_id": "ex-1"}
    approver = {"actor_type": "person", "actor_id": "maya"}
    for decision, subject_used, status in [
        ("approved", subject, wf.APPROVED),
        ("rejected", subject, wf.REJECTED),
        ("approved", {"subject_type": "override", "subject_id": item.workflow_id}, wf.OVERRIDDEN),
    ]:
        payload = {"approval_id": "a", "decision": decision, "subject": subject_used,
                   "approver": approver, "reason": "ok"}  # fmt: skip
        step = wf.apply_event(items, event("ApprovalRecorded", payload), None)
        assert step.item is not None and step.item.status == status
        assert step.item.metadata["evidence"] == []  # the request's evidence is kept apart
        assert step.actions[0].actor_id == "maya"


def test_decisions_from_a_review_trace_land_on_the_reviewed_trace() -> None:
    item = opened(status=wf.REQUESTED)
    payload = {
        "approval_id": "a",
        "decision": "approved",
        "subject": {"subject_type": "exception", "subject_id": "ex-1"},
        "approver": {"actor_type": "person", "actor_id": "maya"},
        "reviewed_trace_id": "t",
    }
    step = wf.apply_event(
        {item.workflow_id: item}, event("ApprovalRecorded", payload, "review:t"), None
    )
    assert step.item is not None and step.item.workflow_id == "t:exception:ex-1"
    assert step.item.status == wf.APPROVED
    forged = event("ApprovalRecorded", payload, "other-trace")  # only review:<t> may speak for t
    assert wf.apply_event({}, forged, None).item.workflow_id == "other-trace:exception:ex-1"  # type: ignore[union-attr]


def test_a_repeated_request_reopens_only_a_review_that_asked_for_changes() -> None:
    for status, expected in [
        (wf.CHANGES_REQUESTED, wf.REQUESTED),
        (wf.ESCALATED, wf.ESCALATED),
        (wf.APPROVED, wf.APPROVED),
    ]:
        item = opened(status)
        step = wf.apply_event({item.workflow_id: item}, exception_requested(), None)
        assert step.item is not None and step.item.status == expected
        assert step.actions[0].action_type == "re_requested"


def test_the_sla_timer_escalates_overdue_items_once_and_warns_close_ones() -> None:
    item = replace(opened(), sla_due_at="2026-11-21T11:59:00Z")
    assert wf.timer_kind(item, NOW, warned=False) == wf.SLA_ESCALATE
    escalated = wf.apply_entry(item, entry(wf.SLA_ESCALATE, {})).item
    assert escalated is not None and escalated.status == wf.ESCALATED
    assert escalated.metadata["escalation_reason"] == "SLA deadline passed"
    assert escalated.metadata["previous_assignment"] == {
        "assigned_account_id": None,
        "assigned_role": "admin",
    }
    assert wf.timer_kind(escalated, NOW, warned=False) is None  # never re-escalated
    soon = replace(opened(), sla_due_at="2026-11-21T12:20:00Z")
    assert wf.timer_kind(soon, NOW, warned=False) == wf.DEADLINE_RISK
    assert wf.timer_kind(soon, NOW, warned=True) is None
    later = replace(opened(), sla_due_at="2026-11-21T13:00:00Z")
    assert wf.timer_kind(later, NOW, warned=False) is None
    decided = replace(opened(wf.APPROVED), sla_due_at="2026-11-21T11:00:00Z")
    assert wf.timer_kind(decided, NOW, warned=False) is None


def test_claim_puts_the_item_in_review_with_the_claimer() -> None:
    step = wf.apply_entry(opened(), entry(wf.CLAIM, {"note": None, "evidence": []}))
    assert step.item is not None
    assert (step.item.status, step.item.assigned_account_id) == (wf.IN_REVIEW, "key-ann")


def test_evidence_keeps_objects_and_wraps_everything_else() -> None:
    assert wf.normalize_evidence([{"locator": "crm://1"}, "a note", 7]) == [
        {"locator": "crm://1"},
        {"value": "a note"},
        {"value": "7"},
    ]


def test_the_fold_merges_journal_entries_after_their_position() -> None:
    request = exception_requested()
    approval = event(
        "ApprovalRecorded",
        {
            "approval_id": "a",
            "decision": "approved",
            "subject": {"subject_type": "exception", "subject_id": "ex-1"},
            "approver": {"actor_type": "person", "actor_id": "m"},
        },
    )
    comment = entry(wf.COMMENT, {"note": "n", "evidence": []}, position=request.log_seq)
    result = wf.fold({}, [approval, request], [comment], {})  # given out of order
    assert [a.action_type for a in result.actions] == ["requested", "comment", "approve"]


def test_simulation_counts_failure_as_unfavourable() -> None:
    sim = wf.simulate("t", "Delta", "failure", True, False, ["success"])
    assert "unfavorable outcome" in sim.risk_signals
    assert sim.priority == "urgent"
    assert sim.template.template_id == "incident_triage"
    assert sim.workflow_id == "t:trace_review:incident_triage"
    live = wf.simulate("t", "Acme", None, False, True, ["success"])
    assert live.risk_signals == ("exception requested", "trace still active")
    assert live.template.template_id == "exception_follow_up"
    calm = wf.simulate("t", "Calm", "success", True, False, [])
    assert (calm.risk_signals, calm.priority) == (("no close precedents",), "normal")


def test_the_inbox_puts_overdue_first_then_priority_then_age() -> None:
    base = opened()
    late = replace(base, workflow_id="b", sla_due_at="2026-11-21T11:00:00Z", priority="low")
    urgent = replace(base, workflow_id="c", sla_due_at="2026-11-22T00:00:00Z", priority="urgent")
    old = replace(urgent, workflow_id="d", requested_at="2026-11-20T00:00:00Z")
    ordered = sorted([urgent, late, old], key=lambda i: wf.inbox_order(i, NOW))
    assert [i.workflow_id for i in ordered] == ["b", "d", "c"]


def test_in_memory_rebuild_is_deterministic() -> None:
    events = [exception_requested("x"), exception_requested("y")]
    first = wf.rebuild_in_memory(events)[1]
    assert first == wf.rebuild_in_memory(list(events))[1]
    assert first.startswith("sha256:")
    assert datetime.fromisoformat("2026-11-21T14:00:00+00:00") - NOW == timedelta(hours=2)
