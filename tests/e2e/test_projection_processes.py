"""Projections with real processes: `decisiongraph serve` + `decisiongraph worker` + Redis."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import pytest

from server.settings import Settings
from server.startup import create_key
from tests.e2e.conftest import Process, Server
from tests.support import GraphQLClient, finished, input_observed, new_tenant, started

pytestmark = pytest.mark.e2e

HEALTH = """query($n: Long!) { projectionHealth(atLeast: $n) { projectedTo digests {
  contextGraph traceSummary precedentIndex fullProjection } } }"""


def client(server: Server, settings: Settings, tenant: str) -> tuple[httpx.AsyncClient, str]:
    token = asyncio.run(create_key(settings, None, [tenant], ["admin"]))
    return httpx.AsyncClient(base_url=server.url, timeout=60), token


def test_an_append_is_queryable_through_at_least_right_away(
    server: Server, worker_process: Process, settings: Settings
) -> None:
    tenant = new_tenant()
    http, token = client(server, settings, tenant)

    async def scenario() -> list[float]:
        async with http:
            gql = GraphQLClient(http, token)
            await gql.append_ok([started("warm")])
            latencies = []
            for i in range(20):
                trace = f"t{i}"
                began = time.perf_counter()
                stored = await gql.append_ok([started(trace), input_observed(trace, 1)])
                data = await gql.data(
                    """query($n: Long!, $t: String!) { contextGraph(nodeType: "trace",
                       nodeId: $t, atLeast: $n) { nodes { nodeId } projectedTo } }""",
                    {"n": stored[-1]["logSeq"], "t": trace},
                )
                latencies.append(time.perf_counter() - began)
                assert data["contextGraph"]["projectedTo"] >= stored[-1]["logSeq"]
                assert f"input:input:{trace}:1" in {
                    n["nodeId"] for n in data["contextGraph"]["nodes"]
                }
            return latencies

    latencies = sorted(asyncio.run(scenario()))
    print(
        f"append -> queryable: median {latencies[10] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms"
    )
    # The SLO lives in the benchmark; this only guards against falling back to the sweep.
    assert latencies[10] < 1.0


REPLAY = """query($id: String!) { replay(replayId: $id) { status processedEvents digestsMatch
  startedAt finishedAt error { code message } } }"""
REBUILD = """mutation { requestReplay(projection: ALL, mode: REBUILD, reason: "kill drill") {
  replay { replayId } errors { code } } }"""
SHADOWS = """SELECT relname FROM pg_class WHERE relkind = 'r' AND NOT relispartition
  AND relname ~ '^dg_[a-z_]+__[0-9a-f]{16}_'"""


async def _settle(gql: GraphQLClient, replay_id: str, within: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        state: dict[str, Any] = (await gql.data(REPLAY, {"id": replay_id}))["replay"]
        if state["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
            return state
        assert time.monotonic() < deadline, state
        await asyncio.sleep(0.05)


async def _digests(gql: GraphQLClient, total: int, within: float = 60) -> dict[str, Any]:
    """The digests once every projection has reached `total` (a fresh worker first catches
    up the whole log, which can take longer than one read's wait)."""
    deadline = time.monotonic() + within
    while True:
        try:
            data = await gql.data(HEALTH, {"n": total})
            return dict(data["projectionHealth"]["digests"])
        except AssertionError:
            if time.monotonic() > deadline:
                raise


def test_workers_killed_at_random_points_of_a_rebuild_leave_it_whole(
    server: Server, start_worker: Any, settings: Settings
) -> None:
    """SIGKILL at random moments of bulk REBUILDs: while no worker runs, the live
    projection answers with its old digests (never a half-built one); the next worker
    finishes the run with digests equal to the incremental ones, and leaves no shadows."""
    tenant = new_tenant()
    http, token = client(server, settings, tenant)
    seed = random.randrange(1 << 32)
    chance = random.Random(seed)
    worker = start_worker()

    async def scenario() -> list[str]:
        notes = []
        async with http:
            gql = GraphQLClient(http, token)
            batch: list[dict[str, Any]] = []
            for i in range(1500):  # 12000 events in whole traces
                trace = f"bulk-{i}"
                batch += [started(trace)] + [input_observed(trace, s) for s in range(1, 7)]
                batch.append(finished(trace, 7))
                if len(batch) >= 1000:
                    await gql.append_ok(batch)
                    batch = []
            total = 12000
            before = await _digests(gql, total)
            # An undisturbed run first: it must not change a digest, and it tells how long
            # a run takes, so that the kills below land anywhere inside one.
            run = (await gql.data(REBUILD))["requestReplay"]["replay"]["replayId"]
            state = await _settle(gql, run)
            assert state["status"] == "COMPLETED", state
            seconds = (
                datetime.fromisoformat(state["finishedAt"])
                - datetime.fromisoformat(state["startedAt"])
            ).total_seconds()
            assert (await gql.data(HEALTH, {"n": total}))["projectionHealth"]["digests"] == before
            nonlocal worker
            for _ in range(3):
                run = (await gql.data(REBUILD))["requestReplay"]["replay"]["replayId"]
                while True:
                    state = (await gql.data(REPLAY, {"id": run}))["replay"]
                    if state["status"] != "QUEUED":
                        break
                    await asyncio.sleep(0.005)
                delay = chance.uniform(0, seconds * 1.2)
                await asyncio.sleep(delay)
                worker.popen.send_signal(signal.SIGKILL)
                worker.popen.wait()
                state = (await gql.data(REPLAY, {"id": run}))["replay"]
                notes.append(f"killed after {delay:.3f}s of {seconds:.3f}s: {state['status']}")
                live = (await gql.data(HEALTH, {"n": total}))["projectionHealth"]
                assert live["digests"] == before, notes  # old or new, whole either way
                worker = start_worker()
                state = await _settle(gql, run)
                assert state["status"] == "COMPLETED", (state, notes)
                after = (await gql.data(HEALTH, {"n": total}))["projectionHealth"]["digests"]
                assert after == before, notes
            check = await gql.data("""mutation { requestReplay(projection: ALL, mode: VERIFY,
                   reason: "after kills") { replay { replayId } } }""")
            state = await _settle(gql, check["requestReplay"]["replay"]["replayId"])
            assert state["digestsMatch"] is True, (state, notes)
        conn = await asyncpg.connect(settings.require_database_url)
        try:
            assert await conn.fetch(SHADOWS) == [], notes
        finally:
            await conn.close()
        return notes

    notes = asyncio.run(scenario())
    print(f"kill points (seed {seed}):", *notes, sep="\n  ")
