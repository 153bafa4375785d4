"""Typed results of the SDK's reads: frozen dataclasses over the GraphQL selections it sends.

Each class's fields are exactly the selection (snake_case here, camelCase on the wire), so the
query text is generated from the class and the two cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Self

_CAMEL = re.compile(r"_([a-z])")


def camel(name: str) -> str:
    return _CAMEL.sub(lambda m: m.group(1).upper(), name)


class Model:
    """Selection text and parsing from the dataclass fields; nested models declare theirs in
    `NESTED` (field name → model class; a list field holds a list of them)."""

    NESTED: ClassVar[dict[str, type[Model]]] = {}

    @classmethod
    def selection(cls) -> str:
        parts = []
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            nested = cls.NESTED.get(f.name)
            parts.append(camel(f.name) + (f" {{ {nested.selection()} }}" if nested else ""))
        return " ".join(parts)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            raw = data.get(camel(f.name))
            nested = cls.NESTED.get(f.name)
            if nested is not None and raw is not None:
                raw = (
                    [nested.from_json(r) for r in raw]
                    if isinstance(raw, list)
                    else nested.from_json(raw)
                )
            values[f.name] = raw
        return cls(**values)


@dataclass(frozen=True, slots=True)
class AppendedEvent(Model):
    event_id: str
    trace_id: str
    trace_seq: int
    event_type: str
    log_seq: int
    payload_hash: str
    recorded_at: str
    idempotent_replay: bool


@dataclass(frozen=True, slots=True)
class StoredEvent(Model):
    log_seq: int
    event_id: str
    trace_id: str
    trace_seq: int
    event_type: str
    occurred_at: str
    recorded_at: str
    idempotency_key: str
    payload: Any
    payload_hash: str
    correlation_id: str | None
    causation_event_id: str | None
    tags: list[str]


@dataclass(frozen=True, slots=True)
class TraceInfo(Model):
    trace_id: str
    workflow: str
    title: str
    outcome: str | None
    started_at: str
    finished_at: str | None
    finished: bool
    event_count: int
    last_log_seq: int


@dataclass(frozen=True, slots=True)
class Precedent(Model):
    trace_id: str
    workflow: str
    title: str
    outcome: str | None
    policy_id: str | None
    policy_version: str | None
    finished_at: str | None
    last_log_seq: int


@dataclass(frozen=True, slots=True)
class ProjectionState(Model):
    name: str
    cursor: int
    pending: int
    stale: bool
    status: str


@dataclass(frozen=True, slots=True)
class Digests(Model):
    context_graph: str | None
    trace_summary: str | None
    precedent_index: str | None
    full_projection: str | None
    workflows: str | None


@dataclass(frozen=True, slots=True)
class ProjectionHealth(Model):
    NESTED: ClassVar[dict[str, type[Model]]] = {
        "projections": ProjectionState,
        "digests": Digests,
    }

    last_log_seq: int
    event_count: int
    trace_count: int
    projected_to: int
    projections: list[ProjectionState]
    digests: Digests


@dataclass(frozen=True, slots=True)
class Workflow(Model):
    workflow_id: str
    trace_id: str
    kind: str
    status: str
    priority: str
    title: str
    assigned_role: str | None
    assigned_account_id: str | None
    requested_at: str
    sla_due_at: str | None
    resolved_at: str | None
    overdue: bool
    current_decision: str | None
    current_reason: str | None
    escalation_count: int


@dataclass(frozen=True, slots=True)
class WorkflowChange(Model):
    seq: int
    workflow_id: str
    trace_id: str
    status: str
    action: str
    actor_id: str
    at: str
    note: str | None


@dataclass(frozen=True, slots=True)
class Replay(Model):
    replay_id: str
    projection: str
    mode: str
    status: str
    processed_events: int
    last_log_seq: int | None
    digests_match: bool | None
