"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from arq.connections import ArqRedis

from server.pubsub.connection import redis_client
from server.settings import Settings


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[ArqRedis]:
    """A client of the test Redis, as the server and workers make theirs."""
    client = redis_client(settings.require_redis_url)
    try:
        yield client
    finally:
        await client.aclose()
