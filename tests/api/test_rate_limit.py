"""Request budgets per key, tenant and scope: a 429 with Retry-After and the stable code,
shared by every server process (counters in Redis), never blocking another key or tenant."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from httpx_ws import WebSocketDisconnect, aconnect_ws
from httpx_ws.transport import ASGIWebSocketTransport

from decisiongraph.sdk import (
    Actor,
    DecisionGraphClient,
    Entity,
    Fact,
    RetriesExhausted,
    RetryPolicy,
    Source,
    SourceObject,
    Trace,
)
from server.app import create_app
from server.core.rate_limit import RateLimits, granted, lease_size, scope_of, window_at
from server.graphql.controller import operation_scope
from server.pubsub.connection import redis_client
from server.pubsub.rate_limiter import RedisRateLimiter
from server.settings import Settings
from tests.support import APPEND, new_tenant, started, to_input

pytestmark = pytest.mark.anyio

HEALTH = "{ projectionHealth { lastLogSeq } }"
REPLAY = """mutation { requestReplay(projection: ALL, mode: VERIFY, reason: "audit") {
  replay { replayId } errors { code } } }"""


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Two server processes' worth of apps sharing one Redis, with tiny budgets."""
    opens_in = window_at(time.time()).retry_after
    if opens_in < 5:  # do not straddle a window boundary
        await asyncio.sleep(opens_in)
    budgets = replace(
        settings,
        rate_limits=RateLimits(read=3, write=2, admin=1),
        namespace=settings.namespace + "rl" + new_tenant()[2:8],
    )
    apps = [create_app(budgets), create_app(budgets)]
    async with (
        apps[0].lifespan(),
        apps[1].lifespan(),
        httpx.AsyncClient(transport=ASGIWebSocketTransport(app=apps[0]), base_url="http://t") as a,
        httpx.AsyncClient(transport=ASGIWebSocketTransport(app=apps[1]), base_url="http://t") as b,
    ):
        yield [a, b]


def headers(token: str, tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "X-Tenant-ID": tenant}


async def test_reads_are_limited_across_processes_with_retry_after(
    limited: list[httpx.AsyncClient], admin_token: str
) -> None:
    tenant = new_tenant()
    answers = [
        await limited[n % 2].post(
            "/graphql", json={"query": HEALTH}, headers=headers(admin_token, tenant)
        )
        for n in range(4)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    refused = answers[-1]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    (error,) = refused.json()["errors"]
    assert error["extensions"]["code"] == "DG_ERR_RATE_LIMITED"
    assert "read API scope" in error["message"]
    # Another tenant of the same key has its own budget.
    other = await limited[0].post(
        "/graphql", json={"query": HEALTH}, headers=headers(admin_token, new_tenant())
    )
    assert other.status_code == 200


async def test_writes_and_admin_have_their_own_budgets(
    limited: list[httpx.AsyncClient], admin_token: str
) -> None:
    tenant = new_tenant()
    statuses = []
    for n in range(3):
        body = {"query": APPEND, "variables": {"events": [to_input(started(f"t{n}"))]}}
        response = await limited[n % 2].post(
            "/graphql", json=body, headers=headers(admin_token, tenant)
        )
        statuses.append(response.status_code)
    assert statuses == [200, 200, 429]
    # The refused append wrote nothing; reads still have their budget.
    read = await limited[0].post(
        "/graphql",
        json={"query": "{ projectionHealth { lastLogSeq } }"},
        headers=headers(admin_token, tenant),
    )
    assert read.status_code == 200 and read.json()["data"]["projectionHealth"]["lastLogSeq"] == 2
    first = await limited[0].post(
        "/graphql", json={"query": REPLAY}, headers=headers(admin_token, tenant)
    )
    second = await limited[1].post(
        "/graphql", json={"query": REPLAY}, headers=headers(admin_token, tenant)
    )
    assert (first.status_code, second.status_code) == (200, 429)


def test_operations_spend_the_budget_of_what_they_do() -> None:
    assert operation_scope('{ trace(traceId: "t") { title } }', None) == "read"
    assert (
        operation_scope(
            'mutation { workflowAction(workflowId: "w", action: CLAIM) { errors { code } } }', None
        )
        == "write"
    )
    assert (
        operation_scope(
            'query A { viewer { keyId } } mutation B { cancelReplay(replayId: "r") { errors { code } } }',
            "B",
        )
        == "admin"
    )
    assert operation_scope('query { auditExport(traceId: "t") }', None) == "admin"
    assert operation_scope("not graphql", None) == "read"
    assert scope_of("subscription", frozenset({"events"})) == "read"
    assert window_at(120.0).retry_after == 60 and window_at(179.5).retry_after == 1
    assert window_at(179.5).index == window_at(120.0).index != window_at(180.0).index


async def test_the_sdk_waits_for_retry_after_before_retrying(
    limited: list[httpx.AsyncClient], admin_token: str
) -> None:
    tenant = new_tenant()
    # The server's Retry-After (up to 60 s) is capped by the policy so the test stays short.
    policy = RetryPolicy(attempts=2, first_delay=0.001, max_delay=0.001, max_retry_after=0.3)
    async with DecisionGraphClient(
        "http://t", admin_token, tenant, http=limited[0], retry=policy
    ) as dg:
        trace = Trace("sdk-limited", Source("agent", "crm"), Actor.agent("bot"))
        await dg.append([trace.started("w", "t", Entity("account", "a"))])
        await dg.append(
            [trace.input_observed("i", SourceObject("crm", "o", "1"), [Fact.of("x", 1)])]
        )
        began = time.monotonic()
        with pytest.raises(RetriesExhausted) as exhausted:
            await dg.append(
                [trace.input_observed("j", SourceObject("crm", "o", "2"), [Fact.of("x", 2)])]
            )
        waited = time.monotonic() - began
    cause = exhausted.value.__cause__
    assert cause is not None and "HTTP 429" in str(cause)
    assert 1 <= getattr(cause, "retry_after", 0) <= 60
    assert waited >= 0.3  # it slept for the (capped) Retry-After, not the 1 ms backoff


def test_retry_after_sets_a_floor_under_the_backoff() -> None:
    policy = RetryPolicy(first_delay=0.1, max_delay=5.0, max_retry_after=60.0)
    assert all(0 <= policy.delay(3) <= 0.8 for _ in range(50))
    assert all(7.0 <= policy.delay(3, retry_after=7) <= 7.8 for _ in range(50))
    assert all(60.0 <= policy.delay(0, retry_after=3600) <= 60.1 for _ in range(50))


async def test_processes_lease_budget_and_never_admit_more_than_the_limit(
    settings: Settings,
) -> None:
    """Two processes' limiters on one Redis, limit 1000 (leases of 10): exactly 1000 of
    1100 interleaved requests pass, with one Redis round trip per lease, not per request."""
    opens_in = window_at(time.time()).retry_after
    if opens_in < 10:  # do not straddle a window boundary
        await asyncio.sleep(opens_in)
    redis = redis_client(settings.require_redis_url)
    namespace = settings.namespace + "lease" + new_tenant()[2:8]
    limits = RateLimits(read=1000, write=0, admin=0)
    processes = [RedisRateLimiter(redis, namespace, limits) for _ in range(2)]
    try:
        answers = [await processes[n % 2].admit("key", "tenant", "read") for n in range(1100)]
        counter = await redis.get(
            f"{namespace}:rate:read:key:tenant:{window_at(time.time()).index}"
        )
    finally:
        await redis.aclose()
    assert all(a is not None for a in answers)
    allowed = [a.allowed for a in answers if a is not None]
    assert allowed == [True] * 1000 + [False] * 100
    # 100 leases of 10 granted the budget; each refusal asked Redis once more.
    assert int(counter) == 1000 + 100 * 10
    assert await processes[0].admit("key", "tenant", "write") is None  # 0 = unlimited


def test_leases_grant_only_what_fits_under_the_limit() -> None:
    assert lease_size(6000) == 60 and lease_size(50) == 1 and lease_size(1) == 1
    assert granted(100, counter_after=60, reserved=10) == 10
    assert granted(100, counter_after=105, reserved=10) == 5  # only 5 were left
    assert granted(100, counter_after=120, reserved=10) == 0


async def test_opening_a_live_connection_spends_a_read(
    limited: list[httpx.AsyncClient], admin_token: str
) -> None:
    """Websockets count too: past the budget, connection_init closes with 4429."""
    tenant = new_tenant()
    init = {"authorization": f"Bearer {admin_token}", "tenant": tenant}
    outcomes = []
    for n in range(4):
        async with aconnect_ws(
            "/graphql", limited[n % 2], subprotocols=["graphql-transport-ws"]
        ) as ws:
            await ws.send_json({"type": "connection_init", "payload": init})
            try:
                outcomes.append((await ws.receive_json(timeout=5))["type"])
            except WebSocketDisconnect as closed:
                outcomes.append(closed.code)
    assert outcomes == ["connection_ack", "connection_ack", "connection_ack", 4429]
    answer = await limited[0].post(
        "/graphql", json={"query": HEALTH}, headers=headers(admin_token, tenant)
    )
    assert answer.status_code == 429  # the same budget as queries
