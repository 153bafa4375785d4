"""Stateful append rules (spec/semantics.md §5.2 steps 7-11, §5.3, §5.4) as a pure plan.

The store reads the tenant's current state under its append lock, this module decides
what happens to each event of the batch in order, and the store writes the plan. Keeping
the decision pure means the rules are tested without a database and the store cannot
drift from them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from server.core.envelope import StoredEvent
from server.core.errors import (
    BatchItemError,
    DecisionGraphError,
    conflict,
    idempotency_conflict,
    sequence_invalid,
    storage,
)
from server.core.event_types import TRACE_FINISHED, TRACE_STARTED
from server.core.validation import ValidatedEvent
from server.core.value import Value

IdempotencyScope = tuple[str, str]


class TraceHead(Value, frozen=True):
    next_seq: int = 0
    finished: bool = False


@dataclass(frozen=True, slots=True)
class LogState:
    """What the tenant's log holds that matters to this batch, read under the append lock."""

    last_log_seq: int
    by_scope: Mapping[IdempotencyScope, StoredEvent]
    heads: Mapping[str, TraceHead]
    existing_event_ids: frozenset[str]


class PlannedEvent(Value, frozen=True):
    event: StoredEvent
    replay: bool


def check_reuse(stored: StoredEvent, candidate: ValidatedEvent) -> None:
    """§5.3: same payload hash and metadata returns the stored event; anything else conflicts."""
    env = candidate.envelope
    key = env.idempotency_key
    if stored.payload_hash != candidate.payload_hash:
        raise idempotency_conflict(f"Idempotency key '{key}' already used with different payload")
    comparisons = (
        ("trace_id", stored.trace_id == env.trace_id),
        ("event_type", stored.event_type == env.event_type),
        ("source", stored.source == env.source),
        ("actor", stored.actor == env.actor),
        ("correlation_id", stored.correlation_id == env.correlation_id),
        ("causation_event_id", stored.causation_event_id == env.causation_event_id),
        ("schema_version", stored.schema_version == env.schema_version),
        ("tags", list(stored.tags) == list(env.tags)),
    )
    mismatches = [name for name, same in comparisons if not same]
    if mismatches:
        raise idempotency_conflict(
            f"Idempotency key '{key}' already used with different metadata: "
            + ", ".join(mismatches)
        )


def check_sequence(head: TraceHead, candidate: ValidatedEvent) -> None:
    """§5.2 steps 8-9: the finished lock, then trace_seq rules a, b, c in that order."""
    env = candidate.envelope
    if head.finished:
        raise conflict(f"Trace '{env.trace_id}' is already finished")
    if env.trace_seq != head.next_seq:
        raise sequence_invalid(f"Expected trace_seq {head.next_seq}, got {env.trace_seq}")
    if env.event_type == TRACE_STARTED and env.trace_seq != 0:
        raise sequence_invalid("TraceStarted must have trace_seq=0")
    if env.event_type != TRACE_STARTED and env.trace_seq == 0:
        raise sequence_invalid(f"First event must be TraceStarted, got {env.event_type}")


def to_stored(candidate: ValidatedEvent, log_seq: int, recorded_at: str) -> StoredEvent:
    env = candidate.envelope
    return StoredEvent(
        log_seq=log_seq,
        event_id=env.event_id,
        trace_id=env.trace_id,
        trace_seq=env.trace_seq,
        event_type=env.event_type,
        occurred_at=env.occurred_at,
        recorded_at=recorded_at,
        source=env.source,
        actor=env.actor,
        idempotency_key=env.idempotency_key,
        payload=env.payload,
        payload_hash=candidate.payload_hash,
        correlation_id=env.correlation_id,
        causation_event_id=env.causation_event_id,
        schema_version=env.schema_version,
        tags=tuple(env.tags),
    )


def plan_batch(
    batch: Sequence[ValidatedEvent], state: LogState, recorded_at: str
) -> list[PlannedEvent]:
    """Decide every event in order, as if appended one by one; the first failure aborts all."""
    return plan_and_advance(batch, state, recorded_at)[0]


def plan_and_advance(
    batch: Sequence[ValidatedEvent], state: LogState, recorded_at: str
) -> tuple[list[PlannedEvent], LogState]:
    """`plan_batch`, plus the log state as it will be once the plan is written.

    Group commit plans several requests against one read of the log: each request is
    planned against the state its predecessors leave behind.
    """
    by_scope = dict(state.by_scope)
    heads = dict(state.heads)
    seen_ids = set(state.existing_event_ids)
    log_seq = state.last_log_seq
    planned: list[PlannedEvent] = []
    for index, candidate in enumerate(batch):
        env = candidate.envelope
        try:
            stored = by_scope.get((env.source.producer_id, env.idempotency_key))
            if stored is not None:
                check_reuse(stored, candidate)
                planned.append(PlannedEvent(stored, replay=True))
                continue
            head = heads.get(env.trace_id, TraceHead())
            check_sequence(head, candidate)
            if env.event_id in seen_ids:
                raise storage(f"Database error: event_id '{env.event_id}' already exists")
        except DecisionGraphError as error:
            raise BatchItemError(index, error) from None
        log_seq += 1
        event = to_stored(candidate, log_seq, recorded_at)
        planned.append(PlannedEvent(event, replay=False))
        by_scope[event.idempotency_scope] = event
        heads[env.trace_id] = TraceHead(head.next_seq + 1, env.event_type == TRACE_FINISHED)
        seen_ids.add(env.event_id)
    advanced = LogState(
        last_log_seq=log_seq,
        by_scope=by_scope,
        heads=heads,
        existing_event_ids=frozenset(seen_ids),
    )
    return planned, advanced
