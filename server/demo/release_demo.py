"""The 22 events of the release demo, exactly as spec/platform.md §7.1-§7.4 lists them."""

from __future__ import annotations

import re
from typing import Any, Final

PRECEDENT: Final = "trace-precedent-renewal-001"
INCIDENT: Final = "trace-incident-review-003"
LIVE: Final = "trace-live-renewal-002"

PRECEDENT_WORKFLOW: Final = f"{PRECEDENT}:exception:ex-precedent-renewal-001"
INCIDENT_EXCEPTION_WORKFLOW: Final = f"{INCIDENT}:exception:ex-incident-review-003"
REVIEW_WORKFLOW: Final = f"{INCIDENT}:trace_review:incident_triage"
LIVE_WORKFLOW: Final = f"{LIVE}:exception:ex-live-renewal-002"

_AS_OF = "2026-03-07T10:00:00Z"
_POLICY = {"policy_id": "discount-cap", "policy_version": "2026.03"}
_DEFAULT_SOURCE = ("release-demo", "seed")


def _fact(key: str, value: Any) -> dict[str, Any]:
    kind = "string" if isinstance(value, str) else "number"
    return {"as_of": _AS_OF, "key": key, "value": {"type": kind, "value": value}}


def _snake(event_type: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", event_type).lower()


def event_id(trace_id: str, event_type: str, seq: int) -> str:
    return f"{trace_id}-{_snake(event_type)}-{seq}"


def _event(
    trace_id: str,
    seq: int,
    event_type: str,
    occurred_at: str,
    payload: dict[str, Any],
    source: tuple[str, str] = _DEFAULT_SOURCE,
    caused_by: tuple[str, int] | None = None,
) -> dict[str, Any]:
    return {
        "event_id": event_id(trace_id, event_type, seq),
        "trace_id": trace_id,
        "trace_seq": seq,
        "event_type": event_type,
        "occurred_at": occurred_at,
        "source": {"producer_id": source[0], "subsystem": source[1], "system": "decisiongraph"},
        "actor": {"actor_id": "phase10-seeder", "actor_type": "system"},
        "idempotency_key": f"{event_type.lower()}:{trace_id}:{seq}",
        "payload": payload,
        "correlation_id": f"phase10:{trace_id}",
        "causation_event_id": event_id(trace_id, *caused_by) if caused_by else None,
        "schema_version": 1,
        "tags": ["phase10", "release-demo"],
    }


def _input(input_id: str, object_id: str, facts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "facts": facts,
        "input_id": input_id,
        "source": {"object_id": object_id, "object_type": "opportunity", "system": "crm"},
    }


def _policy_evaluated(summary: str, input_id: str) -> dict[str, Any]:
    return {
        "decision": "require_exception",
        "explanation": {"summary": summary},
        "inputs": [input_id],
        "policy": dict(_POLICY),
        "violations": [{"code": "discount_threshold"}],
    }


def _precedent_trace() -> list[dict[str, Any]]:
    t = PRECEDENT
    return [
        _event(
            t,
            0,
            "TraceStarted",
            "2026-03-06T09:00:00Z",
            {
                "primary_entity": {
                    "entity_id": "acct-acme-platform",
                    "entity_type": "account",
                    "system": "crm",
                },
                "title": "Approved renewal precedent for Acme Platform",
                "workflow": "revenue_exception",
            },
        ),
        _event(
            t,
            1,
            "InputObserved",
            "2026-03-06T09:01:00Z",
            _input(
                "input:revops:precedent:001",
                "oppty-acme-renewal-2026-001",
                [
                    _fact("requested_discount_pct", 18),
                    _fact("annual_contract_value_usd", 540000),
                    _fact("sales_stage", "renewal"),
                ],
            ),
        ),
        _event(
            t,
            2,
            "EntityObserved",
            "2026-03-06T09:02:00Z",
            {
                "entity": {
                    "entity_id": "contract-acme-multi-year",
                    "entity_type": "contract",
                    "system": "billing",
                },
                "facts": [_fact("term_months", 36), _fact("segment", "enterprise")],
                "role": "related",
            },
        ),
        _event(
            t,
            3,
            "PolicyEvaluated",
            "2026-03-06T09:03:00Z",
            _policy_evaluated(
                "Discount exceeds standard renewal cap but strategic value is high.",
                "input:revops:precedent:001",
            ),
            ("policy-engine", "policy"),
            ("InputObserved", 1),
        ),
        _event(
            t,
            4,
            "ExceptionRequested",
            "2026-03-06T09:04:00Z",
            {
                "evidence": [
                    {"locator": "crm://opportunity/oppty-acme-renewal-2026-001"},
                    {"locator": "policy://discount-cap/2026.03#threshold"},
                ],
                "exception_id": "ex-precedent-renewal-001",
                "policy": dict(_POLICY),
                "reason": "Strategic renewal needed finance approval above the standard cap.",
            },
            ("policy-engine", "policy"),
            ("PolicyEvaluated", 3),
        ),
        _event(
            t,
            5,
            "ApprovalRecorded",
            "2026-03-06T09:06:00Z",
            {
                "approval_id": "approval:precedent:001",
                "approver": {"actor_id": "finance-maya", "actor_type": "person"},
                "decision": "approved",
                "evidence": [{"locator": "review://finance/acme-renewal-001"}],
                "reason": "Renewal is strategic and margin floor remains acceptable.",
                "subject": {"subject_id": "ex-precedent-renewal-001", "subject_type": "exception"},
            },
            ("finance-review", "workflow"),
            ("ExceptionRequested", 4),
        ),
        _event(
            t,
            6,
            "ActionProposed",
            "2026-03-06T09:07:00Z",
            {
                "action_id": "action:precedent:001",
                "action_type": "update",
                "changes": [
                    {
                        "new_value": {"type": "number", "value": 18},
                        "old_value": {"type": "number", "value": 12},
                        "path": "discount_pct",
                    }
                ],
                "target_entity": {
                    "entity_id": "oppty-acme-renewal-2026-001",
                    "entity_type": "opportunity",
                    "system": "crm",
                },
                "target_system": "crm",
            },
            caused_by=("ApprovalRecorded", 5),
        ),
        _event(
            t,
            7,
            "ActionCommitted",
            "2026-03-06T09:08:00Z",
            {
                "action_id": "action:precedent:001",
                "external_reference": "crm-sync-2001",
                "status": "success",
            },
            caused_by=("ActionProposed", 6),
        ),
        _event(
            t,
            8,
            "TraceFinished",
            "2026-03-06T09:09:00Z",
            {"outcome": "success", "summary": "Acme renewal approved with finance exception."},
            caused_by=("ActionCommitted", 7),
        ),
    ]


def _incident_trace() -> list[dict[str, Any]]:
    t = INCIDENT
    return [
        _event(
            t,
            0,
            "TraceStarted",
            "2026-03-07T08:30:00Z",
            {
                "primary_entity": {
                    "entity_id": "acct-delta-logistics",
                    "entity_type": "account",
                    "system": "crm",
                },
                "title": "Rejected renewal review for Delta Logistics",
                "workflow": "revenue_exception",
            },
        ),
        _event(
            t,
            1,
            "InputObserved",
            "2026-03-07T08:31:00Z",
            _input(
                "input:revops:incident:003",
                "oppty-delta-renewal-2026-003",
                [
                    _fact("requested_discount_pct", 26),
                    _fact("annual_contract_value_usd", 110000),
                    _fact("sales_stage", "renewal"),
                ],
            ),
        ),
        _event(
            t,
            2,
            "PolicyEvaluated",
            "2026-03-07T08:32:00Z",
            _policy_evaluated(
                "Requested discount exceeds guardrail and precedent confidence is weak.",
                "input:revops:incident:003",
            ),
            ("policy-engine", "policy"),
            ("InputObserved", 1),
        ),
        _event(
            t,
            3,
            "ExceptionRequested",
            "2026-03-07T08:33:00Z",
            {
                "evidence": [{"locator": "crm://opportunity/oppty-delta-renewal-2026-003"}],
                "exception_id": "ex-incident-review-003",
                "policy": dict(_POLICY),
                "reason": "Sales requested a discount above policy for a price-sensitive renewal.",
            },
            ("policy-engine", "policy"),
            ("PolicyEvaluated", 2),
        ),
        _event(
            t,
            4,
            "ApprovalRecorded",
            "2026-03-07T08:36:00Z",
            {
                "approval_id": "approval:incident:003",
                "approver": {"actor_id": "finance-owen", "actor_type": "person"},
                "decision": "rejected",
                "reason": "Margin would fall below the approved floor for this account.",
                "subject": {"subject_id": "ex-incident-review-003", "subject_type": "exception"},
            },
            ("finance-review", "workflow"),
            ("ExceptionRequested", 3),
        ),
        _event(
            t,
            5,
            "WorkflowReviewRequested",
            "2026-03-07T08:37:00Z",
            {
                "assignee": {"account_id": None, "role": "admin"},
                "priority": "high",
                "reason": "Review why the Delta renewal could not be approved and capture "
                "operator guidance.",
                "simulation": {
                    "current_outcome": "failure",
                    "precedent_trace_ids": [PRECEDENT],
                    "risk_signals": ["rejected_exception", "high_discount"],
                },
                "sla_hours": 6,
                "subject": {"subject_id": "incident_triage", "subject_type": "trace_review"},
                "template_id": "incident_triage",
                "title": "Incident review for Delta Logistics rejection",
                "workflow_kind": "incident_review",
            },
            ("operator-console", "workflow"),
            ("ApprovalRecorded", 4),
        ),
        _event(
            t,
            6,
            "TraceFinished",
            "2026-03-07T08:38:00Z",
            {"outcome": "failure", "summary": "Delta renewal rejected after finance review."},
            caused_by=("WorkflowReviewRequested", 5),
        ),
    ]


def _live_trace() -> list[dict[str, Any]]:
    t = LIVE
    return [
        _event(
            t,
            0,
            "TraceStarted",
            "2026-03-07T10:00:00Z",
            {
                "primary_entity": {
                    "entity_id": "acct-acme-platform",
                    "entity_type": "account",
                    "system": "crm",
                },
                "title": "Live renewal exception review for Acme Platform",
                "workflow": "revenue_exception",
            },
        ),
        _event(
            t,
            1,
            "InputObserved",
            "2026-03-07T10:01:00Z",
            _input(
                "input:revops:live:002",
                "oppty-acme-renewal-2026-002",
                [
                    _fact("requested_discount_pct", 21),
                    _fact("annual_contract_value_usd", 620000),
                    _fact("sales_stage", "renewal"),
                ],
            ),
        ),
        _event(
            t,
            2,
            "EntityObserved",
            "2026-03-07T10:02:00Z",
            {
                "entity": {
                    "entity_id": "quote-acme-renewal-2026-002",
                    "entity_type": "quote",
                    "system": "quoting",
                },
                "facts": [_fact("quote_status", "needs_exception"), _fact("currency", "USD")],
                "role": "related",
            },
        ),
        _event(
            t,
            3,
            "PolicyEvaluated",
            "2026-03-07T10:03:00Z",
            _policy_evaluated(
                "Discount is above the standard cap but historical enterprise renewals suggest "
                "approval is possible.",
                "input:revops:live:002",
            ),
            ("policy-engine", "policy"),
            ("InputObserved", 1),
        ),
        _event(
            t,
            4,
            "ExceptionRequested",
            "2026-03-07T10:04:00Z",
            {
                "evidence": [
                    {"locator": "crm://opportunity/oppty-acme-renewal-2026-002"},
                    {"locator": "quote://quote-acme-renewal-2026-002"},
                ],
                "exception_id": "ex-live-renewal-002",
                "policy": dict(_POLICY),
                "reason": "Strategic enterprise renewal requires manual review above the cap.",
            },
            ("policy-engine", "policy"),
            ("PolicyEvaluated", 3),
        ),
        _event(
            t,
            5,
            "PrecedentCited",
            "2026-03-07T10:05:00Z",
            {
                "cited_trace_id": PRECEDENT,
                "reason": "Matches strategic renewal posture with a similar approved exception.",
                "similarity_score": "0.92",
            },
            ("precedent-engine", "query"),
            ("ExceptionRequested", 4),
        ),
    ]


def release_demo_events() -> list[dict[str, Any]]:
    """All 22 events in seeding order: precedent (9), incident (7), live (6)."""
    return _precedent_trace() + _incident_trace() + _live_trace()
