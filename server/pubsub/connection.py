"""The Redis client shared by publishing and arq enqueueing."""

from __future__ import annotations

from arq.connections import ArqRedis


def redis_client(url: str) -> ArqRedis:
    """Short timeouts so a Redis outage fails fast instead of stalling callers."""
    client: ArqRedis = ArqRedis.from_url(
        url, socket_connect_timeout=1.0, socket_timeout=2.0, health_check_interval=15
    )
    return client
