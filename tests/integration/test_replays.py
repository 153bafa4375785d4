"""Replays through GraphQL with a real arq worker: modes, admission, roles, audit."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from server.service import replay
from server.settings import Settings
from server.startup import create_key
from server.store.replays import PostgresReplays
from tests.support import GraphQLClient, golden_digests, golden_events, new_tenant

pytestmark = pytest.mark.anyio

REQUEST = """mutation($p: ReplayProjection!, $m: ReplayMode!, $r: String!) {
  requestReplay(projection: $p, mode: $m, reason: $r) {
    replay { replayId status mode projection } errors { code message } } }"""
STATUS = """query($id: String!) { replay(replayId: $id) {
  replayId status processedEvents lastLogSeq targetLogSeq digestsMatch
  expectedDigests { contextGraph traceSummary precedentIndex fullProjection }
  actualDigests { contextGraph traceSummary precedentIndex fullProjection }
  error { code message } } }"""
DIGESTS = """query($n: Long!) { projectionHealth(atLeast: $n) { digests { contextGraph
  traceSummary precedentIndex fullProjection } } }"""


async def request(
    gql: GraphQLClient, projection: str, mode: str, reason: str = "audit"
) -> dict[str, Any]:
    result: dict[str, Any] = (await gql.data(REQUEST, {"p": projection, "m": mode, "r": reason}))[
        "requestReplay"
    ]
    return result


async def settle(gql: GraphQLClient, replay_id: str, within: float = 20) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        state: dict[str, Any] = (await gql.data(STATUS, {"id": replay_id}))["replay"]
        if state["status"] in ("COMPLETED", "FAILED", "CANCELLED") or loop.time() > deadline:
            return state
        await asyncio.sleep(0.05)


def spec(digests: dict[str, str]) -> dict[str, str]:
    return {
        "context_graph": digests["contextGraph"],
        "trace_summary": digests["traceSummary"],
        "precedent_index": digests["precedentIndex"],
        "full_projection": digests["fullProjection"],
    }


async def test_rebuild_then_verify_reproduce_the_golden_digests(
    gql: GraphQLClient, worker: object
) -> None:
    events = golden_events("dealdesk")
    await gql.append_ok(events)
    before = (await gql.data(DIGESTS, {"n": len(events)}))["projectionHealth"]["digests"]
    rebuilt = await request(gql, "ALL", "REBUILD", "investigation 42")
    assert rebuilt["errors"] == [] and rebuilt["replay"]["status"] == "QUEUED"
    done = await settle(gql, rebuilt["replay"]["replayId"])
    assert done["status"] == "COMPLETED" and done["processedEvents"] == len(events)
    assert done["digestsMatch"] is None  # only VERIFY compares
    after = (await gql.data(DIGESTS, {"n": len(events)}))["projectionHealth"]["digests"]
    assert after == before and spec(after) == golden_digests("dealdesk")
    verify = await request(gql, "ALL", "VERIFY", "auditor check")
    checked = await settle(gql, verify["replay"]["replayId"])
    assert checked["status"] == "COMPLETED" and checked["digestsMatch"] is True
    assert (
        spec(checked["expectedDigests"])
        == spec(checked["actualDigests"])
        == golden_digests("dealdesk")
    )


async def test_verify_detects_a_tampered_projection(
    gql: GraphQLClient, worker: object, pool: asyncpg.Pool, tenant: str
) -> None:
    events = golden_events("renewal")
    await gql.append_ok(events)
    await gql.data(DIGESTS, {"n": len(events)})
    async with pool.acquire() as conn:  # someone edits projection rows by hand
        await conn.execute(
            "UPDATE dg_trace_summary SET title = 'edited' WHERE scope = $1",
            tenant,
        )
        await conn.execute("DELETE FROM dg_projection_digests WHERE scope = $1", tenant)
    verify = await request(gql, "TRACE_SUMMARY", "VERIFY", "suspicious")
    checked = await settle(gql, verify["replay"]["replayId"])
    assert checked["digestsMatch"] is False
    assert checked["actualDigests"]["traceSummary"] == golden_digests("renewal")["trace_summary"]
    assert checked["expectedDigests"]["traceSummary"] != checked["actualDigests"]["traceSummary"]
    assert checked["expectedDigests"]["contextGraph"] is None  # only the projection asked for
    # VERIFY never disturbs the live projection: still the edited state, until a REBUILD
    rebuild = await request(gql, "TRACE_SUMMARY", "REBUILD", "repair")
    await settle(gql, rebuild["replay"]["replayId"])
    again = await request(gql, "TRACE_SUMMARY", "VERIFY", "after repair")
    assert (await settle(gql, again["replay"]["replayId"]))["digestsMatch"] is True


async def test_one_replay_per_projection_at_a_time(gql: GraphQLClient) -> None:
    first = await request(gql, "CONTEXT_GRAPH", "REBUILD")  # no worker: stays queued
    assert first["errors"] == []
    clash = await request(gql, "ALL", "CATCH_UP")
    assert clash["errors"][0]["code"] == "DG_ERR_CONFLICT"
    assert "already running" in clash["errors"][0]["message"]
    other = await request(gql, "PRECEDENT_INDEX", "CATCH_UP")  # no overlap: admitted
    assert other["errors"] == []
    cancelled = await gql.data(
        """mutation($id: String!) { cancelReplay(replayId: $id) {
        replay { status } errors { code } } }""",
        {"id": first["replay"]["replayId"]},
    )
    assert cancelled["cancelReplay"] == {"replay": {"status": "CANCELLED"}, "errors": []}
    twice = await gql.data(
        """mutation($id: String!) { cancelReplay(replayId: $id) {
        errors { code } } }""",
        {"id": first["replay"]["replayId"]},
    )
    assert twice["cancelReplay"]["errors"][0]["code"] == "DG_ERR_CONFLICT"
    assert (await request(gql, "ALL", "CATCH_UP"))["errors"][0]["code"] == "DG_ERR_CONFLICT"


async def test_reason_role_and_tenant_rules(
    gql: GraphQLClient, settings: Settings, pool: asyncpg.Pool
) -> None:
    assert (await request(gql, "ALL", "VERIFY", "   "))["errors"][0][
        "code"
    ] == "DG_ERR_INVALID_ARGUMENT"
    writer = GraphQLClient(
        gql.http, await create_key(settings, None, [gql.tenant or ""], ["writer"]), gql.tenant
    )
    refused = await request(writer, "ALL", "VERIFY", "no")
    assert refused["errors"][0]["code"] == "DG_ERR_FORBIDDEN"
    mine = await request(gql, "TRACE_SUMMARY", "CATCH_UP", "mine")
    stranger = GraphQLClient(gql.http, gql.token, new_tenant())
    body = await stranger.execute(STATUS, {"id": mine["replay"]["replayId"]})
    assert body["errors"][0]["extensions"]["code"] == "DG_ERR_NOT_FOUND"  # no existence leak
    async with pool.acquire() as conn:
        audit = await conn.fetch(
            "SELECT action, outcome, reason FROM dg_audit_log "
            "WHERE tenant_id = $1 ORDER BY audit_id",
            gql.tenant,
        )
    assert [(r["action"], r["outcome"]) for r in audit] == [
        ("replay.request", "rejected"),
        ("replay.request", "accepted"),
    ]


async def test_a_running_replay_can_be_cancelled(gql: GraphQLClient, worker: object) -> None:
    events = [e for s in ("dealdesk", "renewal", "support") for e in golden_events(s)]
    await gql.append_ok(events)
    await gql.data(DIGESTS, {"n": len(events)})
    run = await request(gql, "ALL", "VERIFY", "cancel me")
    await gql.data(
        """mutation($id: String!) { cancelReplay(replayId: $id) { errors { code } } }""",
        {"id": run["replay"]["replayId"]},
    )
    state = await settle(gql, run["replay"]["replayId"])
    assert state["status"] in ("CANCELLED", "COMPLETED")  # it may have finished first


class _Untouched:
    """Projections and a log a run must never reach."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the run used {name}")


class _Quiet:
    async def log_advanced(self, tenant_id: str, last_log_seq: int) -> None: ...
    async def health_changed(self, tenant_id: str, position: int) -> None: ...
    async def replay_changed(self, tenant_id: str, position: int) -> None: ...
    async def workflow_changed(self, tenant_id: str, position: int) -> None: ...


async def test_a_run_starts_only_while_active_and_not_cancelled(pool: asyncpg.Pool) -> None:
    """`start` makes a queued run RUNNING in one statement; a run that has ended, or whose
    cancel came first, is left as it is; and a worker that takes a run cancelled while no
    worker held it (its worker died, say) ends it CANCELLED without starting it again or
    touching a projection."""
    replays = PostgresReplays(pool)
    tenant = new_tenant()
    queued = await replays.create(tenant, "ALL", "REBUILD", "start it", "tests")
    started = await replays.start(queued.replay_id)
    assert started is not None and started.status == "RUNNING" and started.started_at
    ended = await replays.finish(queued.replay_id, "COMPLETED")
    assert await replays.start(queued.replay_id) == ended  # left as it is
    assert await replays.start("replay-none") is None

    orphan = await replays.create(new_tenant(), "ALL", "REBUILD", "cancelled while orphaned", "t")
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE dg_replays SET status = 'RUNNING', cancel_requested = true, "
            "started_at = now() - interval '1 hour' WHERE replay_id = $1",
            orphan.replay_id,
        )
    before = await replays.get(orphan.replay_id)
    assert before is not None
    assert await replays.start(orphan.replay_id) == before  # not started again
    run = await replay.run_replay(replays, _Untouched(), _Untouched(), _Quiet(), orphan.replay_id)
    assert run is not None and run.status == "CANCELLED"
    assert run.started_at == before.started_at and run.finished_at is not None
