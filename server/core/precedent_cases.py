"""Precedent cases: what scored precedent compares, folded from a trace's events.

A case is one trace seen as a decision: its workflow, the entities it touched, the facts
it observed, the policies that judged it and the codes they raised, and how it turned
out (the reviewer's decision, whether an action was committed, the trace's outcome, and
whether it led to an incident review). The fold is pure and order-dependent only in the
obvious way (a later fact of the same key wins; the last approval decides), so the same
log always yields the same cases. Scoring lives in `precedent_score`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from typing import Any, Final

import msgspec

from server.core.envelope import StoredEvent
from server.core.event_types import (
    ACTION_COMMITTED,
    ACTION_PROPOSED,
    APPROVAL_RECORDED,
    ENTITY_OBSERVED,
    EXCEPTION_REQUESTED,
    INPUT_OBSERVED,
    POLICY_EVALUATED,
    TRACE_FINISHED,
    TRACE_STARTED,
    WORKFLOW_REVIEW_REQUESTED,
)

# Every event type a case reads; the rest (PrecedentCited) never changes one.
CASE_EVENT_TYPES: Final = (
    TRACE_STARTED,
    INPUT_OBSERVED,
    ENTITY_OBSERVED,
    POLICY_EVALUATED,
    EXCEPTION_REQUESTED,
    APPROVAL_RECORDED,
    ACTION_PROPOSED,
    ACTION_COMMITTED,
    TRACE_FINISHED,
    WORKFLOW_REVIEW_REQUESTED,
)
INCIDENT_REVIEW: Final = "incident_review"

Fact = float | str | bool


class Case(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One trace as a decision. Entities are "type:id"; policies "id@version". Stored as
    a JSON object without its defaults, so a field added later reads old rows."""

    trace_id: str
    workflow: str = ""
    title: str = ""
    primary_entity: str | None = None
    entities: tuple[str, ...] = ()
    facts: dict[str, Fact] = {}
    policies: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    decision: str | None = None  # the last ApprovalRecorded decision
    policy_decision: str | None = None  # the last PolicyEvaluated decision
    policy_decisions: dict[str, str] = {}  # policy id -> its last PolicyEvaluated decision
    committed: bool = False
    outcome: str | None = None  # TraceFinished.outcome
    incident: bool = False
    finished: bool = False
    finished_at: str | None = None
    last_log_seq: int = 0


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(Case)


def encode_case(case: Case) -> bytes:
    return _encoder.encode(case)


def decode_case(data: bytes | str) -> Case:
    return _decoder.decode(data)


def policy_key(policy_id: str, version: str) -> str:
    return f"{policy_id}@{version}"


def fold_case(case: Case | None, event: StoredEvent) -> Case:
    """The case after one more event of its trace (events in trace order)."""
    base = case or Case(trace_id=event.trace_id)
    payload = event.payload if isinstance(event.payload, dict) else {}
    changes: dict[str, Any] = {"last_log_seq": event.log_seq}
    kind = event.event_type
    if kind == TRACE_STARTED:
        entity = _entity(payload.get("primary_entity"))
        changes |= {
            "workflow": _text(payload.get("workflow")),
            "title": _text(payload.get("title")),
            "primary_entity": entity,
            "entities": _add(base.entities, [entity]),
        }
    elif kind in (INPUT_OBSERVED, ENTITY_OBSERVED):
        source = payload.get("source") if kind == INPUT_OBSERVED else payload.get("entity")
        changes |= {
            "entities": _add(base.entities, [_entity(source)]),
            "facts": _facts(base.facts, payload.get("facts")),
        }
    elif kind in (POLICY_EVALUATED, EXCEPTION_REQUESTED):
        policy = payload.get("policy")
        pid, version = (
            (policy.get("policy_id"), policy.get("policy_version"))
            if isinstance(policy, dict)
            else (None, None)
        )
        named = (
            policy_key(pid, version) if isinstance(pid, str) and isinstance(version, str) else None
        )
        changes["policies"] = _add(base.policies, [named])
        if kind == POLICY_EVALUATED:
            codes = [v.get("code") for v in _dicts(payload.get("violations"))]
            changes["codes"] = _add(base.codes, [c if isinstance(c, str) else None for c in codes])
            decision = payload.get("decision")
            changes["policy_decision"] = decision if isinstance(decision, str) else None
            if isinstance(decision, str) and isinstance(pid, str) and pid:
                changes["policy_decisions"] = base.policy_decisions | {pid: decision}
    elif kind == APPROVAL_RECORDED:
        decision = payload.get("decision")
        changes["decision"] = decision if isinstance(decision, str) else base.decision
    elif kind == ACTION_PROPOSED:
        changes["entities"] = _add(base.entities, [_entity(payload.get("target_entity"))])
    elif kind == ACTION_COMMITTED:
        changes["committed"] = base.committed or payload.get("status") == "success"
    elif kind == WORKFLOW_REVIEW_REQUESTED:
        changes["incident"] = base.incident or payload.get("workflow_kind") == INCIDENT_REVIEW
    elif kind == TRACE_FINISHED:
        outcome = payload.get("outcome")
        changes |= {
            "outcome": outcome if isinstance(outcome, str) else None,
            "finished": True,
            "finished_at": event.occurred_at,
        }
    return msgspec.structs.replace(base, **changes)


def fold_cases(events: Iterable[StoredEvent], cases: dict[str, Case]) -> dict[str, Case]:
    """Fold events (log order) into `cases` by trace; returns the cases that changed."""
    changed: dict[str, Case] = {}
    for event in events:
        if event.event_type not in CASE_EVENT_TYPES:
            continue
        case = fold_case(changed.get(event.trace_id) or cases.get(event.trace_id), event)
        changed[event.trace_id] = case
    cases.update(changed)
    return changed


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _entity(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    kind = value.get("entity_type", value.get("object_type"))
    ident = value.get("entity_id", value.get("object_id"))
    if isinstance(kind, str) and isinstance(ident, str) and kind and ident:
        return f"{kind}:{ident}"
    return None


def _add(have: tuple[str, ...], more: Iterable[str | None]) -> tuple[str, ...]:
    """A sorted set as a tuple: the order never depends on arrival. Each item is placed by
    bisection, not by rebuilding and re-sorting a set: a trace that names a new entity in
    each of its thousands of events must not cost a sort of all of them per event."""
    out = have
    for item in more:
        if item:
            at = bisect_left(out, item)
            if at == len(out) or out[at] != item:
                out = (*out[:at], item, *out[at:])
    return out


def _facts(have: dict[str, Fact], facts: Any) -> dict[str, Fact]:
    """Facts are {key, value: {type, value}}; numbers and strings and booleans are kept."""
    out = dict(have)
    for fact in _dicts(facts):
        key, wrapped = fact.get("key"), fact.get("value")
        value = wrapped.get("value") if isinstance(wrapped, dict) else wrapped
        if not isinstance(key, str) or not key:
            continue
        if isinstance(value, bool | str):
            out[key] = value
        elif isinstance(value, int | float):
            out[key] = float(value)
    return out
