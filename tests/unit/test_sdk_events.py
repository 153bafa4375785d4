"""The SDK's typed builders produce exactly the envelopes spec/platform.md §7 lists.

The release demo's 22 events are rebuilt here with the SDK helpers (its natural way of
writing them) and compared with the literal events of server/demo/release_demo.py, which
transcribe the spec's tables. So every helper's payload shape is checked against the spec,
not against itself.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from decisiongraph.sdk import (
    Actor,
    Change,
    Entity,
    Event,
    Fact,
    Policy,
    Source,
    SourceObject,
    Trace,
    evidence,
)
from server.demo.release_demo import INCIDENT, LIVE, PRECEDENT, release_demo_events
from tests.support import to_input

AS_OF = "2026-03-07T10:00:00Z"
CAP = Policy("discount-cap", "2026.03")
SEED = Source("release-demo", "decisiongraph", "seed")
POLICY = Source("policy-engine", "decisiongraph", "policy")
FINANCE = Source("finance-review", "decisiongraph", "workflow")


def demo_trace(trace_id: str) -> Trace:
    return Trace(
        trace_id,
        SEED,
        Actor.system("phase10-seeder"),
        correlation_id=f"phase10:{trace_id}",
        tags=("phase10", "release-demo"),
    )


def as_demo(trace: Trace, event: Event) -> Event:
    """The demo's own identities (the SDK's defaults differ on purpose: see below)."""
    snake = "".join("_" + c.lower() if c.isupper() else c for c in event.event_type)[1:]
    return replace(
        event,
        event_id=f"{trace.trace_id}-{snake}-{event.trace_seq}",
        idempotency_key=f"{event.event_type.lower()}:{trace.trace_id}:{event.trace_seq}",
    )


def facts(**values: Any) -> list[Fact]:
    return [Fact.of(key, value, AS_OF) for key, value in values.items()]


def precedent() -> list[Event]:
    t = demo_trace(PRECEDENT)
    at = "2026-03-06T09:0{}:00Z".format
    events = [
        t.started(
            "revenue_exception",
            "Approved renewal precedent for Acme Platform",
            Entity("account", "acct-acme-platform", "crm"),
            occurred_at=at(0),
        ),
        t.input_observed(
            "input:revops:precedent:001",
            SourceObject("crm", "opportunity", "oppty-acme-renewal-2026-001"),
            facts(
                requested_discount_pct=18, annual_contract_value_usd=540000, sales_stage="renewal"
            ),
            occurred_at=at(1),
        ),
        t.entity_observed(
            Entity("contract", "contract-acme-multi-year", "billing"),
            facts(term_months=36, segment="enterprise"),
            occurred_at=at(2),
        ),
    ]
    events.append(
        t.policy_evaluated(
            CAP,
            ["input:revops:precedent:001"],
            "require_exception",
            violations=["discount_threshold"],
            explanation="Discount exceeds standard renewal cap but strategic value is high.",
            occurred_at=at(3),
            source=POLICY,
            causation_event_id=f"{PRECEDENT}-input_observed-1",
        )
    )
    events.append(
        t.exception_requested(
            "ex-precedent-renewal-001",
            CAP,
            "Strategic renewal needed finance approval above the standard cap.",
            evidence=evidence(
                "crm://opportunity/oppty-acme-renewal-2026-001",
                "policy://discount-cap/2026.03#threshold",
            ),
            occurred_at=at(4),
            source=POLICY,
            causation_event_id=f"{PRECEDENT}-policy_evaluated-3",
        )
    )
    events.append(
        t.approval_recorded(
            "approval:precedent:001",
            "ex-precedent-renewal-001",
            Actor.person("finance-maya"),
            "approved",
            reason="Renewal is strategic and margin floor remains acceptable.",
            evidence=evidence("review://finance/acme-renewal-001"),
            occurred_at=at(6),
            source=FINANCE,
            causation_event_id=f"{PRECEDENT}-exception_requested-4",
        )
    )
    events.append(
        t.action_proposed(
            "action:precedent:001",
            "update",
            Entity("opportunity", "oppty-acme-renewal-2026-001", "crm"),
            "crm",
            [Change("discount_pct", 18, old_value=12)],
            occurred_at=at(7),
            causation_event_id=f"{PRECEDENT}-approval_recorded-5",
        )
    )
    events.append(
        t.action_committed(
            "action:precedent:001",
            "success",
            external_reference="crm-sync-2001",
            occurred_at=at(8),
            causation_event_id=f"{PRECEDENT}-action_proposed-6",
        )
    )
    events.append(
        t.finished(
            "success",
            summary="Acme renewal approved with finance exception.",
            occurred_at=at(9),
            causation_event_id=f"{PRECEDENT}-action_committed-7",
        )
    )
    return [as_demo(t, e) for e in events]  # fmt: skip


def incident() -> list[Event]:
    t = demo_trace(INCIDENT)
    at = "2026-03-07T08:3{}:00Z".format
    events = [
        t.started(
            "revenue_exception",
            "Rejected renewal review for Delta Logistics",
            Entity("account", "acct-delta-logistics", "crm"),
            occurred_at=at(0),
        ),
        t.input_observed(
            "input:revops:incident:003",
            SourceObject("crm", "opportunity", "oppty-delta-renewal-2026-003"),
            facts(
                requested_discount_pct=26, annual_contract_value_usd=110000, sales_stage="renewal"
            ),
            occurred_at=at(1),
        ),
        t.policy_evaluated(
            CAP,
            ["input:revops:incident:003"],
            "require_exception",
            violations=["discount_threshold"],
            explanation="Requested discount exceeds guardrail and precedent confidence is weak.",
            occurred_at=at(2),
            source=POLICY,
            causation_event_id=f"{INCIDENT}-input_observed-1",
        ),
        t.exception_requested(
            "ex-incident-review-003",
            CAP,
            "Sales requested a discount above policy for a price-sensitive renewal.",
            evidence=evidence("crm://opportunity/oppty-delta-renewal-2026-003"),
            occurred_at=at(3),
            source=POLICY,
            causation_event_id=f"{INCIDENT}-policy_evaluated-2",
        ),
        t.approval_recorded(
            "approval:incident:003",
            "ex-incident-review-003",
            Actor.person("finance-owen"),
            "rejected",
            reason="Margin would fall below the approved floor for this account.",
            occurred_at=at(6),
            source=FINANCE,
            causation_event_id=f"{INCIDENT}-exception_requested-3",
        ),
        t.review_requested(
            "Incident review for Delta Logistics rejection",
            "Review why the Delta renewal could not be approved and capture operator guidance.",
            simulation={
                "current_outcome": "failure",
                "precedent_trace_ids": [PRECEDENT],
                "risk_signals": ["rejected_exception", "high_discount"],
            },
            occurred_at=at(7),
            source=Source("operator-console", "decisiongraph", "workflow"),
            causation_event_id=f"{INCIDENT}-approval_recorded-4",
        ),
        t.finished(
            "failure",
            summary="Delta renewal rejected after finance review.",
            occurred_at=at(8),
            causation_event_id=f"{INCIDENT}-workflow_review_requested-5",
        ),
    ]
    return [as_demo(t, e) for e in events]  # fmt: skip


def live() -> list[Event]:
    t = demo_trace(LIVE)
    at = "2026-03-07T10:0{}:00Z".format
    events = [
        t.started(
            "revenue_exception",
            "Live renewal exception review for Acme Platform",
            Entity("account", "acct-acme-platform", "crm"),
            occurred_at=at(0),
        ),
        t.input_observed(
            "input:revops:live:002",
            SourceObject("crm", "opportunity", "oppty-acme-renewal-2026-002"),
            facts(
                requested_discount_pct=21, annual_contract_value_usd=620000, sales_stage="renewal"
            ),
            occurred_at=at(1),
        ),
        t.entity_observed(
            Entity("quote", "quote-acme-renewal-2026-002", "quoting"),
            facts(quote_status="needs_exception", currency="USD"),
            occurred_at=at(2),
        ),
        t.policy_evaluated(
            CAP,
            ["input:revops:live:002"],
            "require_exception",
            violations=["discount_threshold"],
            explanation="Discount is above the standard cap but historical enterprise renewals "
            "suggest approval is possible.",
            occurred_at=at(3),
            source=POLICY,
            causation_event_id=f"{LIVE}-input_observed-1",
        ),
        t.exception_requested(
            "ex-live-renewal-002",
            CAP,
            "Strategic enterprise renewal requires manual review above the cap.",
            evidence=evidence(
                "crm://opportunity/oppty-acme-renewal-2026-002",
                "quote://quote-acme-renewal-2026-002",
            ),
            occurred_at=at(4),
            source=POLICY,
            causation_event_id=f"{LIVE}-policy_evaluated-3",
        ),
        t.precedent_cited(
            PRECEDENT,
            "Matches strategic renewal posture with a similar approved exception.",
            similarity_score="0.92",
            occurred_at=at(5),
            source=Source("precedent-engine", "decisiongraph", "query"),
            causation_event_id=f"{LIVE}-exception_requested-4",
        ),
    ]
    return [as_demo(t, e) for e in events]  # fmt: skip


def test_the_sdk_builds_the_release_demo_exactly_as_the_spec_lists_it() -> None:
    built = [e.to_input() for e in precedent() + incident() + live()]
    expected = [to_input(e) for e in release_demo_events()]
    assert len(built) == 22
    for ours, theirs in zip(built, expected, strict=True):
        assert ours == theirs, ours["eventId"]


def test_identities_are_fixed_when_an_event_is_built() -> None:
    trace = Trace("t-1", SEED, Actor.agent("bot"))
    started = trace.started("w", "title", Entity("account", "a"))
    observed = trace.input_observed("i", SourceObject("crm", "o", "1"), [])
    assert (started.trace_seq, observed.trace_seq, trace.next_seq) == (0, 1, 2)
    assert started.idempotency_key == "t-1:0:TraceStarted"
    assert observed.idempotency_key == "t-1:1:InputObserved"
    # Sending the same Event again sends the same identity: a retry is an idempotent replay.
    assert started.to_input() == started.to_input()
    # A re-run of a deterministic agent derives the same keys (the event ids may differ; the
    # platform does not compare them on an idempotent hit).
    again = Trace("t-1", SEED, Actor.agent("bot"))
    assert (
        again.started("w", "title", Entity("account", "a")).idempotency_key == "t-1:0:TraceStarted"
    )


def test_a_trace_starts_once_and_bad_values_are_refused_locally() -> None:
    trace = Trace("t-2", SEED, Actor.agent("bot"))
    trace.started("w", "title", Entity("account", "a"))
    with pytest.raises(ValueError, match="already started"):
        trace.started("w", "title", Entity("account", "a"))
    with pytest.raises(ValueError, match="float"):
        Fact.of("ratio", 0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"float at \$\.nested\[0\]"):
        trace.event("InputObserved", {"nested": [1.5]})
    assert trace.next_seq == 1  # a refused build does not consume a position
