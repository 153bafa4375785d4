"""Embedded PostgreSQL and Redis for machines that have neither (spec/api.md "Environment").

Every `decisiongraph` process with the same DG_DATA_DIR shares one pair of servers: the
first process that needs them starts them, later ones attach, and `up` or
`decisiongraph services stop` stops them. DG_DATABASE_URL / DG_REDIS_URL bypass this.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from server.embedded import postgres, redis_server
from server.settings import Settings

__all__ = ["resolve", "running", "stop"]


@contextmanager
def _services_lock(data_dir: Path) -> Iterator[None]:
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / "services.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def resolve(settings: Settings) -> Settings:
    """Settings whose database and Redis URLs point at running servers."""
    if settings.database_url and settings.redis_url:
        return settings
    data_dir = settings.data_dir.resolve()
    with _services_lock(data_dir):
        database_url = settings.database_url or postgres.ensure(data_dir / "postgres")
        redis_url = settings.redis_url or redis_server.ensure(data_dir / "redis")
    return settings.with_services(database_url, redis_url)


def running(settings: Settings) -> dict[str, bool]:
    data_dir = settings.data_dir.resolve()
    return {
        "postgres": postgres.is_running(data_dir / "postgres"),
        "redis": redis_server.is_running(data_dir / "redis"),
    }


def stop(settings: Settings, *, redis: bool = True, postgres_: bool = True) -> list[str]:
    """Stop the embedded servers of this data dir; returns the names actually stopped."""
    data_dir = settings.data_dir.resolve()
    stopped: list[str] = []
    with _services_lock(data_dir):
        if redis and redis_server.stop(data_dir / "redis"):
            stopped.append("redis")
        if postgres_ and postgres.stop(data_dir / "postgres"):
            stopped.append("postgres")
    return stopped
