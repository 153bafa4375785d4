"""Projections with real processes: `decisiongraph serve` + `decisiongraph worker` + Redis."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from datetime import datetime
from pathlib import Path
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


def _children(pid: int) -> dict[int, float]:
    """Live child processes of `pid` and the CPU seconds each has used."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[1]) != pid or fields[0] == "Z":
            continue
        with contextlib.suppress(OSError):
            # Spawned workers, not multiprocessing's resource tracker.
            if b"spawn_main" in (stat.parent / "cmdline").read_bytes():
                out[int(stat.parent.name)] = (int(fields[11]) + int(fields[12])) / _TICKS
    return out


_TICKS = os.sysconf("SC_CLK_TCK")


def _wait_children(pid: int, count: int, without: set[int] = frozenset()) -> dict[int, float]:
    deadline = time.monotonic() + 30
    while True:
        children = {p: c for p, c in _children(pid).items() if p not in without}
        if len(children) >= count:
            return children
        assert time.monotonic() < deadline, (pid, children)
        time.sleep(0.1)


def test_worker_processes_share_the_replays_and_outlive_a_killed_one(
    server: Server, start_worker: Any, settings: Settings
) -> None:
    """`worker --processes 2`: queued REBUILDs of several tenants keep both processes
    busy (each takes only the runs it executes at once); a child killed by SIGKILL is
    replaced and the runs still complete; SIGTERM stops the whole group cleanly."""
    tenants = [new_tenant() for _ in range(6)]
    worker = start_worker("--processes", "2")
    children = _wait_children(worker.popen.pid, 2)
    workers = sorted(children)

    async def seed_and_rebuild(tenant: str, gql: GraphQLClient) -> str:
        batch: list[dict[str, Any]] = []
        for i in range(500):  # 4000 events
            trace = f"p-{i}"
            batch += [started(trace)] + [input_observed(trace, s) for s in range(1, 7)]
            batch.append(finished(trace, 7))
        for start in range(0, len(batch), 1000):
            await gql.append_ok(batch[start : start + 1000])
        await _digests(gql, len(batch))
        return str((await gql.data(REBUILD))["requestReplay"]["replay"]["replayId"])

    async def rebuild_all(
        pairs: list[tuple[httpx.AsyncClient, str]], kill: int | None = None
    ) -> list[dict[str, Any]]:
        gqls = [GraphQLClient(http, token) for http, token in pairs]
        try:
            runs = [await seed_and_rebuild(t, g) for t, g in zip(tenants, gqls, strict=True)]
            if kill is not None:
                os.kill(kill, signal.SIGKILL)
            return [await _settle(g, r, within=120) for g, r in zip(gqls, runs, strict=True)]
        finally:
            for http, _ in pairs:
                await http.aclose()

    before = _children(worker.popen.pid)
    states = asyncio.run(rebuild_all([client(server, settings, t) for t in tenants]))
    assert all(s["status"] == "COMPLETED" for s in states), states
    used = {p: _children(worker.popen.pid).get(p, 0.0) - before[p] for p in workers}
    # Six 4000-event rebuilds are seconds of Python work: both processes took some.
    assert min(used.values()) > 0.25 * max(used.values()), used

    tenants[:] = [new_tenant() for _ in range(6)]
    pairs = [client(server, settings, t) for t in tenants]
    states = asyncio.run(rebuild_all(pairs, kill=workers[0]))
    assert all(s["status"] == "COMPLETED" for s in states), states
    replaced = _wait_children(worker.popen.pid, 2, without={workers[0]})
    assert workers[1] in replaced and workers[0] not in replaced, replaced
    assert "worker process 0 exited (-9); restarting" in worker.output()

    assert worker.stop(timeout=40) == 0, worker.output()
    assert not _children(worker.popen.pid)


def test_worker_processes_stop_when_their_supervisor_is_killed(start_worker: Any) -> None:
    """A supervisor killed outright (SIGKILL, an OOM kill, a stop grace run out) cannot
    pass SIGTERM on: its children notice it is gone and stop by themselves, instead of
    taking jobs that nobody supervises."""
    worker = start_worker("--processes", "2")
    children = set(_wait_children(worker.popen.pid, 2))
    os.kill(worker.popen.pid, signal.SIGKILL)
    worker.popen.wait(timeout=10)
    deadline = time.monotonic() + 30
    while alive := {pid for pid in children if Path(f"/proc/{pid}").exists()}:
        assert time.monotonic() < deadline, f"orphaned worker processes {alive} still run"
        time.sleep(0.1)
    assert "supervisor gone; worker process" in worker.output()
