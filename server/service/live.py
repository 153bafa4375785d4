"""Live delivery: loss-free event streams and shared state feeds for subscriptions.

Delivery never trusts notices for data. A subscriber keeps the position it delivered last
and reads what follows from the log, which is gapless per tenant and in commit order, so a
stream is ordered, gapless and duplicate-free by construction, across reconnects too:
resuming from a position is the same loop as starting from it.

Reads are shared. Per tenant, a process keeps one `TenantTail`: a driver task that wakes
on the tenant's log notices (or its own timer, so a lost notice only delays), reads the new
events once and keeps the most recent ones in memory. Subscribers at the head take events
from there; a subscriber further behind (a backfill, or a slow consumer) reads the log
itself, page by page, until it reaches the tail. State topics (projection health, a
replay run, workflows) work the same way through `SharedState`: one load per change per
process, however many subscribers watch it, and slow subscribers simply see the latest
state.

Nothing queues per subscriber: a subscriber holds at most one page, and a consumer that
stops reading stops pulling, so the writer never waits on anyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Hashable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

from server.core.envelope import StoredEvent
from server.core.errors import invalid_argument, not_found, storage
from server.core.event_types import TRACE_FINISHED
from server.core.workflow import ActionRow
from server.service.ports import LOG_TOPIC, WORKFLOW_TOPIC, EventLog, Notices, Workflows

_log = logging.getLogger(__name__)

PAGE: Final = 500
TAIL_EVENTS: Final = 5_000
# A driver re-reads at least this often without a notice (a lost notice only delays).
FALLBACK_SECONDS: Final = 1.0
# State feeds coalesce bursts of notices into one load per interval.
STATE_INTERVAL: Final = 0.05
# A subscriber whose transport has not taken a message for this long is cut off.
SLOW_CONSUMER_SECONDS: Final = 30.0

Stall = Callable[[str], Awaitable[None]]

T = TypeVar("T")


class TenantTail:
    """The recent tail of one tenant's log, read once per change for every subscriber."""

    def __init__(self, log: EventLog, notices: Notices, tenant_id: str) -> None:
        self._log = log
        self._notices = notices
        self.tenant_id = tenant_id
        self.head = 0  # the last position read from the log
        self._recent: deque[StoredEvent] = deque(maxlen=TAIL_EVENTS)
        self._floor = 0  # `_recent` holds exactly the positions (_floor, head]
        self._advanced: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task: asyncio.Task[None] | None = None
        self.users = 0

    async def start(self) -> None:
        self.head = self._floor = (await self._log.stats(self.tenant_id)).last_log_seq
        self._task = asyncio.create_task(self._drive(), name=f"dg-tail-{self.tenant_id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def after(self, position: int) -> list[StoredEvent] | None:
        """Held events after `position` ([] at the head), or None when not held."""
        if position >= self.head:
            return []
        if position < self._floor:
            return None
        start = position - self._floor  # positions are gapless: index arithmetic is exact
        return [self._recent[i] for i in range(start, min(start + PAGE, len(self._recent)))]

    async def wait_beyond(self, position: int) -> None:
        while self.head <= position:
            await asyncio.shield(self._advanced)

    async def _drive(self) -> None:
        with self._notices.watch(self.tenant_id, LOG_TOPIC) as watch:
            while True:
                rung = await watch.wait(FALLBACK_SECONDS)
                try:
                    if rung and watch.position and watch.position <= self.head:
                        continue  # already read (or it was our own page boundary)
                    if not rung:
                        last = (await self._log.stats(self.tenant_id)).last_log_seq
                        if last <= self.head:
                            continue
                    await self._read_new()
                except Exception:  # the database blinked: the next wake tries again
                    _log.warning("tail of %s could not read the log", self.tenant_id, exc_info=True)

    async def _read_new(self) -> None:
        while True:
            page = await self._log.list_events(self.tenant_id, after_log_seq=self.head, limit=PAGE)
            for event in page:
                if event.log_seq != self.head + 1:
                    raise storage(f"log of {self.tenant_id} skipped from {self.head}")
                if len(self._recent) == self._recent.maxlen:
                    self._floor += 1
                self._recent.append(event)
                self.head = event.log_seq
            if page:
                advanced, self._advanced = (
                    self._advanced,
                    asyncio.get_running_loop().create_future(),
                )
                advanced.set_result(None)
            if len(page) < PAGE:
                return


class SharedState(Generic[T]):
    """The latest value of some state, reloaded once per change for every subscriber."""

    def __init__(
        self,
        notices: Notices,
        tenant_id: str,
        topics: tuple[str, ...],
        load: Callable[[], Awaitable[T]],
    ) -> None:
        self._notices = notices
        self._tenant_id = tenant_id
        self._topics = topics
        self._load = load
        self.value: T | None = None
        self.error: Exception | None = None
        self.version = 0
        self._changed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task: asyncio.Task[None] | None = None
        self.users = 0

    async def start(self) -> None:
        await self._refresh()
        self._task = asyncio.create_task(self._drive(), name=f"dg-state-{self._tenant_id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def changes(self) -> AsyncIterator[T]:
        """The current value, then each new one; a slow reader skips to the latest."""
        seen = 0
        while True:
            if self.version > seen:
                seen = self.version
                if self.error is not None:
                    raise self.error
                assert self.value is not None
                yield self.value
            await asyncio.shield(self._changed)

    async def _refresh(self) -> None:
        try:
            value: T | None = await self._load()
            error = None
        except Exception as exc:  # e.g. the watched replay does not exist
            value, error = None, exc
        if self.version and value == self.value and error is None:
            return
        self.value, self.error = value, error
        self.version += 1
        changed, self._changed = self._changed, asyncio.get_running_loop().create_future()
        changed.set_result(None)

    async def _drive(self) -> None:
        with self._notices.watch(self._tenant_id, *self._topics) as watch:
            while True:
                await watch.wait(FALLBACK_SECONDS)
                await asyncio.sleep(STATE_INTERVAL)  # coalesce a burst into one load
                try:
                    await self._refresh()
                except Exception:
                    _log.warning("state feed of %s failed", self._tenant_id, exc_info=True)


class _Consumer:
    __slots__ = ("on_stall", "stalled", "waiting_since")

    def __init__(self, on_stall: Stall) -> None:
        self.on_stall = on_stall
        self.waiting_since: float | None = None
        self.stalled = False


@dataclass
class LiveFeeds:
    """Every shared tail and state feed of this process, started on first use."""

    log: EventLog
    notices: Notices
    slow_consumer_seconds: float = SLOW_CONSUMER_SECONDS
    _tails: dict[str, TenantTail] = field(default_factory=dict)
    _states: dict[Hashable, SharedState[Any]] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _consumers: set[_Consumer] = field(default_factory=set)
    _watchdog: asyncio.Task[None] | None = None

    async def watched(self, stream: AsyncIterator[T], on_stall: Stall) -> AsyncGenerator[T, None]:
        """`stream`, cut off (`on_stall`) if a message it yielded is not taken in time.

        A subscription's generator stays suspended at `yield` while the transport sends
        the previous message; a send that blocks that long means the client stopped
        reading. Nothing piles up meanwhile (the generator simply is not pulled), and
        closing the connection frees the subscriber with a reason it can act on.
        """
        consumer = _Consumer(on_stall)
        self._consumers.add(consumer)
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.create_task(self._watch_consumers(), name="dg-watchdog")
        try:
            async for item in stream:
                consumer.waiting_since = asyncio.get_running_loop().time()
                yield item
                consumer.waiting_since = None
                if consumer.stalled:  # cut off: what was in flight is all it gets
                    return
        finally:
            self._consumers.discard(consumer)

    async def _watch_consumers(self) -> None:
        limit = self.slow_consumer_seconds
        while self._consumers:
            await asyncio.sleep(min(1.0, limit / 4))
            now = asyncio.get_running_loop().time()
            for consumer in list(self._consumers):
                since = consumer.waiting_since
                if since is not None and not consumer.stalled and now - since > limit:
                    consumer.stalled = True
                    _log.warning("cutting off a subscriber that read nothing for %.0f s", limit)
                    reason = (
                        f"slow consumer: nothing read for {limit:.0f}s; reconnect and resume "
                        "from your last position"
                    )
                    try:
                        await consumer.on_stall(reason)
                    except Exception:
                        _log.debug("closing a slow subscriber failed", exc_info=True)

    def tail(self, tenant_id: str) -> AbstractAsyncContextManager[TenantTail]:
        """The tenant's shared tail, started for the first user, stopped after the last."""
        return self._shared(
            self._tails, tenant_id, lambda: TenantTail(self.log, self.notices, tenant_id)
        )

    def state(
        self,
        key: Hashable,
        tenant_id: str,
        topics: tuple[str, ...],
        load: Callable[[], Awaitable[T]],
    ) -> AbstractAsyncContextManager[SharedState[T]]:
        """The shared state feed `key` (the first user's `load` serves everyone)."""
        return self._shared(
            self._states, key, lambda: SharedState(self.notices, tenant_id, topics, load)
        )

    @contextlib.asynccontextmanager
    async def _shared(
        self, registry: dict[Any, Any], key: Hashable, create: Callable[[], Any]
    ) -> AsyncIterator[Any]:
        async with self._lock:
            if key not in registry:
                started = create()
                await started.start()
                registry[key] = started
            feed = registry[key]
            feed.users += 1
        try:
            yield feed
        finally:
            feed.users -= 1
            if feed.users == 0 and key in registry and registry[key] is feed:
                del registry[key]
                await feed.stop()

    @property
    def counts(self) -> tuple[int, int]:
        """(tails, state feeds) currently running."""
        return len(self._tails), len(self._states)

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        for tail in list(self._tails.values()):
            await tail.stop()
        for shared in list(self._states.values()):
            await shared.stop()
        self._tails.clear()
        self._states.clear()


async def _stream_from(
    feeds: LiveFeeds, tail: TenantTail, tenant_id: str, position: int
) -> AsyncIterator[StoredEvent]:
    """Every event of the tenant after `position`, forever: from the tail when it holds
    them, from the log otherwise."""
    while True:
        page = tail.after(position)
        if page is None:
            page = await feeds.log.list_events(tenant_id, after_log_seq=position, limit=PAGE)
        if not page:
            await tail.wait_beyond(position)
            continue
        for event in page:
            if event.log_seq != position + 1:  # cannot happen: positions are gapless
                raise storage(f"event stream of {tenant_id} skipped from {position}")
            yield event
            position = event.log_seq


async def follow_events(
    feeds: LiveFeeds, tenant_id: str, after_log_seq: int
) -> AsyncIterator[StoredEvent]:
    """The tenant's events after `after_log_seq`, then live, loss-free."""
    if after_log_seq < 0:
        raise invalid_argument(f"afterLogSeq must be >= 0, got {after_log_seq}")
    last = (await feeds.log.stats(tenant_id)).last_log_seq
    if after_log_seq > last:
        raise invalid_argument(
            f"afterLogSeq {after_log_seq} is beyond the tenant's last position {last}"
        )
    async with feeds.tail(tenant_id) as tail:
        async for event in _stream_from(feeds, tail, tenant_id, after_log_seq):
            yield event


async def follow_trace(
    feeds: LiveFeeds, tenant_id: str, trace_id: str, after_trace_seq: int
) -> AsyncIterator[StoredEvent]:
    """One trace's events after `after_trace_seq`, then live; ends after TraceFinished.

    From the start (-1), a trace that has no events yet is waited for: an agent's follower
    subscribes before the agent appends, and must then see the whole trace. A later
    position of a trace that does not exist names events nobody could have delivered.
    """
    if after_trace_seq < -1:
        raise invalid_argument(f"afterTraceSeq must be >= -1, got {after_trace_seq}")
    overview = await feeds.log.trace_overview(tenant_id, trace_id)
    if overview is None:
        if after_trace_seq != -1:
            raise not_found(f"Trace '{trace_id}' not found")
    elif after_trace_seq > overview.started.trace_seq + overview.event_count - 1:
        raise invalid_argument(
            f"afterTraceSeq {after_trace_seq} is beyond the trace's last event "
            f"{overview.event_count - 1}"
        )
    async with feeds.tail(tenant_id) as tail:
        # Everything at or before `start` is in the backfill read below, which happens
        # after it; everything after `start` comes through the live stream. Overlap is
        # dropped by trace_seq.
        start = tail.head
        delivered = after_trace_seq
        while True:
            page = await feeds.log.trace_events(
                tenant_id, trace_id, after_trace_seq=delivered, limit=PAGE
            )
            for event in page:
                yield event
                delivered = event.trace_seq
                if event.event_type == TRACE_FINISHED:
                    return
            if len(page) < PAGE:
                break
        async for event in _stream_from(feeds, tail, tenant_id, start):
            if event.trace_id != trace_id or event.trace_seq <= delivered:
                continue
            yield event
            delivered = event.trace_seq
            if event.event_type == TRACE_FINISHED:
                return


async def follow_workflow_changes(
    feeds: LiveFeeds, workflows: Workflows, tenant_id: str, after_seq: int | None
) -> AsyncIterator[tuple[int, ActionRow, str]]:
    """Workflow actions after `after_seq` (or from now), in order, then live."""
    if after_seq is not None and after_seq < 0:
        raise invalid_argument(f"afterSeq must be >= 0, got {after_seq}")
    with feeds.notices.watch(tenant_id, WORKFLOW_TOPIC) as watch:
        position = after_seq if after_seq is not None else await workflows.last_change(tenant_id)
        while True:
            page = await workflows.changes(tenant_id, position, PAGE)
            for change in page:
                yield change
                position = change[0]
            if len(page) < PAGE:
                await watch.wait(FALLBACK_SECONDS)
