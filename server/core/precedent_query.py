"""Precedent search arguments (spec/semantics.md §7.6): filter-and-order, no scoring.

The "requires" checks test for None while the filters test for truthiness, so an empty
string means "no filter" (kept from the reference).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from server.core.errors import invalid_argument

MAX_QUERY_LIMIT: Final = 10_000


@dataclass(frozen=True, slots=True)
class PrecedentQuery:
    policy_id: str | None = None
    policy_version: str | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    outcome: str | None = None
    limit: int = 100

    def __post_init__(self) -> None:
        if self.policy_version is not None and self.policy_id is None:
            raise invalid_argument("policy_version requires policy_id")
        if self.entity_id is not None and self.entity_type is None:
            raise invalid_argument("entity_id requires entity_type")
        if self.limit <= 0:
            raise invalid_argument("limit must be positive")
        if self.limit > MAX_QUERY_LIMIT:
            raise invalid_argument(f"limit must be <= {MAX_QUERY_LIMIT}")


@dataclass(frozen=True, slots=True)
class PrecedentHit:
    trace_id: str
    workflow: str
    title: str
    outcome: str | None
    policy_id: str | None
    policy_version: str | None
    finished_at: str | None
    last_log_seq: int
