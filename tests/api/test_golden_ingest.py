"""Every golden event through the GraphQL API: payload hash and tenant position reproduced."""

from __future__ import annotations

import pytest

from tests.support import SCENARIOS, GraphQLClient, derived_expectations, golden_events

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_golden_scenario_in_a_fresh_tenant(gql: GraphQLClient, scenario: str) -> None:
    events = golden_events(scenario)
    expected = derived_expectations()["payload_hashes"][scenario]
    stored = await gql.append_ok(events)
    assert [e["logSeq"] for e in stored] == list(range(1, len(events) + 1))
    assert {e["eventId"]: e["payloadHash"] for e in stored} == expected
    assert not any(e["idempotentReplay"] for e in stored)


async def test_golden_scenarios_one_event_at_a_time_in_one_tenant(gql: GraphQLClient) -> None:
    """The combined-store order of the derived expectations: positions continue 1..26."""
    hashes = derived_expectations()["payload_hashes"]
    position = 0
    for scenario in SCENARIOS:
        for event in golden_events(scenario):
            stored = (await gql.append_ok([event]))[0]
            position += 1
            assert stored["logSeq"] == position
            assert stored["payloadHash"] == hashes[scenario][event["event_id"]]
    assert position == 26


async def test_a_full_retry_returns_the_original_batch(gql: GraphQLClient) -> None:
    events = golden_events("dealdesk")
    first = await gql.append_ok(events)
    again = await gql.append_ok(events)
    assert [e["logSeq"] for e in again] == [e["logSeq"] for e in first]
    assert [e["recordedAt"] for e in again] == [e["recordedAt"] for e in first]
    assert all(e["idempotentReplay"] for e in again)
