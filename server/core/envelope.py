"""The event envelope (spec/semantics.md §1.1) and the stored event (§1.2)."""

from __future__ import annotations

from typing import Any

from server.core.value import Value


class SourceRef(Value, frozen=True):
    producer_id: str
    system: str
    subsystem: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"producer_id": self.producer_id, "system": self.system, "subsystem": self.subsystem}


class ActorRef(Value, frozen=True):
    actor_type: str
    actor_id: str

    def as_dict(self) -> dict[str, str]:
        return {"actor_type": self.actor_type, "actor_id": self.actor_id}


class EventEnvelope(Value, frozen=True):
    """What a producer sends; nothing here is trusted until validation has run."""

    event_id: str
    trace_id: str
    trace_seq: int
    event_type: str
    occurred_at: str
    source: SourceRef
    actor: ActorRef
    idempotency_key: str
    payload: Any
    correlation_id: str | None = None
    causation_event_id: str | None = None
    schema_version: int = 1
    tags: tuple[str, ...] = ()


class StoredEvent(Value, frozen=True):
    """An envelope as the log holds it: plus its tenant position, wall time and hash."""

    log_seq: int
    event_id: str
    trace_id: str
    trace_seq: int
    event_type: str
    occurred_at: str
    recorded_at: str
    source: SourceRef
    actor: ActorRef
    idempotency_key: str
    payload: Any
    payload_hash: str
    correlation_id: str | None = None
    causation_event_id: str | None = None
    schema_version: int = 1
    tags: tuple[str, ...] = ()

    @property
    def idempotency_scope(self) -> tuple[str, str]:
        return (self.source.producer_id, self.idempotency_key)

    def at(self, log_seq: int) -> StoredEvent:
        """The same event at another position (a direct build, cheaper than a generic replace)."""
        return StoredEvent(
            log_seq,
            self.event_id,
            self.trace_id,
            self.trace_seq,
            self.event_type,
            self.occurred_at,
            self.recorded_at,
            self.source,
            self.actor,
            self.idempotency_key,
            self.payload,
            self.payload_hash,
            self.correlation_id,
            self.causation_event_id,
            self.schema_version,
            self.tags,
        )


def envelope_from_dict(raw: dict[str, Any]) -> EventEnvelope:
    """Build an envelope from a fixture-style dict (loader defaults of spec §10.3)."""
    source = raw["source"]
    actor = raw["actor"]
    return EventEnvelope(
        event_id=raw["event_id"],
        trace_id=raw["trace_id"],
        trace_seq=raw["trace_seq"],
        event_type=raw["event_type"],
        occurred_at=raw["occurred_at"],
        source=SourceRef(source["producer_id"], source["system"], source.get("subsystem")),
        actor=ActorRef(actor["actor_type"], actor["actor_id"]),
        idempotency_key=raw["idempotency_key"],
        payload=raw["payload"],
        correlation_id=raw.get("correlation_id"),
        causation_event_id=raw.get("causation_event_id"),
        schema_version=raw.get("schema_version", 1),
        tags=tuple(raw.get("tags", ())),
    )


class LoggedFacts(Value, frozen=True):
    """What the projections read of a stored event (spec §6), and nothing else: about half
    the columns of a log row, so a whole-log REBUILD or VERIFY reads, sends and builds
    less per event."""

    log_seq: int
    event_id: str
    trace_id: str
    trace_seq: int
    event_type: str
    occurred_at: str
    actor: ActorRef
    payload: Any
    payload_hash: str
    # The stored text was found to hash to payload_hash (canonical_json's
    # stored_text_matches_hash): the projector's hash check has been done. Its payload may
    # then hold only the keys projections read (projected_payload.py).
    hash_verified: bool = False


# An event as the projections take it: whole, or just what they read of it.
ProjectedEvent = StoredEvent | LoggedFacts
