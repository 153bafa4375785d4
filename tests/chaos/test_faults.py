"""The fault suite: real processes killed and restarted under load, and what survived.

Each scenario ingests from several clients, each retrying a batch with the same event ids
and idempotency keys until the server acknowledges it, while a fault hits: the server
SIGKILLed, PostgreSQL restarted (fast and immediate shutdown), a worker SIGKILLed in a
catch-up, Redis killed. Afterwards the log is read back: every acknowledged event must be
there exactly once, positions gapless, and the projections equal to an undisturbed copy.
`make test` runs the short form (DG_CHAOS_SECONDS=4); `make chaos` runs longer and writes
the table of figures into docs/operations.md (DG_CHAOS_REPORT=1).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import asyncpg
import httpx
import pytest

from decisiongraph.sdk import DecisionGraphClient, LiveConnection
from server.embedded import postgres, redis_server
from server.settings import Settings
from server.startup import create_key, migrate_database
from tests.e2e.conftest import Process, free_port, process_env, start, wait_http
from tests.e2e.test_review_loop import renewal, stamp
from tests.support import APPEND, finished, input_observed, new_tenant, started, to_input

pytestmark = pytest.mark.e2e

SECONDS: Final = float(os.environ.get("DG_CHAOS_SECONDS", "4"))
CLIENTS: Final = 4
ROOT: Final = Path(__file__).resolve().parents[2]


@dataclass
class Row:
    scenario: str
    acknowledged: int = 0
    lost: int = 0
    duplicated: int = 0
    gaps: int = 0
    recover_s: float = 0.0
    notes: str = ""


ROWS: list[Row] = []


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    if os.environ.get("DG_CHAOS_REPORT") and ROWS:
        write_table(ROWS)


def write_table(rows: list[Row]) -> None:
    doc = ROOT / "docs" / "operations.md"
    lines = [
        "<!-- chaos:begin (written by `make chaos`) -->",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {CLIENTS} clients, "
        f"{SECONDS:g} s of ingest per scenario.",
        "",
        "| fault | acknowledged | lost | duplicated | position gaps | recovered in | notes |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {r.scenario} | {r.acknowledged} | {r.lost} | {r.duplicated} | {r.gaps} | "
            f"{r.recover_s:.2f} s | {r.notes} |"
            for r in rows
        ),
        "<!-- chaos:end -->",
    ]
    text = doc.read_text()
    block = "\n".join(lines)
    pattern = re.compile(r"<!-- chaos:begin.*?<!-- chaos:end -->", re.S)
    doc.write_text(pattern.sub(block, text) if pattern.search(text) else text + "\n" + block + "\n")


@dataclass
class Load:
    """Clients appending whole ten-event traces, each batch retried until acknowledged."""

    url: str
    token: str
    acknowledged: dict[str, int] = field(default_factory=dict)  # event id -> log_seq
    failures: int = 0
    last_failure: float = 0.0
    recovered: asyncio.Event | None = None  # set by the first acknowledgement after a fault

    async def client(self, number: int, until: float) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as http:
            n = 0
            while time.monotonic() < until:
                events = traces(f"c{number}-", n, 1)
                while True:  # the same batch, the same keys, until the server says yes
                    try:
                        response = await http.post(
                            "/graphql",
                            json={"query": APPEND, "variables": {"events": events}},
                            headers={"Authorization": f"Bearer {self.token}"},
                        )
                        body = response.json()
                        result = body["data"]["appendEvents"]
                        if response.status_code == 200 and not result["errors"]:
                            break
                    except Exception:  # refused, reset, timed out, half-written: retry
                        pass
                    self.failures += 1
                    self.last_failure = time.monotonic()
                    await asyncio.sleep(0.05)
                for event in result["events"]:
                    self.acknowledged[event["eventId"]] = event["logSeq"]
                if self.recovered is not None:
                    self.recovered.set()
                n += 1

    async def run(self, seconds: float, fault: Callable[[], Any]) -> float:
        """Ingest for `seconds` with `fault` (a coroutine) at a third of it; returns the
        seconds from the fault's start to the first acknowledgement after its end."""
        until = time.monotonic() + seconds
        clients = [asyncio.create_task(self.client(i, until)) for i in range(CLIENTS)]
        await asyncio.sleep(seconds / 3)
        began = time.monotonic()
        await fault()
        self.recovered = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.recovered.wait(), timeout=until + 30 - began)
        recovered = time.monotonic() - began
        await asyncio.gather(*clients)
        return recovered


async def audit_log(dsn: str, tenant: str, load: Load) -> tuple[int, int, int]:
    """(lost, duplicated, gaps) of the tenant's log against what was acknowledged."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT event_id, log_seq FROM dg_event_log WHERE tenant_id = $1 ORDER BY log_seq",
            tenant,
        )
    finally:
        await conn.close()
    stored: dict[str, int] = {}
    duplicated = 0
    for row in rows:
        duplicated += row["event_id"] in stored
        stored[row["event_id"]] = row["log_seq"]
    lost = sum(1 for event_id, seq in load.acknowledged.items() if stored.get(event_id) != seq)
    positions = [row["log_seq"] for row in rows]
    gaps = sum(1 for a, b in itertools.pairwise(positions) if b != a + 1)
    gaps += bool(positions) and positions[0] != 1
    return lost, duplicated, gaps


def traces(prefix: str, first: int, count: int) -> list[dict[str, Any]]:
    """`count` whole ten-event traces (started, 8 inputs, finished) as EventInputs."""
    events = []
    for number in range(first, first + count):
        trace = f"{prefix}{number}"
        events += [to_input(started(trace))]
        events += [to_input(input_observed(trace, s)) for s in range(1, 9)]
        events.append(to_input(finished(trace, 9)))
    return events


def _kill(process: Process) -> None:
    process.popen.send_signal(signal.SIGKILL)
    process.popen.wait()


def _record(row: Row) -> Row:
    ROWS.append(row)
    print(f"chaos: {row}")
    return row


def test_server_sigkilled_during_ingest(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = process_env(settings, DG_HTTP_PORT=str(port))
    tenant = new_tenant()
    token = asyncio.run(create_key(settings, None, [tenant], ["writer"]))
    servers = [start("server", ["serve"], env, tmp_path)]
    wait_http(f"{url}/healthz")
    load = Load(url, token)

    async def fault() -> None:
        _kill(servers[0])
        servers.append(start("server-again", ["serve"], env, tmp_path))
        await asyncio.to_thread(wait_http, f"{url}/healthz")

    try:
        recovered = asyncio.run(load.run(SECONDS, fault))
    finally:
        servers[-1].stop()
    lost, duplicated, gaps = asyncio.run(audit_log(settings.require_database_url, tenant, load))
    row = _record(Row("server SIGKILL + restart", len(load.acknowledged), lost, duplicated, gaps,
                      recovered, f"{load.failures} failed attempts retried"))  # fmt: skip
    assert load.failures > 0  # the fault really hit the clients
    assert (row.lost, row.duplicated, row.gaps) == (0, 0, 0)


@pytest.fixture
def private_postgres() -> Iterator[tuple[Path, str]]:
    """A PostgreSQL of our own (the embedded wheel), to restart without touching the
    suite's."""
    directory = Path(tempfile.mkdtemp(prefix="dgp-", dir="/tmp"))
    pgdata = directory / "pg"
    dsn = postgres.ensure(pgdata)
    yield pgdata, dsn
    postgres.stop(pgdata)
    shutil.rmtree(directory, ignore_errors=True)


def _restart(pgdata: Path, mode: str) -> None:
    """pg_ctl restart with the given shutdown mode (it reuses the server's options), as
    the data directory's owner (the embedded wheel runs PostgreSQL as its own user when
    started by root, and pg_ctl refuses root)."""
    owner = pgdata.stat().st_uid
    subprocess.run(
        [str(postgres.bin_dir() / "pg_ctl"), "-D", str(pgdata), "-m", mode, "-w", "restart"],
        check=True,
        # Not captured: the restarted postmaster would hold the pipes open for good.
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        user=owner if os.geteuid() == 0 and owner != 0 else None,
    )


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgres_restarted_during_ingest(
    private_postgres: tuple[Path, str], settings: Settings, tmp_path: Path, mode: str
) -> None:
    pgdata, dsn = private_postgres
    mine = replace(settings, database_url=dsn)
    migrate_database(mine)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = process_env(mine, DG_HTTP_PORT=str(port))
    tenant = new_tenant()
    token = asyncio.run(create_key(mine, None, [tenant], ["writer"]))
    server = start("server", ["serve"], env, tmp_path)
    wait_http(f"{url}/healthz")
    load = Load(url, token)

    async def fault() -> None:
        await asyncio.to_thread(_restart, pgdata, mode)

    try:
        recovered = asyncio.run(load.run(SECONDS, fault))
    finally:
        server.stop()
    lost, duplicated, gaps = asyncio.run(audit_log(dsn, tenant, load))
    row = _record(Row(f"PostgreSQL restart ({mode} shutdown)", len(load.acknowledged), lost,
                      duplicated, gaps, recovered,
                      f"{load.failures} failed attempts retried"))  # fmt: skip
    assert load.failures > 0
    assert (row.lost, row.duplicated, row.gaps) == (0, 0, 0)


DIGESTS = """query($n: Long!) { projectionHealth(atLeast: $n) { projectedTo
  digests { contextGraph traceSummary precedentIndex fullProjection } } }"""
VERIFY = """mutation { requestReplay(projection: ALL, mode: VERIFY, reason: "chaos") {
  replay { replayId } errors { code } } }"""
RUN = """query($id: String!) { replay(replayId: $id) { status digestsMatch } }"""


def test_worker_sigkilled_in_a_catch_up_ends_equal_to_an_undisturbed_one(
    server: Any, settings: Settings, start_worker: Callable[[], Process]
) -> None:
    """20,000 events projected by workers SIGKILLed twice in the middle of the catch-up;
    the projections they leave equal an undisturbed run over the same log (a VERIFY
    rebuilds it in scratch state and compares digests)."""
    tenant = new_tenant()
    token = asyncio.run(create_key(settings, None, [tenant], ["admin"]))
    total = 20_000
    headers = {"Authorization": f"Bearer {token}"}

    async def gql(http: httpx.AsyncClient, query: str, variables: Any = None) -> Any:
        request = {"query": query, "variables": variables or {}}
        return (await http.post("/graphql", json=request, headers=headers)).json()

    async def seed() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            for start_at in range(0, total, 1000):
                body = await gql(http, APPEND, {"events": traces("w", start_at // 10, 100)})
                assert not body["data"]["appendEvents"]["errors"], body

    async def settle() -> tuple[float, bool]:
        began = time.monotonic()
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            while True:  # each read waits for the projection a while by itself
                if (await gql(http, DIGESTS, {"n": total})).get("data"):
                    break
            recovered = time.monotonic() - began
            run = (await gql(http, VERIFY))["data"]["requestReplay"]["replay"]["replayId"]
            while True:
                state = (await gql(http, RUN, {"id": run}))["data"]["replay"]
                if state["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
                    return recovered, state["digestsMatch"] is True
                await asyncio.sleep(0.1)

    asyncio.run(seed())  # no worker runs yet: nothing is projected
    for delay in (0.5, 1.0):
        worker = start_worker()
        time.sleep(delay)  # starting up, then in the middle of the catch-up
        _kill(worker)
    start_worker()
    recovered, match = asyncio.run(settle())
    _record(Row("worker SIGKILL in a catch-up (x2)", total, 0, 0, 0, recovered,
                f"VERIFY digests match: {match}"))  # fmt: skip
    assert match


def test_redis_killed_during_ingest_and_subscriptions(
    private_redis: Path, settings: Settings, tmp_path: Path
) -> None:
    """Ingest carries on without Redis, /readyz names it as down meanwhile, and once it is
    back a subscriber reading from position 0 receives every acknowledged event in order
    and the projections catch up."""
    redis_url = (private_redis / "redis.url").read_text().strip()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = process_env(settings, DG_HTTP_PORT=str(port), DG_REDIS_URL=redis_url,
                      DG_NAMESPACE=f"chaos{new_tenant()[-6:]}")  # fmt: skip
    server = start("server", ["serve"], env, tmp_path)
    worker = start("worker", ["worker"], env, tmp_path)
    tenant = new_tenant()
    token = asyncio.run(create_key(settings, None, [tenant], ["admin"]))
    load = Load(url, token)
    readiness: list[str] = []

    async def fault() -> None:
        pid = int((private_redis / "redis.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            readiness.append((await http.get("/readyz")).json().get("redis", ""))
        await asyncio.sleep(1.0)
        await asyncio.to_thread(redis_server.ensure, private_redis)

    async def read_back(count: int) -> tuple[list[int], int]:
        positions: list[int] = []
        async with LiveConnection(url, token) as live, asyncio.timeout(60):
            query = "subscription { events(afterLogSeq: 0) { logSeq } }"
            async for data in live.subscribe(query):
                positions.append(data["events"]["logSeq"])
                if len(positions) == count:
                    break
        async with DecisionGraphClient(url, token) as api:
            health = await api.execute(
                "query($n: Long!) { projectionHealth(atLeast: $n) { projectedTo } }", {"n": count}
            )
        return positions, health["projectionHealth"]["projectedTo"]

    try:
        wait_http(f"{url}/healthz")
        recovered = asyncio.run(load.run(SECONDS, fault))
        positions, projected = asyncio.run(read_back(len(load.acknowledged)))
    finally:
        server.stop()
        worker.stop()
    lost, duplicated, gaps = asyncio.run(audit_log(settings.require_database_url, tenant, load))
    row = _record(Row("Redis SIGKILL + restart", len(load.acknowledged), lost, duplicated, gaps,
                      recovered, f"{load.failures} failed attempts; readyz during the outage: redis "
                      f"{readiness[0]!r}; a subscriber from 0 got every event in order"))  # fmt: skip
    assert readiness and readiness[0].startswith("error")
    assert positions == sorted(load.acknowledged.values())
    assert projected == len(load.acknowledged)
    assert (row.lost, row.duplicated, row.gaps) == (0, 0, 0)


REBUILD = """mutation { requestReplay(projection: ALL, mode: REBUILD, reason: "chaos") {
  replay { replayId } errors { code } } }"""
STATE = """query($id: String!) { replay(replayId: $id) { status startedAt finishedAt } }"""


def test_worker_sigkilled_in_a_rebuild(
    server: Any, settings: Settings, start_worker: Callable[[], Process]
) -> None:
    """A REBUILD whose worker is SIGKILLed halfway: the next worker finishes it, the
    digests are the ones the log had before, and no scratch table is left behind."""
    tenant = new_tenant()
    token = asyncio.run(create_key(settings, None, [tenant], ["admin"]))
    headers = {"Authorization": f"Bearer {token}"}
    total = 12_000
    worker = start_worker()

    async def call(http: httpx.AsyncClient, query: str, variables: Any = None) -> Any:
        request = {"query": query, "variables": variables or {}}
        return (await http.post("/graphql", json=request, headers=headers)).json()["data"]

    async def settled(http: httpx.AsyncClient, run: str) -> dict[str, Any]:
        while True:
            state: dict[str, Any] = (await call(http, STATE, {"id": run}))["replay"]
            if state["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
                return state
            await asyncio.sleep(0.05)

    async def scenario() -> tuple[bool, float, int]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            for first in range(0, total, 1000):
                await call(http, APPEND, {"events": traces("r", first // 10, 100)})
            while not (before := await call(http, DIGESTS, {"n": total})):
                pass
            # An undisturbed run tells how long one takes; the kill lands in the middle.
            timed = await settled(
                http, (await call(http, REBUILD))["requestReplay"]["replay"]["replayId"]
            )
            took = (datetime.fromisoformat(timed["finishedAt"])
                    - datetime.fromisoformat(timed["startedAt"])).total_seconds()  # fmt: skip
            run = (await call(http, REBUILD))["requestReplay"]["replay"]["replayId"]
            while True:  # started: the kill lands inside the run
                if (await call(http, STATE, {"id": run}))["replay"]["status"] != "QUEUED":
                    break
                await asyncio.sleep(0.005)
            await asyncio.sleep(took / 2)
            _kill(worker)
            killed = time.monotonic()
            start_worker()
            state = await settled(http, run)
            recovered = time.monotonic() - killed
            after = await call(http, DIGESTS, {"n": total})
            conn = await asyncpg.connect(settings.require_database_url)
            try:
                shadows = len(await conn.fetch(
                    "SELECT relname FROM pg_class WHERE relkind = 'r' AND NOT relispartition "
                    "AND relname ~ '^dg_[a-z_]+__[0-9a-f]{16}_'"
                ))  # fmt: skip
            finally:
                await conn.close()
            same = state["status"] == "COMPLETED" and after == before
            return same, recovered, shadows

    same, recovered, shadows = asyncio.run(scenario())
    _record(Row("worker SIGKILL in a REBUILD", total, 0, 0, 0, recovered,
                f"finished by the next worker, digests unchanged: {same}; "
                f"scratch tables left: {shadows}"))  # fmt: skip
    assert same and shadows == 0


def test_worker_sigkilled_in_an_sla_sweep_escalates_each_review_once(
    server: Any, settings: Settings, start_worker: Callable[[], Process]
) -> None:
    """Forty reviews already past their SLA when the worker starts; it is SIGKILLed while
    escalating them and two workers take over: each review is escalated exactly once."""
    tenant = new_tenant()
    token = asyncio.run(create_key(settings, None, [tenant], ["admin"]))
    reviews = 40
    overdue = stamp(datetime.now(UTC) - timedelta(hours=30))

    async def seed() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            events = [e for n in range(reviews) for e in renewal(f"s{n}", overdue)]
            response = await http.post(
                "/graphql", json={"query": APPEND, "variables": {"events": events}},
                headers={"Authorization": f"Bearer {token}"},
            )  # fmt: skip
            assert not response.json()["data"]["appendEvents"]["errors"]

    async def escalated() -> tuple[int, int]:
        conn = await asyncpg.connect(settings.require_database_url)
        try:
            row = await conn.fetchrow(
                "SELECT count(*) AS n, count(DISTINCT workflow_id) AS d FROM dg_workflow_journal "
                "WHERE tenant_id = $1 AND kind = 'sla_escalate'",
                tenant,
            )
        finally:
            await conn.close()
        return int(row["n"]), int(row["d"])

    asyncio.run(seed())
    worker = start_worker()
    deadline = time.monotonic() + 30
    while asyncio.run(escalated())[1] == 0 and time.monotonic() < deadline:
        time.sleep(0.005)  # the kill lands as soon as its sweep has begun escalating
    _kill(worker)
    killed = time.monotonic()
    before_kill = asyncio.run(escalated())[1]
    start_worker()
    start_worker()
    while asyncio.run(escalated())[1] < reviews and time.monotonic() < killed + 60:
        time.sleep(0.1)
    recovered = time.monotonic() - killed
    time.sleep(2.5)  # two more sweeps of both workers: nothing may fire again
    total, distinct = asyncio.run(escalated())
    _record(Row("worker SIGKILL in an SLA sweep", reviews, reviews - distinct, total - distinct,
                0, recovered, f"{total} escalations for {reviews} overdue reviews ({before_kill} "
                "before the kill, the rest by two workers after it)"))  # fmt: skip
    assert (total, distinct) == (reviews, reviews)
