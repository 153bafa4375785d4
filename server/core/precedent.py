"""Policy-evaluation index (§6.5) and precedent index v2 (§6.6) of spec/semantics.md.

The precedent index is rebuilt for a trace only when it finishes, from the trace's own
events in trace_seq order; citations and similarity scores never feed it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from server.core.canonical_json import c3_string
from server.core.envelope import ProjectedEvent
from server.core.errors import schema_violation
from server.core.event_types import EXCEPTION_REQUESTED, POLICY_EVALUATED, TRACE_STARTED
from server.core.value import Value

# The only event types whose payloads the precedent rebuild reads from the log.
PRECEDENT_SOURCE_TYPES = (TRACE_STARTED, POLICY_EVALUATED, EXCEPTION_REQUESTED)


class PolicyEvalRow(Value, frozen=True):
    index_id: str
    trace_id: str
    policy_id: str
    policy_version: str
    log_seq: int
    created_at: str


class PrecedentRow(Value, frozen=True):
    source_event_id: str
    log_seq: int
    trace_id: str
    policy_id: str
    policy_version: str
    exception_id: str | None
    primary_entity_type: str | None
    primary_entity_system: str | None
    primary_entity_id: str | None

    def digest_dict(self) -> dict[str, Any]:
        return {
            "source_event_id": self.source_event_id,
            "log_seq": self.log_seq,
            "trace_id": self.trace_id,
            "policy_id": self.policy_id,
            "policy_version": self.policy_version,
            "exception_id": self.exception_id,
            "primary_entity_type": self.primary_entity_type,
            "primary_entity_system": self.primary_entity_system,
            "primary_entity_id": self.primary_entity_id,
        }

    def fragment(self) -> str:
        return (
            f'{{"exception_id":{c3_string(self.exception_id)},"log_seq":{self.log_seq},'
            f'"policy_id":{c3_string(self.policy_id)},'
            f'"policy_version":{c3_string(self.policy_version)},'
            f'"primary_entity_id":{c3_string(self.primary_entity_id)},'
            f'"primary_entity_system":{c3_string(self.primary_entity_system)},'
            f'"primary_entity_type":{c3_string(self.primary_entity_type)},'
            f'"source_event_id":{c3_string(self.source_event_id)},'
            f'"trace_id":{c3_string(self.trace_id)}}}'
        )


def _policy(payload: Any) -> tuple[Any, Any]:
    # A payload that is not an object (only a log edited behind the service's back holds
    # one) reads as {}, as in graph.py: a schema violation below, not a crash.
    payload = payload if isinstance(payload, dict) else {}
    policy = payload.get("policy")
    policy = policy if isinstance(policy, dict) else {}
    return policy.get("policy_id"), policy.get("policy_version")


def policy_eval_row(event: ProjectedEvent) -> PolicyEvalRow:
    """§6.5: one row per PolicyEvaluated; a missing id or version is a schema violation."""
    policy_id, version = _policy(event.payload)
    if not policy_id or not version:
        raise schema_violation("PolicyEvaluated requires policy_id and policy_version")
    return PolicyEvalRow(
        index_id=f"{event.trace_id}:{policy_id}:{version}:{event.event_id}",
        trace_id=event.trace_id,
        policy_id=policy_id,
        policy_version=version,
        log_seq=event.log_seq,
        created_at=event.occurred_at,
    )


def precedent_rows(trace_events: Iterable[ProjectedEvent]) -> list[PrecedentRow]:
    """§6.6: entries of a finished trace, given its events in trace_seq order."""
    entity: dict[str, Any] | None = None
    rows: list[PrecedentRow] = []
    for event in trace_events:
        payload = event.payload if isinstance(event.payload, dict) else {}
        if event.event_type == TRACE_STARTED:
            if entity is None:
                pe = payload.get("primary_entity")
                entity = pe if isinstance(pe, dict) else {}
            continue
        if event.event_type == POLICY_EVALUATED:
            policy_id, version = _policy(payload)
            if not policy_id or not version:
                raise schema_violation("PolicyEvaluated requires policy_id and policy_version")
            exception_id = None
        elif event.event_type == EXCEPTION_REQUESTED:
            policy_id, version = _policy(payload)
            exception_id = payload.get("exception_id")
            if not policy_id or not version or not exception_id:
                raise schema_violation("ExceptionRequested requires policy and exception_id")
        else:
            continue
        pe = entity or {}
        rows.append(
            PrecedentRow(
                source_event_id=event.event_id,
                log_seq=event.log_seq,
                trace_id=event.trace_id,
                policy_id=policy_id,
                policy_version=version,
                exception_id=exception_id,
                primary_entity_type=pe.get("entity_type"),
                primary_entity_system=pe.get("system"),
                primary_entity_id=pe.get("entity_id"),
            )
        )
    return rows
