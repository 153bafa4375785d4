"""Typed builders for the eleven event types, with retry-safe identities.

    trace = Trace("trace-42", source=Source("revenue-agent", "crm"), actor=Actor.agent("rev-bot"))
    started = trace.started("revenue_exception", "Renewal for Acme", Entity("account", "acme"))
    ...
    await client.append([started, observed, evaluated])

A builder assigns each event its `trace_seq`, `event_id` and `idempotency_key` when the event is
*built*, not when it is sent. Sending the same `Event` again is therefore an idempotent replay
that returns the stored original: a retry never appends a duplicate. (The reference library
derived the key from the trace's length at call time, so a retry after a lost response became
a new event: spec/semantics.md §12 item 6.) Keys are `<trace_id>:<trace_seq>:<event_type>`,
which is also stable across a crash and re-run of a deterministic agent.

Payloads follow spec/semantics.md §2.2; every helper takes `**extra` for the optional and
extension keys the spec allows. Decimals become strings and floats are refused here, before a
round trip, because the platform refuses them (§1.3).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

TRACE_STARTED: Final = "TraceStarted"
INPUT_OBSERVED: Final = "InputObserved"
ENTITY_OBSERVED: Final = "EntityObserved"
POLICY_EVALUATED: Final = "PolicyEvaluated"
EXCEPTION_REQUESTED: Final = "ExceptionRequested"
APPROVAL_RECORDED: Final = "ApprovalRecorded"
PRECEDENT_CITED: Final = "PrecedentCited"
ACTION_PROPOSED: Final = "ActionProposed"
ACTION_COMMITTED: Final = "ActionCommitted"
TRACE_FINISHED: Final = "TraceFinished"
WORKFLOW_REVIEW_REQUESTED: Final = "WorkflowReviewRequested"

Json = dict[str, Any]


def _plain(value: Any, path: str = "$") -> Any:
    """A JSON value with Decimals as strings; floats raise (the platform would refuse them)."""
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        raise ValueError(f"float at {path}: use a string or Decimal for decimals")
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if hasattr(value, "to_json"):
        return value.to_json()
    raise TypeError(f"not JSON at {path}: {type(value).__name__}")


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Source:
    """Who produced the event; `producer_id` scopes idempotency keys."""

    producer_id: str
    system: str
    subsystem: str | None = None

    def to_input(self) -> Json:
        return {"producerId": self.producer_id, "system": self.system, "subsystem": self.subsystem}


@dataclass(frozen=True, slots=True)
class Actor:
    actor_type: str
    actor_id: str

    @classmethod
    def agent(cls, actor_id: str) -> Actor:
        return cls("agent", actor_id)

    @classmethod
    def person(cls, actor_id: str) -> Actor:
        return cls("person", actor_id)

    @classmethod
    def system(cls, actor_id: str) -> Actor:
        return cls("system", actor_id)

    def to_json(self) -> Json:
        return {"actor_id": self.actor_id, "actor_type": self.actor_type}

    def to_input(self) -> Json:
        return {"actorType": self.actor_type, "actorId": self.actor_id}


@dataclass(frozen=True, slots=True)
class Entity:
    entity_type: str
    entity_id: str
    system: str | None = None

    def to_json(self) -> Json:
        return {"entity_id": self.entity_id, "entity_type": self.entity_type, "system": self.system}


@dataclass(frozen=True, slots=True)
class Policy:
    policy_id: str
    policy_version: str

    def to_json(self) -> Json:
        return {"policy_id": self.policy_id, "policy_version": self.policy_version}


@dataclass(frozen=True, slots=True)
class SourceObject:
    """The record an input was read from (InputObserved's `source`)."""

    system: str
    object_type: str
    object_id: str
    locator: str | None = None

    def to_json(self) -> Json:
        out: Json = {
            "object_id": self.object_id,
            "object_type": self.object_type,
            "system": self.system,
        }
        if self.locator is not None:
            out["locator"] = self.locator
        return out


@dataclass(frozen=True, slots=True)
class Fact:
    """`{key, value: {type, value}, as_of}`; `Fact.of` picks the type from the Python value."""

    key: str
    type: str
    value: str | int | bool
    as_of: str | None = None

    @classmethod
    def of(cls, key: str, value: str | int | bool | Decimal, as_of: str | None = None) -> Fact:
        if isinstance(value, bool):
            return cls(key, "bool", value, as_of)
        if isinstance(value, int):
            return cls(key, "number", value, as_of)
        if isinstance(value, Decimal):
            return cls(key, "decimal", str(value), as_of)
        if isinstance(value, str):
            return cls(key, "string", value, as_of)
        raise ValueError(f"fact {key}: use a string or Decimal for {type(value).__name__}")

    def to_json(self) -> Json:
        out: Json = {"key": self.key, "value": {"type": self.type, "value": self.value}}
        if self.as_of is not None:
            out["as_of"] = self.as_of
        return out


@dataclass(frozen=True, slots=True)
class Change:
    path: str
    new_value: Fact | str | int | Decimal
    old_value: Fact | str | int | Decimal | None = None

    def to_json(self) -> Json:
        def value(v: Fact | str | int | Decimal) -> Json:
            fact = v if isinstance(v, Fact) else Fact.of(self.path, v)
            return {"type": fact.type, "value": fact.value}

        return {
            "new_value": value(self.new_value),
            "old_value": None if self.old_value is None else value(self.old_value),
            "path": self.path,
        }


def evidence(*locators: str) -> list[Json]:
    return [{"locator": locator} for locator in locators]


@dataclass(frozen=True, slots=True)
class Event:
    """One envelope, ready to send; its identity was fixed when it was built."""

    event_id: str
    trace_id: str
    trace_seq: int
    event_type: str
    occurred_at: str
    source: Source
    actor: Actor
    idempotency_key: str
    payload: Json
    correlation_id: str | None = None
    causation_event_id: str | None = None
    schema_version: int = 1
    tags: tuple[str, ...] = ()

    def to_input(self) -> Json:
        """The `EventInput` of the GraphQL API (camelCase)."""
        return {
            "eventId": self.event_id,
            "traceId": self.trace_id,
            "traceSeq": self.trace_seq,
            "eventType": self.event_type,
            "occurredAt": self.occurred_at,
            "source": self.source.to_input(),
            "actor": self.actor.to_input(),
            "idempotencyKey": self.idempotency_key,
            "payload": self.payload,
            "correlationId": self.correlation_id,
            "causationEventId": self.causation_event_id,
            "schemaVersion": self.schema_version,
            "tags": list(self.tags),
        }


@dataclass
class Trace:
    """Builds a trace's events in order. `next_seq` starts at 0 for a new trace; to continue a
    trace another process started, use `DecisionGraphClient.resume_trace`."""

    trace_id: str
    source: Source
    actor: Actor
    correlation_id: str | None = None
    tags: Sequence[str] = ()
    next_seq: int = 0
    last_event_id: str | None = None

    def event(
        self,
        event_type: str,
        payload: Mapping[str, Any],
        *,
        occurred_at: str | None = None,
        source: Source | None = None,
        actor: Actor | None = None,
        causation_event_id: str | None = None,
        idempotency_key: str | None = None,
        event_id: str | None = None,
    ) -> Event:
        """The next event of this trace (any type: the helpers below all come here)."""
        seq = self.next_seq
        built = Event(
            event_id=event_id or str(uuid.uuid4()),
            trace_id=self.trace_id,
            trace_seq=seq,
            event_type=event_type,
            occurred_at=occurred_at or now_rfc3339(),
            source=source or self.source,
            actor=actor or self.actor,
            idempotency_key=idempotency_key or f"{self.trace_id}:{seq}:{event_type}",
            payload=_plain(payload),
            correlation_id=self.correlation_id,
            causation_event_id=causation_event_id,
            tags=tuple(self.tags),
        )
        self.next_seq = seq + 1
        self.last_event_id = built.event_id
        return built

    def started(
        self,
        workflow: str,
        title: str,
        primary_entity: Entity,
        *,
        context: Mapping[str, str] | None = None,
        **options: Any,
    ) -> Event:
        if self.next_seq != 0:
            raise ValueError(f"trace {self.trace_id} has already started")
        payload: Json = {"workflow": workflow, "title": title, "primary_entity": primary_entity}
        if context:
            payload["context"] = dict(context)
        return self.event(TRACE_STARTED, payload, **options)

    def input_observed(
        self,
        input_id: str,
        source: SourceObject,
        facts: Iterable[Fact],
        **options: Any,
    ) -> Event:
        payload = {"input_id": input_id, "source": source, "facts": list(facts)}
        return self.event(INPUT_OBSERVED, payload, **options)

    def entity_observed(
        self, entity: Entity, facts: Iterable[Fact], *, role: str = "related", **options: Any
    ) -> Event:
        payload = {"entity": entity, "role": role, "facts": list(facts)}
        return self.event(ENTITY_OBSERVED, payload, **options)

    def policy_evaluated(
        self,
        policy: Policy,
        inputs: Sequence[str],
        decision: str,
        *,
        violations: Sequence[str | Mapping[str, Any]] = (),
        explanation: str | Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Event:
        payload: Json = {"policy": policy, "inputs": list(inputs), "decision": decision}
        if violations:
            payload["violations"] = [
                {"code": v} if isinstance(v, str) else dict(v) for v in violations
            ]
        if explanation:
            payload["explanation"] = (
                {"summary": explanation} if isinstance(explanation, str) else dict(explanation)
            )
        return self.event(POLICY_EVALUATED, payload, **options)

    def exception_requested(
        self,
        exception_id: str,
        policy: Policy,
        reason: str,
        *,
        evidence: Sequence[Mapping[str, Any]] = (),
        **options: Any,
    ) -> Event:
        payload: Json = {"exception_id": exception_id, "policy": policy, "reason": reason}
        if evidence:
            payload["evidence"] = [dict(e) for e in evidence]
        return self.event(EXCEPTION_REQUESTED, payload, **options)

    def approval_recorded(
        self,
        approval_id: str,
        subject_id: str,
        approver: Actor,
        decision: str,
        *,
        subject_type: str = "exception",
        reason: str | None = None,
        evidence: Sequence[Mapping[str, Any]] = (),
        **options: Any,
    ) -> Event:
        payload: Json = {
            "approval_id": approval_id,
            "subject": {"subject_id": subject_id, "subject_type": subject_type},
            "approver": approver,
            "decision": decision,
        }
        if reason is not None:
            payload["reason"] = reason
        if evidence:
            payload["evidence"] = [dict(e) for e in evidence]
        return self.event(APPROVAL_RECORDED, payload, **options)

    def precedent_cited(
        self,
        cited_trace_id: str,
        reason: str,
        *,
        similarity_score: str | Decimal | None = None,
        **options: Any,
    ) -> Event:
        payload: Json = {"cited_trace_id": cited_trace_id, "reason": reason}
        if similarity_score is not None:
            payload["similarity_score"] = str(similarity_score)
        return self.event(PRECEDENT_CITED, payload, **options)

    def action_proposed(
        self,
        action_id: str,
        action_type: str,
        target_entity: Entity,
        target_system: str,
        changes: Iterable[Change],
        **options: Any,
    ) -> Event:
        payload = {
            "action_id": action_id,
            "action_type": action_type,
            "target_entity": target_entity,
            "target_system": target_system,
            "changes": list(changes),
        }
        return self.event(ACTION_PROPOSED, payload, **options)

    def action_committed(
        self,
        action_id: str,
        status: str,
        *,
        external_reference: str | None = None,
        error: str | Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Event:
        payload: Json = {"action_id": action_id, "status": status}
        if external_reference is not None:
            payload["external_reference"] = external_reference
        if error is not None:
            payload["error"] = error
        return self.event(ACTION_COMMITTED, payload, **options)

    def review_requested(
        self,
        title: str,
        reason: str,
        *,
        template_id: str = "incident_triage",
        workflow_kind: str = "incident_review",
        priority: str = "high",
        sla_hours: int = 6,
        assignee_role: str = "admin",
        simulation: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Event:
        payload: Json = {
            "assignee": {"account_id": None, "role": assignee_role},
            "priority": priority,
            "reason": reason,
            "sla_hours": sla_hours,
            "subject": {"subject_id": template_id, "subject_type": "trace_review"},
            "template_id": template_id,
            "title": title,
            "workflow_kind": workflow_kind,
        }
        if simulation is not None:
            payload["simulation"] = dict(simulation)
        return self.event(WORKFLOW_REVIEW_REQUESTED, payload, **options)

    def finished(self, outcome: str, *, summary: str | None = None, **options: Any) -> Event:
        payload: Json = {"outcome": outcome}
        if summary:
            payload["summary"] = summary
        return self.event(TRACE_FINISHED, payload, **options)
