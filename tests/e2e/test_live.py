"""Subscriptions with real websocket clients against `decisiongraph serve` and a worker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from decisiongraph.sdk import DecisionGraphClient, LiveConnection, SubscriptionError
from server.settings import Settings
from server.startup import create_key
from tests.e2e.conftest import Process, Server
from tests.support import finished, input_observed, new_tenant, started, to_input

pytestmark = pytest.mark.e2e

EVENTS = "subscription($after: Long!) { events(afterLogSeq: $after) { logSeq eventId traceId } }"
TRACE = """subscription($trace: String!, $after: Int!) {
  traceEvents(traceId: $trace, afterTraceSeq: $after) { traceSeq eventType logSeq } }"""


def key(settings: Settings, tenants: list[str], role: str = "admin") -> str:
    return asyncio.run(create_key(settings, None, tenants, [role]))


def traces(prefix: str, count: int, length: int = 10) -> list[dict[str, Any]]:
    """`count` events: whole traces of `length` (started, inputs, finished)."""
    events: list[dict[str, Any]] = []
    trace = 0
    while len(events) < count:
        name = f"{prefix}-{trace}"
        events.append(to_input(started(name)))
        events += [to_input(input_observed(name, s)) for s in range(1, length - 1)]
        events.append(to_input(finished(name, length - 1)))
        trace += 1
    return events[:count] if count % length == 0 else events


async def collect(
    stream: AsyncIterator[dict[str, Any]], field: str, count: int, within: float = 30
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(within):
        async for data in stream:
            out.append(data[field])
            if len(out) == count:
                break
    return out


def test_ten_thousand_events_arrive_in_order_across_a_reconnect(
    server: Server, settings: Settings
) -> None:
    tenant = new_tenant()
    token = key(settings, [tenant])
    events = traces("bulk", 10_000)

    async def scenario() -> tuple[list[int], list[str]]:
        async with DecisionGraphClient(server.url, token) as api:
            received: list[dict[str, Any]] = []

            async def ingest() -> None:
                for start in range(0, len(events), 500):
                    await api.append(events[start : start + 500])

            writer = asyncio.create_task(ingest())
            # First connection: take part of the stream, then drop the socket mid-flight.
            async with LiveConnection(server.url, token) as live:
                stream = live.subscribe(EVENTS, {"after": 0})
                received += await collect(stream, "events", 3_000)
                await stream.aclose()  # type: ignore[attr-defined]
            # Reconnect from the last position received; no gap, no duplicate.
            async with LiveConnection(server.url, token) as live:
                after = received[-1]["logSeq"]
                stream = live.subscribe(EVENTS, {"after": after})
                received += await collect(stream, "events", 10_000 - len(received), within=60)
            await writer
            return [e["logSeq"] for e in received], [e["eventId"] for e in received]

    positions, ids = asyncio.run(scenario())
    assert positions == list(range(1, 10_001))
    assert ids == [e["eventId"] for e in events]


def test_a_subscriber_sees_only_its_own_tenant(server: Server, settings: Settings) -> None:
    mine, other = new_tenant(), new_tenant()
    token = key(settings, [mine, other])

    async def scenario() -> list[str]:
        async with (
            DecisionGraphClient(server.url, token, other) as theirs,
            DecisionGraphClient(server.url, token, mine) as ours,
            LiveConnection(server.url, token, mine) as live,
        ):
            stream = live.subscribe(EVENTS, {"after": 0})
            await theirs.append([to_input(started("secret")), to_input(started("secret-2"))])
            await ours.append([to_input(started("mine"))])
            await theirs.append([to_input(started("secret-3"))])
            await ours.append([to_input(started("mine-2"))])
            got = await collect(stream, "events", 2)
            # Nothing else arrives: the other tenant's later events stay invisible.
            with pytest.raises(TimeoutError):
                await collect(stream, "events", 1, within=1.0)
            return [e["traceId"] for e in got]

    assert asyncio.run(scenario()) == ["mine", "mine-2"]


@pytest.mark.parametrize(
    ("token_kind", "close_code"),
    [("none", 4401), ("bogus", 4401), ("other tenant", 4403), ("ingest only", 4403)],
)
def test_bad_credentials_close_the_socket(
    server: Server, settings: Settings, token_kind: str, close_code: int
) -> None:
    tenant = new_tenant()
    tokens = {
        "none": "",
        "bogus": "dg_nope_nope",
        "other tenant": key(settings, [new_tenant()], "reader"),
        "ingest only": key(settings, [tenant], "ingest"),
    }

    async def scenario() -> SubscriptionError:
        with pytest.raises(SubscriptionError) as refused:
            async with LiveConnection(server.url, tokens[token_kind], tenant):
                pass
        return refused.value

    assert asyncio.run(scenario()).close_code == close_code


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        (TRACE, {"trace": "no-such-trace", "after": 0}, "DG_ERR_NOT_FOUND"),
        (TRACE, {"trace": "t", "after": -2}, "DG_ERR_INVALID_ARGUMENT"),
        (TRACE, {"trace": "t", "after": 7}, "DG_ERR_INVALID_ARGUMENT"),
        (EVENTS, {"after": -1}, "DG_ERR_INVALID_ARGUMENT"),
        (EVENTS, {"after": 99}, "DG_ERR_INVALID_ARGUMENT"),
        (
            'subscription { replay(replayId: "nope") { status } }',
            {},
            "DG_ERR_NOT_FOUND",
        ),
    ],
)
def test_unknown_traces_and_invalid_positions_get_clear_errors(
    server: Server, settings: Settings, query: str, variables: dict[str, Any], code: str
) -> None:
    tenant = new_tenant()
    token = key(settings, [tenant])

    async def scenario() -> SubscriptionError:
        async with DecisionGraphClient(server.url, token) as api:
            await api.append([to_input(started("t")), to_input(input_observed("t", 1))])
        async with LiveConnection(server.url, token) as live:
            with pytest.raises(SubscriptionError) as refused:
                await collect(live.subscribe(query, variables), "x", 1, within=10)
            # The connection survives a refused subscription.
            stream = live.subscribe(EVENTS, {"after": 0})
            assert [e["logSeq"] for e in await collect(stream, "events", 2)] == [1, 2]
            return refused.value

    error = asyncio.run(scenario())
    assert error.code == code, error


def test_a_reader_may_not_follow_replays(server: Server, settings: Settings) -> None:
    tenant = new_tenant()
    token = key(settings, [tenant], "reader")

    async def scenario() -> SubscriptionError:
        async with LiveConnection(server.url, token) as live:
            query = 'subscription { replay(replayId: "x") { status } }'
            with pytest.raises(SubscriptionError) as refused:
                await collect(live.subscribe(query), "replay", 1, within=10)
            return refused.value

    assert asyncio.run(scenario()).code == "DG_ERR_FORBIDDEN"


def test_trace_events_backfill_then_live_and_complete_at_the_finish(
    server: Server, settings: Settings
) -> None:
    tenant = new_tenant()
    token = key(settings, [tenant])

    async def scenario() -> list[tuple[int, str]]:
        async with (
            DecisionGraphClient(server.url, token) as api,
            LiveConnection(server.url, token) as live,
        ):
            await api.append([to_input(started("a")), to_input(input_observed("a", 1))])
            await api.append([to_input(started("noise"))])
            stream = live.subscribe(TRACE, {"trace": "a", "after": 0})
            got = await collect(stream, "traceEvents", 1)  # backfill: traceSeq 1
            await api.append([to_input(input_observed("noise", 1))])
            await api.append([to_input(input_observed("a", 2)), to_input(finished("a", 3))])
            async with asyncio.timeout(10):
                async for data in stream:  # ends by itself after TraceFinished
                    got.append(data["traceEvents"])
            return [(e["traceSeq"], e["eventType"]) for e in got]

    assert asyncio.run(scenario()) == [
        (1, "InputObserved"),
        (2, "InputObserved"),
        (3, "TraceFinished"),
    ]


def test_a_trace_followed_before_it_starts_is_replayed_whole_then_live(
    server: Server, settings: Settings
) -> None:
    """A follower subscribes before its agent appends: a trace of 100 events among 29
    others arrives whole and in order, and the subscription completes at its finish."""
    tenant = new_tenant()
    token = key(settings, [tenant])
    mixed = [traces(f"other{n}", 100, length=100) for n in range(29)]
    mixed.insert(17, traces("followed", 100, length=100))
    # Interleave the 30 traces ten events at a time, so the followed one is spread out.
    batches = [trace[i : i + 10] for i in range(0, 100, 10) for trace in mixed]

    async def scenario() -> tuple[list[tuple[int, str]], list[int]]:
        async with (
            DecisionGraphClient(server.url, token) as api,
            LiveConnection(server.url, token) as live,
        ):
            followed = live.subscribe(TRACE, {"trace": "followed-0", "after": -1})
            everything = live.subscribe(EVENTS, {"after": 0})
            first = asyncio.create_task(anext(followed))  # type: ignore[arg-type]
            await asyncio.sleep(0.5)  # the subscription is live before the first append
            assert not first.done(), first
            for start in range(0, len(batches), 10):
                await api.append([e for batch in batches[start : start + 10] for e in batch])
            got = [(await first)["traceEvents"]]
            async with asyncio.timeout(30):
                async for data in followed:  # ends by itself after TraceFinished
                    got.append(data["traceEvents"])
            logged = await collect(everything, "events", 3_000)
            return [(e["traceSeq"], e["eventType"]) for e in got], [e["logSeq"] for e in logged]

    seen, positions = asyncio.run(scenario())
    assert [seq for seq, _ in seen] == list(range(100))
    assert seen[0][1] == "TraceStarted" and seen[-1][1] == "TraceFinished"
    assert positions == list(range(1, 3_001))


def test_projection_health_and_replay_progress_are_pushed(
    server: Server, worker_process: Process, settings: Settings
) -> None:
    tenant = new_tenant()
    token = key(settings, [tenant])
    health = "subscription { projectionHealth { lastLogSeq projectedTo } }"
    replay = """subscription($id: String!) { replay(replayId: $id) {
                status processedEvents digestsMatch } }"""

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with (
            DecisionGraphClient(server.url, token) as api,
            LiveConnection(server.url, token) as live,
        ):
            states = live.subscribe(health)
            first = await collect(states, "projectionHealth", 1)
            await api.append(traces("h", 30))
            seen = list(first)
            async with asyncio.timeout(20):
                async for data in states:
                    seen.append(data["projectionHealth"])
                    if seen[-1]["projectedTo"] == 30:
                        break
            run = await api.mutate(
                """mutation { requestReplay(projection: ALL, mode: VERIFY, reason: "check") {
                   replay { replayId } errors { code message } } }""",
                "requestReplay",
            )
            runs = live.subscribe(replay, {"id": run["replay"]["replayId"]})
            progress: list[dict[str, Any]] = []
            async with asyncio.timeout(20):
                async for data in runs:  # completes by itself when the run ends
                    progress.append(data["replay"])
            return seen, progress

    seen, progress = asyncio.run(scenario())
    assert seen[0]["lastLogSeq"] == 0
    assert seen[-1] == {"lastLogSeq": 30, "projectedTo": 30}
    # VERIFY of ALL counts every projection: 30 events x 4 (the spec three + workflows)
    assert progress[-1] == {"status": "COMPLETED", "processedEvents": 120, "digestsMatch": True}


def test_the_legacy_graphql_ws_protocol_works(server: Server, settings: Settings) -> None:
    from httpx_ws import aconnect_ws

    tenant = new_tenant()
    token = key(settings, [tenant])

    async def scenario() -> list[int]:
        async with (
            DecisionGraphClient(server.url, token) as api,
            httpx.AsyncClient() as http,
            aconnect_ws(
                server.url.replace("http", "ws") + "/graphql", http, subprotocols=["graphql-ws"]
            ) as ws,
        ):
            await api.append([to_input(started("legacy"))])
            init = {"authorization": f"Bearer {token}"}
            await ws.send_json({"type": "connection_init", "payload": init})
            assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
            start = {"query": EVENTS, "variables": {"after": 0}}
            await ws.send_json({"id": "1", "type": "start", "payload": start})
            positions = []
            while len(positions) < 1:
                message = await ws.receive_json(timeout=5)
                if message["type"] == "data":
                    positions.append(message["payload"]["data"]["events"]["logSeq"])
            return positions

    assert asyncio.run(scenario()) == [1]


def test_a_connection_holds_at_most_32_subscriptions(server: Server, settings: Settings) -> None:
    tenant = new_tenant()
    token = key(settings, [tenant])

    async def scenario() -> SubscriptionError:
        async with contextlib.AsyncExitStack() as stack:
            live = await stack.enter_async_context(LiveConnection(server.url, token))
            streams = [live.subscribe(EVENTS, {"after": 0}) for _ in range(33)]
            tasks = [asyncio.create_task(anext(s)) for s in streams]  # type: ignore[arg-type]
            async with DecisionGraphClient(server.url, token) as api:
                await api.append([to_input(started("x"))])
            done = await asyncio.gather(*tasks, return_exceptions=True)
            failures = [d for d in done if isinstance(d, SubscriptionError)]
            assert len(failures) == 1, done
            return failures[0]

    error = asyncio.run(scenario())
    assert str(error) == "Subscription limit reached"
