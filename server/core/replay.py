"""Replay runs: modes, statuses, the projections a request covers, and who may overlap."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from server.core.errors import invalid_argument
from server.core.projection_batch import PROJECTIONS
from server.core.workflow import WORKFLOWS

# The three projections of spec §6 (their digests make up `full_projection`) and the
# workflow projection, which replays the same way.
ALL_PROJECTIONS: Final = (*PROJECTIONS, WORKFLOWS)

ALL: Final = "ALL"
CATCH_UP: Final = "CATCH_UP"
REBUILD: Final = "REBUILD"
VERIFY: Final = "VERIFY"
MODES: Final = (CATCH_UP, REBUILD, VERIFY)

QUEUED: Final = "QUEUED"
RUNNING: Final = "RUNNING"
COMPLETED: Final = "COMPLETED"
FAILED: Final = "FAILED"
CANCELLED: Final = "CANCELLED"
ACTIVE: Final = (QUEUED, RUNNING)
TERMINAL: Final = (COMPLETED, FAILED, CANCELLED)

# Phases let a resumed run skip what already happened (a REBUILD must not reset twice).
START: Final = "start"
PROJECTING: Final = "projecting"
WORKFLOW_PHASE: Final = "workflows"  # a REBUILD's workflow part, as older releases persisted it

PROJECTION_NAMES: Final = {name.upper(): name for name in ALL_PROJECTIONS}


def projections_of(projection: str) -> tuple[str, ...]:
    """The projection names a request covers: `ALL` is every projection."""
    if projection == ALL:
        return ALL_PROJECTIONS
    try:
        return (PROJECTION_NAMES[projection],)
    except KeyError:
        raise invalid_argument(f"Unknown projection {projection!r}") from None


def overlaps(a: str, b: str) -> bool:
    return bool(set(projections_of(a)) & set(projections_of(b)))


def check_request(projection: str, mode: str, reason: str) -> str:
    projections_of(projection)
    if mode not in MODES:
        raise invalid_argument(f"Unknown replay mode {mode!r}")
    reason = reason.strip()
    if not reason:
        raise invalid_argument("A reason is required for a replay")
    if len(reason) > 2000:
        raise invalid_argument("reason must be at most 2000 characters")
    return reason


def verify_scope(replay_id: str) -> str:
    """Where a VERIFY builds its scratch state; tenant ids cannot contain ':'."""
    return f"verify:{replay_id}"


@dataclass(frozen=True, slots=True)
class ReplayRecord:
    replay_id: str
    tenant_id: str
    projection: str
    mode: str
    status: str
    phase: str
    reason: str
    requested_by: str
    requested_at: str
    started_at: str | None = None
    finished_at: str | None = None
    processed_events: int = 0
    last_log_seq: int = 0
    target: dict[str, int] = field(default_factory=dict)
    expected: dict[str, str] | None = None
    actual: dict[str, str] | None = None
    digests_match: bool | None = None
    cancel_requested: bool = False
    error_code: str | None = None
    error_message: str | None = None
    attempts: int = 0

    @property
    def projections(self) -> tuple[str, ...]:
        return projections_of(self.projection)

    @property
    def target_log_seq(self) -> int | None:
        """The position the run works towards (the log's end, or VERIFY's live cursors)."""
        if "end" in self.target:
            return self.target["end"]
        wanted = [self.target[p] for p in self.projections if p in self.target]
        return max(wanted) if wanted else None
