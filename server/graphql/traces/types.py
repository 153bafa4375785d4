"""GraphQL types for events and traces, converted from core values at the edge."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import strawberry

from server.core.envelope import ActorRef, EventEnvelope, SourceRef, StoredEvent
from server.graphql.relay import PageInfo
from server.graphql.scalars import JSON, Long


@strawberry.type
class Source:
    producer_id: str
    system: str
    subsystem: str | None


@strawberry.type
class Actor:
    actor_type: str
    actor_id: str


@strawberry.type(description="An event as stored in the tenant's log.")
class Event:
    log_seq: Long = strawberry.field(description="The tenant's own position: 1, 2, 3 ...")
    event_id: str
    trace_id: str
    trace_seq: int
    event_type: str
    occurred_at: str
    recorded_at: str
    source: Source
    actor: Actor
    idempotency_key: str
    payload: JSON
    payload_hash: str
    correlation_id: str | None
    causation_event_id: str | None
    schema_version: int
    tags: list[str]


@strawberry.type(description="An event returned by appendEvents.")
class AppendedEvent(Event):
    idempotent_replay: bool = strawberry.field(
        description="True when this is the originally stored event of an idempotent retry."
    )


# Strawberry resolves plain fields with getattr on the object it is given, and the core
# values carry exactly the attribute names of these types (StoredEvent -> Event,
# SourceRef -> Source, ActorRef -> Actor). Handing them over as they are skips building
# a GraphQL object per event for fields a client may never select.


def event_of(event: StoredEvent) -> Event:
    return cast(Event, event)


class _AppendedView:
    """A stored event plus the one field appendEvents adds."""

    __slots__ = ("_event", "idempotent_replay")

    def __init__(self, event: StoredEvent, replay: bool) -> None:
        self._event = event
        self.idempotent_replay = replay

    def __getattr__(self, name: str) -> Any:
        return getattr(self._event, name)


def appended_of(event: StoredEvent, replay: bool) -> AppendedEvent:
    return cast(AppendedEvent, _AppendedView(event, replay))


@strawberry.type
class EventEdge:
    node: Event
    cursor: str


@strawberry.type
class EventConnection:
    edges: list[EventEdge]
    page_info: PageInfo


@strawberry.input
class SourceInput:
    producer_id: str
    system: str
    subsystem: str | None = None


@strawberry.input
class ActorInput:
    actor_type: str
    actor_id: str


@strawberry.input(description="The event envelope of spec/semantics.md §1.1, in camelCase.")
class EventInput:
    event_id: str
    trace_id: str
    trace_seq: int
    event_type: str
    occurred_at: str
    source: SourceInput
    actor: ActorInput
    idempotency_key: str
    payload: JSON
    correlation_id: str | None = None
    causation_event_id: str | None = None
    schema_version: int = 1
    tags: list[str] = strawberry.field(default_factory=list)


def envelope_from_input(value: Mapping[str, Any]) -> EventEnvelope:
    """Build the core envelope straight from graphql-core's coerced value (GraphQL names).

    Strawberry's generic converter resolves every field's type and name for each value,
    and then the input object would be converted once more; on a 100-event batch that was
    a third of the request. graphql-core has already validated the value against the
    schema, so this only maps names. Resolvers therefore receive `EventEnvelope`s where
    the schema says `EventInput` (see `TraceMutation.append_events`).
    """
    source, actor = value["source"], value["actor"]
    return EventEnvelope(
        event_id=value["eventId"],
        trace_id=value["traceId"],
        trace_seq=value["traceSeq"],
        event_type=value["eventType"],
        occurred_at=value["occurredAt"],
        source=SourceRef(source["producerId"], source["system"], source.get("subsystem")),
        actor=ActorRef(actor["actorType"], actor["actorId"]),
        idempotency_key=value["idempotencyKey"],
        payload=value["payload"],
        correlation_id=value.get("correlationId"),
        causation_event_id=value.get("causationEventId"),
        schema_version=value.get("schemaVersion", 1),
        tags=tuple(value.get("tags") or ()),
    )


def _from_input_hook(_: type, value: Mapping[str, Any], __: Any) -> EventEnvelope:
    return envelope_from_input(value)


EventInput.__strawberry_definition__.from_input = _from_input_hook  # type: ignore[attr-defined]


@strawberry.type
class EntityRef:
    entity_type: str | None
    entity_id: str | None
    system: str | None
