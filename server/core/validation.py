"""Stateless validation of one envelope: steps 1-5 of spec/semantics.md §5.2, in order.

After the reference's steps we add one of our own, "storable", so every reference error
keeps its precedence: PostgreSQL cannot hold NUL characters or lone surrogates, and ids
feed unique indexes whose entries are size-limited, so those are refused here with
DG_ERR_INVALID_ARGUMENT instead of surfacing later as a storage failure or a poison event.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final

from server.core.canonical_json import (
    HASH_PREFIX,
    encode_c1,
    find_float,
    has_float_token,
    is_json_safe,
    stored_payload_json,
    stored_tags_json,
)
from server.core.envelope import EventEnvelope
from server.core.errors import invalid_argument
from server.core.event_types import check_payload_schema
from server.core.pii import check_pii
from server.core.value import Value

MAX_IDEMPOTENCY_KEY_BYTES: Final = 200


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits beyond the reference (documented in docs/api.md "Limits")."""

    max_payload_bytes: int = 262_144
    max_id_bytes: int = 512
    max_tags: int = 64
    max_tag_bytes: int = 256
    max_batch_events: int = 1_000


class ValidatedEvent(Value, frozen=True):
    """An envelope that passed every stateless check, with its derived storage forms."""

    envelope: EventEnvelope
    payload_hash: str
    payload_json: str
    tags_json: str


DEFAULT_LIMITS: Final = Limits()


def check_idempotency_key(key: str) -> None:
    if key == "":
        raise invalid_argument("Idempotency key cannot be empty")
    if "\x00" in key:
        raise invalid_argument("Idempotency key cannot contain null bytes")
    size = len(key.encode("utf-8", "surrogatepass"))
    if size > MAX_IDEMPOTENCY_KEY_BYTES:
        raise invalid_argument(
            f"Idempotency key exceeds {MAX_IDEMPOTENCY_KEY_BYTES} bytes (got {size} bytes)"
        )


def validate_envelope(envelope: EventEnvelope, limits: Limits = DEFAULT_LIMITS) -> ValidatedEvent:
    """Run the stateless pipeline; the first failure raises its DecisionGraphError.

    The payload is encoded once up front: the C1 text serves the JSON-safety step (an
    encoder failure), the PII pre-filter and the hash. Floats encode fine, so the float
    step still runs in its place, after the PII guard.
    """
    check_idempotency_key(envelope.idempotency_key)
    canonical = _encode_canonical(envelope.payload)
    check_payload_schema(envelope.event_type, envelope.payload)
    check_pii(envelope, canonical)
    if canonical is None or has_float_token(canonical):
        find_float(envelope.payload)
    if canonical is None:  # encodable, but its keys cannot be sorted (spec §12 item 23)
        raise invalid_argument("Payload keys must all be strings")
    encoded = _check_storable(envelope, canonical, limits)
    return ValidatedEvent(
        envelope=envelope,
        payload_hash=HASH_PREFIX + hashlib.sha256(encoded).hexdigest(),
        payload_json=stored_payload_json(envelope.payload),
        tags_json=stored_tags_json(tuple(envelope.tags)),
    )


def _encode_canonical(payload: Any) -> str | None:
    """C1 text without the float check; None for mixed key types; step 2 errors raise."""
    try:
        return encode_c1(payload)
    except (TypeError, ValueError):
        complaint = is_json_safe(payload)
        if complaint is not None:
            raise invalid_argument(f"Payload is not JSON-serializable: {complaint}") from None
        return None


def _envelope_strings(envelope: EventEnvelope) -> dict[str, str | None]:
    return {
        "event_id": envelope.event_id,
        "trace_id": envelope.trace_id,
        "occurred_at": envelope.occurred_at,
        "idempotency_key": envelope.idempotency_key,
        "source.producer_id": envelope.source.producer_id,
        "source.system": envelope.source.system,
        "source.subsystem": envelope.source.subsystem,
        "actor.actor_type": envelope.actor.actor_type,
        "actor.actor_id": envelope.actor.actor_id,
        "correlation_id": envelope.correlation_id,
        "causation_event_id": envelope.causation_event_id,
    }


def _check_storable(envelope: EventEnvelope, canonical: str, limits: Limits) -> bytes:
    strings = _envelope_strings(envelope)
    joined = "".join(value for value in strings.values() if value is not None)
    if "\x00" in joined or not joined.isascii():  # the rare case: find which and why
        for name, value in strings.items():
            if value is not None:
                _check_text(value, f"$.{name}")
    # A character is at most 4 UTF-8 bytes, so short strings need no encoding to measure.
    for name, value in strings.items():
        if value is not None and len(value) * 4 > limits.max_id_bytes:
            size = len(value.encode("utf-8"))
            if size > limits.max_id_bytes:
                raise invalid_argument(f"'{name}' exceeds {limits.max_id_bytes} bytes (got {size})")
    if len(envelope.tags) > limits.max_tags:
        raise invalid_argument(f"At most {limits.max_tags} tags are allowed")
    for index, tag in enumerate(envelope.tags):
        _check_text(tag, f"$.tags[{index}]")
        if len(tag.encode("utf-8")) > limits.max_tag_bytes:
            raise invalid_argument(f"Tag at '$.tags[{index}]' exceeds {limits.max_tag_bytes} bytes")
    # C1 escapes NUL as \u0000, so a cheap look at the text rules most payloads out.
    if "\\u0000" in canonical:
        _find_nul(envelope.payload, "$.payload")
    try:
        encoded = canonical.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid_argument(
            "Payload contains a lone surrogate, which is not valid text"
        ) from None
    if len(encoded) > limits.max_payload_bytes:
        raise invalid_argument(
            f"Payload exceeds {limits.max_payload_bytes} bytes (got {len(encoded)} bytes)"
        )
    return encoded


def _check_text(value: str, path: str) -> None:
    if "\x00" in value:
        raise invalid_argument(f"Null bytes are not allowed (found at '{path}')")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid_argument(f"Lone surrogates are not allowed (found at '{path}')") from None


def _find_nul(value: Any, path: str) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise invalid_argument(f"Null bytes are not allowed (found at '{path}')")
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and "\x00" in key:
                raise invalid_argument(f"Null bytes are not allowed in keys (found at '{path}')")
            _find_nul(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _find_nul(item, f"{path}[{index}]")
