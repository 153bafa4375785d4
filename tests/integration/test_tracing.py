"""One decision, one OpenTelemetry trace: the appendEvents mutation, the worker's
projection it set off, and the subscription pushes it caused, all in this process (the
app and a real worker loop) so that an in-memory exporter sees every span."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import httpx
import pytest
from httpx_ws import aconnect_ws
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from server.settings import Settings
from tests.support import GraphQLClient, started

pytestmark = pytest.mark.anyio

HEALTH = "subscription { projectionHealth { projectedTo } }"
EVENTS = "subscription { events(afterLogSeq: 0) { logSeq } }"


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    """The process's tracer provider, exporting to memory (once per process: the API
    allows one global provider; afterwards the exporter stops keeping spans)."""
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.clear()
    exporter.shutdown()


@pytest.fixture
async def quiet_worker(settings: Settings) -> AsyncIterator[asyncio.Task[None]]:
    """A worker whose sweep waits an hour: the catch-up job alone projects the append."""
    from jobs.worker import serve

    stop = asyncio.Event()
    task = asyncio.create_task(serve(replace(settings, sweep_interval=3600), stop))
    await asyncio.sleep(0.3)  # its first sweep (of nothing new) is done
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def _first_pushes(
    http: httpx.AsyncClient, token: str, tenant: str, ready: asyncio.Event
) -> list[str]:
    """Subscribe to projectionHealth and events; return once both showed the probe."""
    async with aconnect_ws("/graphql", http, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send_json(
            {"type": "connection_init", "payload": {"authorization": f"Bearer {token}",
                                                    "tenant": tenant}}
        )  # fmt: skip
        assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
        for number, query in (("1", HEALTH), ("2", EVENTS)):
            await ws.send_json({"id": number, "type": "subscribe", "payload": {"query": query}})
        # Health now and the warm-up event: what was there before the probe.
        seen = [(await ws.receive_json(timeout=5))["id"] for _ in range(2)]
        ready.set()
        pushed_event = projected = False
        while not (pushed_event and projected):
            message = await ws.receive_json(timeout=15)
            seen.append(message["id"])
            data = message["payload"]["data"]
            pushed_event |= (data.get("events") or {}).get("logSeq") == 2
            projected |= (data.get("projectionHealth") or {}).get("projectedTo", 0) >= 2
        return seen


async def test_an_append_the_worker_projection_and_the_pushes_share_one_trace(
    spans: InMemorySpanExporter,
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    admin_token: str,
    tenant: str,
    quiet_worker: asyncio.Task[None],
) -> None:
    await gql.append_ok([started("warm")])  # the tenant exists: subscriptions may start
    await asyncio.sleep(1.0)  # its catch-up is done and pushed; what follows is the probe
    ready = asyncio.Event()
    listening = asyncio.create_task(_first_pushes(http, admin_token, tenant, ready))
    await ready.wait()
    spans.clear()
    await gql.append_ok([started("traced")])  # log_seq 2
    await asyncio.wait_for(listening, timeout=20)

    finished: list[ReadableSpan] = list(spans.get_finished_spans())
    (append,) = [s for s in finished if s.name == "dg.appendEvents"]
    trace_id = append.context.trace_id
    mine = {s.context.span_id: s for s in finished if s.context.trace_id == trace_id}
    names = sorted({s.name for s in mine.values()})
    assert "dg.catch_up" in names, names
    assert "dg.push events" in names, names
    assert "dg.push projectionHealth" in names, names

    def parent_of(span: ReadableSpan) -> ReadableSpan | None:
        return mine.get(span.parent.span_id) if span.parent else None

    # append -> (the worker) catch_up -> the health push; append -> the events push.
    (catch_up,) = [s for s in mine.values() if s.name == "dg.catch_up"]
    assert parent_of(catch_up) is append
    health_pushes = [s for s in mine.values() if s.name == "dg.push projectionHealth"]
    assert any(parent_of(s) is catch_up for s in health_pushes), health_pushes
    event_pushes = [s for s in mine.values() if s.name == "dg.push events"]
    assert all(parent_of(s) is append for s in event_pushes)
    assert catch_up.attributes is not None and catch_up.attributes["dg.tenant"] == tenant
