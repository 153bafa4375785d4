"""The PII/secret guard of spec/semantics.md §5.2 step 4.

A case-insensitive substring test, so `risk-score` trips `sk-` and `Asian` trips `ASIA`
(spec §12 item 4). Those false positives are part of the oracle and kept on purpose.
"""

from __future__ import annotations

import re
from typing import Any, Final

from server.core.envelope import EventEnvelope
from server.core.errors import pii_violation

FORBIDDEN_PATTERNS: Final = tuple(
    sorted(
        (
            "-----BEGIN",
            "-----BEGIN EC PRIVATE KEY",
            "-----BEGIN OPENSSH PRIVATE KEY",
            "-----BEGIN PRIVATE KEY",
            "-----BEGIN RSA PRIVATE KEY",
            "AKIA",
            "ASIA",
            "Bearer ",
            "api-key:",
            "api_key=",
            "apikey=",
            "gho_",
            "ghp_",
            "ghr_",
            "ghs_",
            "ghu_",
            "passwd=",
            "password=",
            "secret=",
            "sk-",
            "token=",
            "xoxa-",
            "xoxb-",
            "xoxp-",
            "xoxr-",
        )
    )
)
_LOWERED: Final = tuple((pattern, pattern.lower()) for pattern in FORBIDDEN_PATTERNS)


def trie_pattern(needles: list[str]) -> str:
    """One regex for "any of these substrings", with shared prefixes factored out
    (`gh(?:o_|p_|...)` rather than `gho_|ghp_|...`): Python's engine tries every branch of
    an alternation at every position, so fewer branches per position is faster (about 2x
    for these needles, measured on ingest payloads)."""
    groups: dict[str, list[str]] = {}
    for needle in sorted(set(needles)):
        groups.setdefault(needle[:1], []).append(needle[1:])
    branches = []
    for head, tails in groups.items():
        if "" in tails:  # a needle ends here: any longer one with this prefix also matches
            branches.append(re.escape(head))
        elif len(tails) == 1:
            branches.append(re.escape(head + tails[0]))
        else:
            branches.append(f"{re.escape(head)}(?:{trie_pattern(tails)})")
    return "|".join(branches)


# One alternation answers the common "no hit" case in a single pass; on a hit the loop
# below finds the pattern the reference reports (first in sorted order, not leftmost).
_ANY_NEEDLE: Final = re.compile(trie_pattern([needle for _, needle in _LOWERED]))


def _scan(value: Any, path: str) -> None:
    if isinstance(value, str):
        lowered = value.lower()
        if _ANY_NEEDLE.search(lowered) is None:
            return
        for pattern, needle in _LOWERED:
            if needle in lowered:
                raise pii_violation(f"Forbidden content '{pattern}' found at '{path}'")
    elif isinstance(value, dict):
        for key, item in value.items():
            _scan(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _scan(item, f"{path}[{index}]")


def guard_document(envelope: EventEnvelope) -> dict[str, Any]:
    """The synthetic document the guard walks; ids, type and occurred_at are not scanned."""
    return {
        "payload": envelope.payload,
        "tags": list(envelope.tags),
        "actor": envelope.actor.as_dict(),
        "source": envelope.source.as_dict(),
        "correlation_id": envelope.correlation_id,
        "causation_event_id": envelope.causation_event_id,
        "idempotency_key": envelope.idempotency_key,
    }


def check_pii(envelope: EventEnvelope, canonical_payload: str | None = None) -> None:
    """Raise at the first forbidden pattern, in the reference's walk order.

    `canonical_payload` (C1 of the payload), when given, lets a clean payload skip the
    walk: C1 holds every string of the payload contiguously (needles contain no quote,
    backslash or control character, so escaping cannot split them), and lowering the
    whole text lowers each string the same way. A hit there may come from a key, so a
    hit means "walk the payload", never "refuse".
    """
    document = guard_document(envelope)
    if canonical_payload is not None and _ANY_NEEDLE.search(canonical_payload.lower()) is None:
        document.pop("payload")
        # The rest is a handful of strings: one search over them joined by NUL (which no
        # needle contains, and which the storability check refuses anyway) settles it.
        if _ANY_NEEDLE.search("\x00".join(_metadata_strings(envelope)).lower()) is None:
            return
    _scan(document, "$")


def _metadata_strings(envelope: EventEnvelope) -> list[str]:
    source, actor = envelope.source, envelope.actor
    values = [
        *envelope.tags,
        actor.actor_type,
        actor.actor_id,
        source.producer_id,
        source.system,
        source.subsystem,
        envelope.correlation_id,
        envelope.causation_event_id,
        envelope.idempotency_key,
    ]
    return [value for value in values if isinstance(value, str)]
