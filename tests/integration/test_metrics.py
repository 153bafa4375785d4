"""The database-derived metric families (server/observability/metrics.py)."""

from __future__ import annotations

import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from server.core.replay import ALL_PROJECTIONS
from server.observability import metrics
from server.store.replays import PostgresReplays
from tests.support import GraphQLClient, input_observed, started

pytestmark = pytest.mark.anyio


async def test_lag_position_and_a_queued_replay_are_read_from_the_database(
    pool: asyncpg.Pool, gql: GraphQLClient, tenant: str
) -> None:
    await gql.append_ok([started("m"), input_observed("m", 1)])  # no worker: nothing projected
    run = await PostgresReplays(pool).create(tenant, "ALL", "REBUILD", "metrics check", "k")
    async with pool.acquire() as conn:
        families = await metrics.database_families(conn, ALL_PROJECTIONS)
    text = metrics.exposition(families).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("dg_log_position", (("tenant", tenant),))] == 2
    for projection in ALL_PROJECTIONS:
        key = ("dg_projection_lag_events", (("projection", projection), ("tenant", tenant)))
        assert samples[key] == 2
    labels = (("mode", "REBUILD"), ("replay_id", run.replay_id), ("status", "QUEUED"),
              ("tenant", tenant))  # fmt: skip
    assert samples[("dg_replay_processed_events", labels)] == 0
