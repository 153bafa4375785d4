"""Request budgets: which scope an operation spends, and fixed one-minute windows.

Three scopes, as in the platform we replace (spec/platform.md §2.5): `read` (queries),
`write` (mutations) and `admin` (replays and exports). Budgets are per API key, per tenant,
per scope and per minute, shared by every server process (the counters live in Redis), and a
refusal says when the window ends (`Retry-After`), which the old per-node limiter did not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Scope = Literal["read", "write", "admin"]
WINDOW_SECONDS: Final = 60
# Root fields that cost the admin budget whatever the operation type.
ADMIN_FIELDS: Final = frozenset({"requestReplay", "cancelReplay", "auditExport"})


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Requests per key, tenant and minute; 0 switches a scope's limit off."""

    read: int = 6000
    write: int = 6000
    admin: int = 60

    def of(self, scope: Scope) -> int:
        limit: int = getattr(self, scope)
        return limit

    @property
    def enabled(self) -> bool:
        return any((self.read, self.write, self.admin))


def scope_of(operation: str, root_fields: frozenset[str]) -> Scope:
    """`operation` is "query", "mutation" or "subscription"."""
    if root_fields & ADMIN_FIELDS:
        return "admin"
    return "write" if operation == "mutation" else "read"


@dataclass(frozen=True, slots=True)
class Window:
    index: int
    retry_after: int  # whole seconds until the next window opens (at least 1)


def window_at(unix_seconds: float) -> Window:
    index = int(unix_seconds // WINDOW_SECONDS)
    remaining = (index + 1) * WINDOW_SECONDS - unix_seconds
    return Window(index, max(1, int(remaining + 0.999)))


@dataclass(frozen=True, slots=True)
class Admission:
    allowed: bool
    limit: int
    remaining: int
    retry_after: int


# A server process reserves budget from the shared counter in leases of about 1% of the
# limit, so a busy key costs one Redis round trip per lease instead of one per request.
# Units a process reserved but did not spend before the window closed count as used:
# with P processes a key may be refused up to P leases (P% of its budget) early, never late.
LEASE_SHARE: Final = 100


def lease_size(limit: int) -> int:
    return max(1, limit // LEASE_SHARE)


def granted(limit: int, counter_after: int, reserved: int) -> int:
    """Units of a reservation of `reserved` that fit under `limit`, given the shared counter's
    value after the reservation was added to it."""
    before = counter_after - reserved
    return max(0, min(reserved, limit - before))
