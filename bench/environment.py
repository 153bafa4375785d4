"""Bench plumbing: a fresh database, server processes, machine facts, percentiles."""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from server import embedded
from server.settings import Settings
from server.store.database import admin_sql, with_database
from server.store.migrate import migrate

ROOT = Path(__file__).resolve().parents[1]


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def busy_core_seconds() -> float:
    """CPU time the whole machine has spent busy so far (every process: PostgreSQL, Redis,
    the server, the workers and the bench itself), from /proc/stat; NaN where there is no
    /proc. Differences of it, around a measured step, are that step's cost in core-seconds
    on a machine that runs nothing else (10 ms resolution)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


@contextmanager
def scratch_database(server_dsn: str) -> Iterator[str]:
    """A fresh, migrated database on the server of `server_dsn`, dropped at the end."""
    name = f"dg_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(admin_sql(server_dsn, f"CREATE DATABASE {name}"))
    url = with_database(server_dsn, name)
    try:
        asyncio.run(migrate(url))
        yield url
    finally:
        asyncio.run(admin_sql(server_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@contextmanager
def bench_settings() -> Iterator[Settings]:
    """Resolved services and a fresh, migrated database dropped at the end."""
    base = replace(Settings.from_env(os.environ), data_dir=ROOT / ".dg-test")
    resolved = embedded.resolve(base)
    try:
        with scratch_database(resolved.require_database_url) as url:
            yield replace(resolved, database_url=url, namespace=f"bench{uuid.uuid4().hex[:6]}")
    finally:
        embedded.stop(base, redis=base.redis_url is None, postgres_=base.database_url is None)


async def postgres_version(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    env = os.environ.copy()
    env.update(
        DG_DATABASE_URL=settings.require_database_url,
        DG_REDIS_URL=settings.require_redis_url,
        DG_NAMESPACE=settings.namespace,
        DG_LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "warning"),
        # Budgets far above what a run sends: every request still pays for its counter.
        DG_RATE_LIMIT_READ="100000000",
        DG_RATE_LIMIT_WRITE="100000000",
    )
    env.update(extra)
    return env


@contextmanager
def process(
    command: list[str], env: dict[str, str], ready_url: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    popen = subprocess.Popen([sys.executable, "-m", "server.cli", *command], env=env, cwd=ROOT)
    try:
        if ready_url:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(ready_url, timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline or popen.poll() is not None:
                        raise RuntimeError(f"{command} did not become ready") from None
                    time.sleep(0.2)
        yield popen
    finally:
        popen.terminate()
        try:
            popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            popen.kill()
