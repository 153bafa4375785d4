"""The SDK against a real server process, through a proxy that breaks connections.

What an agent developer relies on: a batch whose connection dies mid-flight is retried with
the same idempotency keys and never stored twice; a refused batch is reported with the index
of the failing event; a follower resumes after its connection is cut without a gap or a
duplicate.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

import asyncpg
import pytest

from decisiongraph.sdk import (
    Actor,
    Change,
    DecisionGraphClient,
    Entity,
    Event,
    Fact,
    GraphQLError,
    Policy,
    RetriesExhausted,
    RetryPolicy,
    Source,
    SourceObject,
    Trace,
    evidence,
)
from tests.e2e.conftest import Server
from tests.e2e.faulty_proxy import FaultyProxy
from tests.support import new_tenant

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

AGENT = Source("revenue-agent", "decisiongraph", "sdk-test")
BOT = Actor.agent("rev-bot")
CAP = Policy("discount-cap", "2026.03")
FAST_RETRY = RetryPolicy(attempts=6, first_delay=0.01, max_delay=0.05)


def renewal(trace_id: str) -> list[Event]:
    """Every event type through the typed helpers: one full renewal decision."""
    trace = Trace(trace_id, AGENT, BOT, correlation_id=f"sdk:{trace_id}", tags=("sdk",))
    account = Entity("account", f"acct-{trace_id}", "crm")
    opportunity = Entity("opportunity", f"opp-{trace_id}", "crm")
    crm = SourceObject("crm", "opportunity", f"opp-{trace_id}")
    started = trace.started("revenue_exception", f"Renewal {trace_id}", account)
    observed = trace.input_observed(
        f"input:{trace_id}",
        crm,
        [Fact.of("requested_discount_pct", 21), Fact.of("stage", "renewal")],
    )
    quote = Entity("quote", f"q-{trace_id}", "quoting")
    return [
        started,
        observed,
        trace.entity_observed(quote, [Fact.of("currency", "USD")]),
        trace.policy_evaluated(CAP, [f"input:{trace_id}"], "require_exception",
                               violations=["discount_threshold"], explanation="Above the cap",
                               causation_event_id=observed.event_id),
        trace.exception_requested(f"ex-{trace_id}", CAP, "Strategic renewal",
                                  evidence=evidence(f"crm://opportunity/opp-{trace_id}")),
        trace.precedent_cited("trace-precedent-renewal-001", "similar renewal", similarity_score="0.92"),
        trace.approval_recorded(f"approval:{trace_id}", f"ex-{trace_id}", Actor.person("finance-maya"),
                                "approved", reason="margin floor holds"),
        trace.action_proposed(f"action:{trace_id}", "update", opportunity, "crm",
                              [Change("discount_pct", 21, old_value=12)]),
        trace.action_committed(f"action:{trace_id}", "success", external_reference="crm-1"),
        trace.finished("success", summary="Renewal approved"),
    ]  # fmt: skip


@pytest.fixture
async def proxy(server: Server) -> AsyncIterator[FaultyProxy]:
    host, port = server.url.removeprefix("http://").split(":")
    faulty = await FaultyProxy(host, int(port)).start()
    yield faulty
    await faulty.close()


async def stored_rows(pool: asyncpg.Pool, tenant: str) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return await conn.fetch(
            "SELECT log_seq, event_id, idempotency_key FROM dg_event_log WHERE tenant_id = $1 "
            "ORDER BY log_seq",
            tenant,
        )


async def test_connections_killed_mid_batch_are_retried_without_duplicates(
    proxy: FaultyProxy, admin_token: str, pool: asyncpg.Pool
) -> None:
    tenant = new_tenant()
    events = [event for n in range(100) for event in renewal(f"r-{n:03d}")]  # 1000 events
    # Ten batches of 100 (b0..b9); one fault plan entry per HTTP request, in order.
    proxy.faults = deque([
        "ok", "ok",
        "drop_response", "ok",  # b2: committed, the answer is lost; the retry is a replay
        "ok",
        "drop_request", "ok",  # b4: never reaches the server
        "ok", "ok",
        "cut_request", "ok",  # b7: half of the body arrives, then the connection dies
        "ok",
        "drop_response", "drop_response", "ok",  # b9: the answer is lost twice
    ])  # fmt: skip
    async with DecisionGraphClient(proxy.url, admin_token, tenant, retry=FAST_RETRY) as client:
        acknowledged = await client.append_many(events, batch_size=100)

    assert (
        proxy.injected == ["drop_response", "drop_request", "cut_request"] + ["drop_response"] * 2
    )
    assert proxy.requests == 10 + 5
    assert [a.event_id for a in acknowledged] == [e.event_id for e in events]
    # The batches whose first attempt was committed came back as replays of the original.
    replayed = {n for n, a in enumerate(acknowledged) if a.idempotent_replay}
    assert replayed == set(range(200, 300)) | set(range(900, 1000))
    rows = await stored_rows(pool, tenant)
    assert [r["log_seq"] for r in rows] == list(range(1, 1001))
    assert [r["event_id"] for r in rows] == [e.event_id for e in events]
    assert [a.log_seq for a in acknowledged] == list(range(1, 1001))


async def test_after_exhausted_retries_sending_the_same_events_again_is_safe(
    proxy: FaultyProxy, admin_token: str, pool: asyncpg.Pool
) -> None:
    tenant = new_tenant()
    events = renewal("lost")
    proxy.faults = deque(["drop_response", "drop_response"])
    tight = RetryPolicy(attempts=2, first_delay=0.01, max_delay=0.01)
    async with DecisionGraphClient(proxy.url, admin_token, tenant, retry=tight) as client:
        with pytest.raises(RetriesExhausted):
            await client.append(events)
        # Unknown outcome (it was in fact committed): the same events again settle it.
        again = await client.append(events)
    assert all(a.idempotent_replay for a in again)
    assert len(await stored_rows(pool, tenant)) == len(events)


async def test_a_refused_batch_names_the_failing_event_and_writes_nothing(
    server: Server, admin_token: str, pool: asyncpg.Pool
) -> None:
    tenant = new_tenant()
    good = renewal("ok")
    trace = Trace("bad", AGENT, BOT)
    bad = [
        trace.started("revenue_exception", "bad", Entity("account", "a")),
        trace.event("InputObserved", {"input_id": "i", "facts": []}),  # no source
    ]
    async with DecisionGraphClient(server.url, admin_token, tenant) as client:
        with pytest.raises(GraphQLError) as refused:
            await client.append_many(good + bad, batch_size=4)
    assert refused.value.code == "DG_ERR_SCHEMA_VIOLATION"
    assert refused.value.index == len(good) + 1
    # The earlier batches stay (each batch is atomic); the failing batch wrote nothing.
    assert len(await stored_rows(pool, tenant)) == 8


async def test_typed_reads_and_a_review_through_the_sdk(
    server: Server, admin_token: str, worker_process: object
) -> None:
    tenant = new_tenant()
    events = renewal("reads")[:5]  # open: the exception is waiting for a reviewer
    async with DecisionGraphClient(server.url, admin_token, tenant) as client:
        stored = await client.append(events)
        info = await client.trace("reads")
        assert info is not None
        assert (info.event_count, info.finished, info.title) == (5, False, "Renewal reads")
        assert [e.event_type for e in await client.trace_events("reads")] == [
            e.event_type for e in events
        ]
        health = await client.projection_health(at_least=stored[-1].log_seq)
        assert health.last_log_seq == 5
        assert all(p.cursor == 5 for p in health.projections)
        assert health.digests.full_projection is not None
        (item,) = await client.workflows(only_open=True, at_least=stored[-1].log_seq)
        assert (item.trace_id, item.status, item.kind) == ("reads", "REQUESTED", "EXCEPTION_REVIEW")
        decided, appended = await client.review(
            item.workflow_id, "approve", "within margin", request_id="review-1"
        )
        again, appended_again = await client.review(
            item.workflow_id, "approve", "within margin", request_id="review-1"
        )
        assert decided.status == again.status == "APPROVED"
        assert appended is not None and appended_again == appended
        resumed = await client.resume_trace("reads", AGENT, BOT)
        assert resumed.next_seq == 6  # the five events and the approval
        await client.append([resumed.finished("success")])
        assert (await client.trace("reads")).finished  # type: ignore[union-attr]


async def test_followers_resume_after_their_connection_is_cut(
    proxy: FaultyProxy, admin_token: str
) -> None:
    tenant = new_tenant()
    events = [event for n in range(30) for event in renewal(f"f-{n:02d}")]  # 300 events
    slow = renewal("slow")  # one event of it per round, so it lives across the outages
    received: list[int] = []
    trace_seqs: list[int] = []
    async with DecisionGraphClient(proxy.url, admin_token, tenant) as client:

        async def follow_all() -> None:
            async for event in client.follow_events():
                received.append(event.log_seq)
                if len(received) == len(events) + len(slow):
                    return

        async def follow_slow() -> None:
            async for event in client.follow_trace("slow"):
                trace_seqs.append(event.trace_seq)

        followers = [asyncio.create_task(follow_all())]
        for round_ in range(10):
            await client.append([*events[round_ * 30 : round_ * 30 + 30], slow[round_]])
            if round_ == 0:
                followers.append(asyncio.create_task(follow_slow()))
            if round_ in (2, 5, 8):
                proxy.kill_all()  # every websocket through the proxy dies
            await asyncio.sleep(0.1)
        await asyncio.wait_for(asyncio.gather(*followers), timeout=60)
    assert received == list(range(1, len(events) + len(slow) + 1))
    assert trace_seqs == list(range(10))  # and the trace follower ended at TraceFinished
    assert proxy.upgrades >= 2 * 4  # each follower connected once, then again after each cut
