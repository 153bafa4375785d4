"""The ports the use cases talk to; adapters in store/ and pubsub/ implement them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from server.core.append_plan import PlannedEvent
from server.core.bulk_projection import BulkOutcome
from server.core.envelope import StoredEvent
from server.core.graph import EdgeRow, NodeRow
from server.core.graph_query import EdgeCursor, EdgeRef
from server.core.precedent_cases import Case
from server.core.precedent_query import PrecedentHit, PrecedentQuery
from server.core.projection_batch import BatchReport, FailureRecord
from server.core.rate_limit import Admission, Scope
from server.core.replay import ReplayRecord
from server.core.trace_summary import SummaryRow
from server.core.validation import ValidatedEvent
from server.core.workflow import (
    ActionRow,
    DueTimer,
    JournalEntry,
    NotificationRow,
    WorkflowItem,
)


@dataclass(frozen=True, slots=True)
class LogStats:
    last_log_seq: int
    trace_count: int

    @property
    def event_count(self) -> int:
        # Positions are gapless per tenant, so the last one is also the count.
        return self.last_log_seq


@dataclass(frozen=True, slots=True)
class TraceOverview:
    """A trace as the log knows it, fresh at every read: no projection involved."""

    started: StoredEvent
    finished: StoredEvent | None
    event_count: int
    last_log_seq: int


class Clock(Protocol):
    def now(self) -> datetime: ...


class EventLog(Protocol):
    """A tenant-scoped, append-only log with gapless positions in commit order."""

    async def append(
        self, tenant_id: str, batch: Sequence[ValidatedEvent], recorded_at: str
    ) -> list[PlannedEvent]: ...

    async def stats(self, tenant_id: str) -> LogStats: ...

    async def list_events(
        self,
        tenant_id: str,
        *,
        after_log_seq: int = 0,
        until_log_seq: int | None = None,
        event_type: str | None = None,
        trace_id: str | None = None,
        limit: int | None = None,
    ) -> list[StoredEvent]: ...

    async def trace_events(
        self,
        tenant_id: str,
        trace_id: str,
        *,
        after_trace_seq: int = -1,
        limit: int | None = None,
    ) -> list[StoredEvent]: ...

    async def trace_overview(self, tenant_id: str, trace_id: str) -> TraceOverview | None: ...


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: str
    name: str
    tenants: tuple[str, ...]
    roles: tuple[str, ...]
    revoked: bool = False


class KeyLookup(Protocol):
    async def find_key(self, token_hash: str) -> KeyRecord | None: ...


class Publisher(Protocol):
    """Post-commit notices; a lost notice may delay a subscriber, never lose an event."""

    async def log_advanced(self, tenant_id: str, last_log_seq: int) -> None: ...

    async def health_changed(self, tenant_id: str, position: int) -> None: ...

    async def replay_changed(self, tenant_id: str, position: int) -> None: ...

    async def workflow_changed(self, tenant_id: str, position: int) -> None: ...


class NoticeWatch(Protocol):
    """A doorbell for one (tenant, topic)."""

    position: int

    async def wait(self, within: float) -> bool:
        """True when a notice arrived since the last wait, False after `within` seconds."""
        ...


LOG_TOPIC = "log"  # the tenant's log advanced
HEALTH_TOPIC = "health"  # projection cursors or failures changed
REPLAY_TOPIC = "replay"  # a replay run changed
WORKFLOW_TOPIC = "workflow"  # a review workflow changed


class Notices(Protocol):
    """Notices published by Publisher, as seen by one process's subscribers."""

    def watch(self, tenant_id: str, *topics: str) -> AbstractContextManager[NoticeWatch]: ...


class Projections(Protocol):
    """Projection state per scope (a tenant, or a VERIFY replay's scratch scope)."""

    async def catch_up(
        self,
        tenant_id: str,
        scope: str | None = None,
        projections: Sequence[str] = ...,
        until: int | None = None,
        batch_size: int | None = None,
    ) -> BatchReport: ...

    async def reset(self, scope: str, projections: Sequence[str]) -> None: ...

    async def rebuild_workflows(self, tenant_id: str) -> BatchReport: ...

    async def rebuild(
        self,
        tenant_id: str,
        projections: Sequence[str],
        progress: Callable[[int], Awaitable[bool]],
    ) -> BulkOutcome: ...

    async def scratch_digests(
        self,
        tenant_id: str,
        projections: Sequence[str],
        limits: dict[str, int],
        progress: Callable[[int], Awaitable[bool]],
    ) -> BulkOutcome: ...

    async def cursors(self, scope: str) -> dict[str, int]: ...

    async def digests(
        self, scope: str, *, use_cache: bool = True, only: Collection[str] | None = None
    ) -> tuple[dict[str, int], dict[str, str]]:
        """Every projection's cursor, and the digests of all (or `only` these)."""
        ...

    async def tenant_status(self, scope: str) -> dict[str, Any]: ...

    async def failures(self, scope: str) -> list[FailureRecord]: ...

    async def summary(self, scope: str, trace_id: str) -> SummaryRow | None: ...

    async def recent(
        self,
        scope: str,
        *,
        before: tuple[int, str] | None = None,
        limit: int = 20,
        search: str | None = None,
        workflow: str | None = None,
        status: str | None = None,
    ) -> list[SummaryRow]: ...

    async def edges_touching(
        self, scope: str, node_ids: Sequence[str], edge_types: Sequence[str] | None
    ) -> list[EdgeRef]: ...

    async def nodes(self, scope: str, ids: Sequence[str]) -> list[NodeRow]: ...

    async def edges(self, scope: str, ids: Sequence[str]) -> list[EdgeRow]: ...

    async def node_edges(
        self, scope: str, key: str, direction: str, cursor: EdgeCursor | None, limit: int
    ) -> tuple[list[EdgeRow], bool]: ...

    async def precedents(self, scope: str, query: PrecedentQuery) -> list[PrecedentHit]: ...

    async def drop_scope(self, scope: str) -> None: ...

    async def lagging_tenants(self) -> list[tuple[str, int]]: ...


class PrecedentCases(Protocol):
    """The precedent case projection (store/precedent_cases.py)."""

    async def catch_up(self, tenant_id: str) -> tuple[int, bool]: ...

    async def cursor(self, tenant_id: str) -> int: ...

    async def finished_since(self, tenant_id: str, position: int, limit: int) -> list[Case]: ...

    async def count_finished(self, tenant_id: str) -> int: ...

    async def lagging_tenants(self) -> list[str]: ...


class Replays(Protocol):
    async def create(
        self, tenant_id: str, projection: str, mode: str, reason: str, requested_by: str
    ) -> ReplayRecord: ...

    async def get(self, replay_id: str, tenant_id: str | None = None) -> ReplayRecord | None: ...

    async def recent(self, tenant_id: str, limit: int) -> list[ReplayRecord]: ...

    async def update(self, replay_id: str, **fields: Any) -> ReplayRecord: ...

    async def start(self, replay_id: str) -> ReplayRecord | None: ...

    async def finish(self, replay_id: str, status: str, **fields: Any) -> ReplayRecord: ...

    async def request_cancel(self, replay_id: str, tenant_id: str) -> ReplayRecord | None: ...

    async def claim_orphans(self, stale_seconds: float) -> list[ReplayRecord]: ...

    def run_lock(self, replay_id: str) -> AbstractAsyncContextManager[bool]: ...


class Audit(Protocol):
    async def record(
        self,
        *,
        tenant_id: str | None,
        key_id: str | None,
        action: str,
        outcome: str,
        target: str | None = None,
        reason: str | None = None,
        detail: Any = None,
    ) -> None: ...


class RateLimiter(Protocol):
    async def admit(self, key_id: str, tenant_id: str, scope: Scope) -> Admission | None: ...


class Jobs(Protocol):
    async def catch_up(self, tenant_id: str, traceparent: str | None = None) -> bool: ...

    async def replay(self, replay_id: str, attempt: int = 0) -> None: ...

    async def simulation(self, simulation_id: str) -> None: ...

    async def worker_heartbeats(self) -> bool: ...


class Workflows(Protocol):
    """The workflow projection, its journal and its reads (store/workflows.py)."""

    async def catch_up(
        self, tenant_id: str, scope: str | None = None, until: int | None = None
    ) -> BatchReport: ...

    async def act(
        self,
        tenant_id: str,
        workflow_id: str,
        kind: str,
        request: Mapping[str, Any],
        actor: tuple[str, str, str | None],
        at: str,
        check: Callable[[WorkflowItem], dict[str, Any] | None],
        dedupe_key: str | None = None,
    ) -> tuple[WorkflowItem, int] | None: ...

    async def due(self, now: datetime, horizon_minutes: int) -> Sequence[DueTimer]: ...

    async def get(self, scope: str, workflow_id: str) -> WorkflowItem | None: ...

    async def items(self, scope: str, filters: Any, now: datetime) -> list[WorkflowItem]: ...

    async def actions(self, scope: str, workflow_id: str) -> list[tuple[int, ActionRow]]: ...

    async def changes(
        self, scope: str, after_seq: int, limit: int
    ) -> list[tuple[int, ActionRow, str]]: ...

    async def last_change(self, scope: str) -> int: ...

    async def notifications(
        self, scope: str, workflow_id: str | None = None, limit: int = 100
    ) -> list[tuple[int, NotificationRow]]: ...

    async def journal(self, tenant_id: str, workflow_ids: Sequence[str]) -> list[JournalEntry]: ...
