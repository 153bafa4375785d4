"""Append use case: validate a batch, write it atomically, then announce it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from server.core.append_plan import PlannedEvent
from server.core.clock import format_timestamp
from server.core.envelope import EventEnvelope
from server.core.errors import BatchItemError, DecisionGraphError, invalid_argument
from server.core.validation import Limits, ValidatedEvent, validate_envelope
from server.service.ports import Clock, EventLog, Publisher

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AppendOutcome:
    """Either stored events (replays included) or the errors that rejected the batch."""

    events: list[PlannedEvent]
    errors: list[DecisionGraphError]


# Validation is CPU-bound; yielding every slice lets other tasks (notably a group write
# holding a tenant's lock) resume promptly instead of waiting for a whole batch.
VALIDATION_SLICE = 25


async def validate_batch(
    envelopes: Sequence[EventEnvelope], limits: Limits
) -> tuple[list[ValidatedEvent], list[DecisionGraphError]]:
    """Stateless checks for every event; all failures are reported, each with its index."""
    if not envelopes:
        return [], [invalid_argument("events must contain at least one event")]
    if len(envelopes) > limits.max_batch_events:
        return [], [
            invalid_argument(
                f"A batch holds at most {limits.max_batch_events} events (got {len(envelopes)})"
            )
        ]
    validated: list[ValidatedEvent] = []
    errors: list[DecisionGraphError] = []
    for index, envelope in enumerate(envelopes):
        if index and index % VALIDATION_SLICE == 0:
            await asyncio.sleep(0)
        try:
            validated.append(validate_envelope(envelope, limits))
        except DecisionGraphError as error:
            errors.append(BatchItemError(index, error))
    return validated, errors


async def append_events(
    log: EventLog,
    publisher: Publisher,
    clock: Clock,
    limits: Limits,
    tenant_id: str,
    envelopes: Sequence[EventEnvelope],
) -> AppendOutcome:
    validated, errors = await validate_batch(envelopes, limits)
    if errors:
        return AppendOutcome([], errors)
    try:
        planned = await log.append(tenant_id, validated, format_timestamp(clock.now()))
    except DecisionGraphError as error:
        return AppendOutcome([], [error])
    new = [p.event.log_seq for p in planned if not p.replay]
    if new:
        await announce(publisher, tenant_id, new[-1])
    return AppendOutcome(planned, [])


async def announce(publisher: Publisher, tenant_id: str, last_log_seq: int) -> None:
    """Best effort: ingest must keep working while Redis is down (sweeps catch up later)."""
    try:
        await publisher.log_advanced(tenant_id, last_log_seq)
    except Exception:
        _log.warning("could not announce %s@%s; sweeps will catch up", tenant_id, last_log_seq)
