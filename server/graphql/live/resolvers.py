"""The subscriptions of spec/api.md "Live topics", thin over service/live.py.

`traceEvents` and `events` are loss-free and resumable (they read the log from the given
position); the state topics deliver the current state first and then each change, the
latest one only when a consumer falls behind. Over graphql-transport-ws, plain `events`
and `traceEvents` documents run compiled (live/fast_stream.py) with the same behaviour.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Collection
from typing import Any, TypeVar

import strawberry
from strawberry.types import Info

from server.auth.principal import Permission
from server.core.errors import DecisionGraphError, internal, not_found
from server.core.replay import TERMINAL
from server.graphql.context import authorize, context_of, services_of
from server.graphql.projections.types import ProjectionHealth, health_of
from server.graphql.replays.types import Replay, replay_of
from server.graphql.scalars import Long
from server.graphql.simulation.types import PolicySimulationRun
from server.graphql.traces.types import Event, event_of
from server.observability.metrics import SUBSCRIPTIONS
from server.observability.tracing import pushed
from server.service import live, projection
from server.service.ports import HEALTH_TOPIC, LOG_TOPIC, REPLAY_TOPIC

_log = logging.getLogger(__name__)
T = TypeVar("T")

SLOW_CONSUMER_CLOSE = 1008  # policy violation: the client stopped reading


def cut_off(socket: Any) -> Callable[[str], Awaitable[None]]:
    """Closing the subscriber's websocket, with a reason it can act on."""

    async def close(reason: str) -> None:
        if socket is not None:
            await socket.close(code=SLOW_CONSUMER_CLOSE, reason=reason[:120])

    return close


async def _delivered(
    info: Info[Any, Any], stream: AsyncIterator[T], tenant: str, topics: tuple[str, ...]
) -> AsyncIterator[T]:
    """`stream` under the slow-consumer guard; an unexpected failure ends it as
    DG_ERR_INTERNAL (logged, never leaked). Each push is a span under the trace of the
    notice that woke it (observability/tracing.py)."""
    services = services_of(info)
    SUBSCRIPTIONS.inc()
    try:
        async for item in services.live.watched(stream, cut_off(context_of(info).websocket)):
            with pushed(info.field_name, tenant, services.hub.cause(tenant, topics)):
                yield item
    except DecisionGraphError:
        raise
    except Exception:
        _log.exception("subscription stream failed")
        raise internal() from None
    finally:
        SUBSCRIPTIONS.dec()


@strawberry.type
class LiveSubscription:
    @strawberry.subscription(
        description="A trace's events after `afterTraceSeq` (-1: from the start), then live, "
        "in order, with no gap and no duplicate; completes after TraceFinished."
    )
    async def trace_events(
        self, info: Info[Any, Any], trace_id: str, after_trace_seq: int = -1
    ) -> AsyncGenerator[Event, None]:
        tenant = authorize(info, Permission.READ)
        feeds = services_of(info).live
        stream = live.follow_trace(feeds, tenant, trace_id, after_trace_seq)
        async for event in _delivered(info, stream, tenant, (LOG_TOPIC,)):
            yield event_of(event)

    @strawberry.subscription(
        description="The tenant's events after `afterLogSeq`, then live, in logSeq order, "
        "with no gap and no duplicate. Resume with the last logSeq received."
    )
    async def events(
        self,
        info: Info[Any, Any],
        after_log_seq: Long = 0,  # type: ignore[assignment]
    ) -> AsyncGenerator[Event, None]:
        tenant = authorize(info, Permission.READ)
        feeds = services_of(info).live
        stream = live.follow_events(feeds, tenant, after_log_seq)
        async for event in _delivered(info, stream, tenant, (LOG_TOPIC,)):
            yield event_of(event)

    @strawberry.subscription(
        description="Projection health now, then whenever the log or a projection moves."
    )
    async def projection_health(
        self, info: Info[Any, Any]
    ) -> AsyncGenerator[ProjectionHealth, None]:
        tenant = authorize(info, Permission.READ)
        services = services_of(info)

        async def load() -> projection.Health:
            return await projection.health(services.log, services.projections, tenant)

        async with services.live.state(
            ("health", tenant), tenant, (LOG_TOPIC, HEALTH_TOPIC), load
        ) as shared:
            topics = (LOG_TOPIC, HEALTH_TOPIC)
            async for health in _delivered(info, shared.changes(), tenant, topics):
                yield health_of(health)

    @strawberry.subscription(
        description="A replay run now, then at every change; completes when it ends."
    )
    async def replay(self, info: Info[Any, Any], replay_id: str) -> AsyncGenerator[Replay, None]:
        tenant = authorize(info, Permission.ADMIN)
        replays = services_of(info).replays

        async def load() -> Any:
            return await replays.get(replay_id, tenant)

        async for record in _run_of(info, ("replay", tenant, replay_id), load, TERMINAL):
            yield replay_of(record)

    @strawberry.subscription(
        description="A policy simulation run now, then at each progress report on the "
        "tenant's replay topic; completes when it ends (admin only)."
    )
    async def policy_simulation_run(
        self, info: Info[Any, Any], simulation_id: str
    ) -> AsyncGenerator[PolicySimulationRun, None]:
        tenant = authorize(info, Permission.ADMIN)
        simulations = services_of(info).simulations

        async def load() -> Any:
            return await simulations.get(simulation_id, tenant)

        key = ("simulation", tenant, simulation_id)
        async for record in _run_of(info, key, load, ("COMPLETED", "FAILED")):
            yield PolicySimulationRun(record=record)


async def _run_of(
    info: Info[Any, Any],
    key: tuple[str, str, str],
    load: Callable[[], Awaitable[Any]],
    terminal: Collection[str],
) -> AsyncIterator[Any]:
    """A run (a replay or a simulation) now and at every notice on its tenant's replay
    topic, until its status is terminal; one shared reload per run for all its followers."""
    kind, tenant, run_id = key

    async def loaded() -> Any:
        record = await load()
        if record is None:
            raise not_found(f"{kind.title()} not found: {run_id}")
        return record

    async with services_of(info).live.state(key, tenant, (REPLAY_TOPIC,), loaded) as shared:
        async for record in _delivered(info, shared.changes(), tenant, (REPLAY_TOPIC,)):
            yield record
            if record.status in terminal:
                return
