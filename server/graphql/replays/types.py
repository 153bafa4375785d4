"""GraphQL types of replay runs."""

from __future__ import annotations

from enum import Enum

import strawberry

from server.core.replay import ReplayRecord
from server.graphql.errors import UserError
from server.graphql.projections.types import Digests
from server.graphql.scalars import Long


@strawberry.enum
class ReplayProjection(Enum):
    ALL = "ALL"
    CONTEXT_GRAPH = "CONTEXT_GRAPH"
    TRACE_SUMMARY = "TRACE_SUMMARY"
    PRECEDENT_INDEX = "PRECEDENT_INDEX"
    WORKFLOWS = "WORKFLOWS"


@strawberry.enum
class ReplayMode(Enum):
    CATCH_UP = "CATCH_UP"
    REBUILD = "REBUILD"
    VERIFY = "VERIFY"


@strawberry.enum
class ReplayStatus(Enum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


@strawberry.type
class ReplayError:
    code: str
    message: str


def _digests(values: dict[str, str] | None) -> Digests | None:
    if values is None:
        return None
    return Digests(
        context_graph=values.get("context_graph"),
        trace_summary=values.get("trace_summary"),
        precedent_index=values.get("precedent_index"),
        full_projection=values.get("full_projection"),
        workflows=values.get("workflows"),
    )


@strawberry.type
class Replay:
    replay_id: str
    projection: ReplayProjection
    mode: ReplayMode
    status: ReplayStatus
    reason: str
    requested_by: str
    requested_at: str
    started_at: str | None
    finished_at: str | None
    processed_events: Long
    last_log_seq: Long
    target_log_seq: Long | None
    cancel_requested: bool
    digests_match: bool | None = strawberry.field(description="Set by VERIFY; null otherwise.")
    expected_digests: Digests | None = strawberry.field(
        description="VERIFY: the live projection's digests at the positions verified."
    )
    actual_digests: Digests | None = strawberry.field(
        description="VERIFY: the digests of the state rebuilt from the log."
    )
    error: ReplayError | None


def replay_of(record: ReplayRecord) -> Replay:
    target = record.target_log_seq
    return Replay(
        replay_id=record.replay_id,
        projection=ReplayProjection(record.projection),
        mode=ReplayMode(record.mode),
        status=ReplayStatus(record.status),
        reason=record.reason,
        requested_by=record.requested_by,
        requested_at=record.requested_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        processed_events=Long(record.processed_events),
        last_log_seq=Long(record.last_log_seq),
        target_log_seq=Long(target) if target is not None else None,
        cancel_requested=record.cancel_requested,
        digests_match=record.digests_match,
        expected_digests=_digests(record.expected),
        actual_digests=_digests(record.actual),
        error=ReplayError(code=record.error_code, message=record.error_message or "")
        if record.error_code
        else None,
    )


@strawberry.type
class ReplayPayload:
    replay: Replay | None
    errors: list[UserError]
