"""First path: append golden events over GraphQL, read them back."""

from __future__ import annotations

import pytest

from tests.support import GraphQLClient, golden_events

pytestmark = pytest.mark.anyio


async def test_append_and_read(gql: GraphQLClient) -> None:
    stored = await gql.append_ok(golden_events("renewal"))
    assert [e["logSeq"] for e in stored] == list(range(1, 10))
    data = await gql.data(
        "{ events(afterLogSeq: 0, first: 3) { edges { node { logSeq eventType } } pageInfo { hasNextPage } } }"
    )
    assert data["events"]["pageInfo"]["hasNextPage"] is True
