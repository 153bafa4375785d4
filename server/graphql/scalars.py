"""Custom scalars: `Long` (64-bit positions) and `JSON` (payloads)."""

from __future__ import annotations

from typing import Any, NewType

import strawberry
from strawberry.scalars import JSON
from strawberry.types.scalar import ScalarDefinition

__all__ = ["JSON", "SCALAR_MAP", "Long"]

Long = NewType("Long", int)

_MIN, _MAX = -(2**63), 2**63 - 1


def _parse_long(value: Any) -> int:
    # bool is an int subclass; a JSON `true` must not become position 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"Long cannot represent non-integer value: {value!r}")
    if not _MIN <= value <= _MAX:
        raise ValueError(f"Long cannot represent value outside 64 bits: {value}")
    return value


LONG_SCALAR: ScalarDefinition = strawberry.scalar(
    name="Long",
    description="A 64-bit integer, sent as a JSON number.",
    serialize=int,
    parse_value=_parse_long,
)

SCALAR_MAP: dict[object, ScalarDefinition] = {Long: LONG_SCALAR}
