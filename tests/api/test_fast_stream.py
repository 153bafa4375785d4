"""Compiled `events` / `traceEvents` subscriptions send what the generic executor sends.

Each case subscribes twice over graphql-transport-ws (in-process websockets): once with
compiled plans switched off and once with them on, and compares the raw message texts.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import httpx
import pytest
from httpx_ws import aconnect_ws

from server.graphql import controller
from server.graphql.live.fast_stream import stream_plans
from server.graphql.schema import schema
from tests.support import CountingPlans, GraphQLClient, NoPlans, finished, input_observed, started

pytestmark = pytest.mark.anyio

EVERY_FIELD = """subscription Follow($after: Long!) { feed: events(afterLogSeq: $after) {
  __typename logSeq eventId traceId traceSeq eventType occurredAt recordedAt
  src: source { __typename producerId system subsystem } actor { actorId actorType }
  idempotencyKey payload payloadHash correlationId causationEventId schemaVersion tags } }"""
CASES: list[tuple[str, str, dict[str, Any], int]] = [
    ("every field", EVERY_FIELD, {"after": 0}, 4),
    ("literal and default", "subscription { events { logSeq } }", {}, 4),
    ("resumed", "subscription { events(afterLogSeq: 2) { logSeq eventId } }", {}, 2),
    (
        "trace",
        """subscription($t: String!) { traceEvents(traceId: $t) { traceSeq eventType } }""",
        {"t": "a"},
        3,  # then `complete`: the trace is finished
    ),
    (
        "unknown trace",
        'subscription { traceEvents(traceId: "nope", afterTraceSeq: 0) { traceSeq } }',
        {},
        1,
    ),
    ("position too far", "subscription { events(afterLogSeq: 99) { logSeq } }", {}, 1),
    ("bad variable", EVERY_FIELD, {"after": "one"}, 1),
    ("missing variable", EVERY_FIELD, {}, 1),
]


async def messages(
    http: httpx.AsyncClient, token: str, tenant: str, query: str, variables: dict[str, Any], n: int
) -> list[str]:
    """The first `n` messages of one subscription (recordedAt masked), plus what follows
    them when the server ends it."""
    async with aconnect_ws("/graphql", http, subprotocols=["graphql-transport-ws"]) as ws:
        init = {"authorization": f"Bearer {token}", "tenant": tenant}
        await ws.send_json({"type": "connection_init", "payload": init})
        assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
        payload = {"query": query, "variables": variables}
        await ws.send_json({"id": "7", "type": "subscribe", "payload": payload})
        texts = []
        while len(texts) < n:
            texts.append(await ws.receive_text(timeout=5))
        if json.loads(texts[-1]).get("type") != "complete":
            with contextlib.suppress(TimeoutError):  # a `complete`, or nothing
                texts.append(await ws.receive_text(timeout=0.3))
        return [_masked(t) for t in texts]


def _masked(text: str) -> str:
    message = json.loads(text)
    payload = message.get("payload")
    if isinstance(payload, dict):  # `error` messages carry a list
        for data in (payload.get("data") or {}).values():
            if isinstance(data, dict) and "recordedAt" in data:
                data["recordedAt"] = "-"
    return json.dumps(message)


@pytest.mark.parametrize(("case", "query", "variables", "n"), CASES, ids=[c[0] for c in CASES])
async def test_compiled_streams_send_what_the_executor_sends(
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    admin_token: str,
    tenant: str,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    query: str,
    variables: dict[str, Any],
    n: int,
) -> None:
    tagged = input_observed("a", 1, tags=["x", "é"], correlation_id="c-1")
    await gql.append_ok([started("a"), tagged, finished("a", 2), started("b")])
    monkeypatch.setattr(controller, "_stream_plans", NoPlans())
    generic = await messages(http, admin_token, tenant, query, variables, n)
    counting = CountingPlans(stream_plans(schema._schema))
    monkeypatch.setattr(controller, "_stream_plans", counting)
    compiled = await messages(http, admin_token, tenant, query, variables, n)
    assert compiled == generic
    assert counting.served == 1
    if case == "trace":
        assert json.loads(generic[-1])["type"] == "complete"
    if case in ("unknown trace", "position too far"):
        assert "DG_ERR_" in generic[0]
