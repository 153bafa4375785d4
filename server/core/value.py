"""The base of the value types built once or more per event (envelopes, stored events, rows).

They are msgspec Structs, frozen like the dataclasses they replace: a Struct is built in C,
about 7x faster than a frozen dataclass, whose __init__ sets each field through
object.__setattr__. On the ingest and projection paths that was several microseconds of
every event.
"""

from __future__ import annotations

import msgspec


class Value(msgspec.Struct, frozen=True):
    """An immutable, hashable record with positional and keyword construction."""
