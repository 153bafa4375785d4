"""The compiled appendEvents path answers exactly as the generic executor does.

Each case sends the same request twice, to two fresh tenants: once with compiled plans
switched off (graphql-core and Strawberry all the way) and once with them on. The
response bodies must be equal byte for byte once `recordedAt` (a clock reading) is
masked, and the compiled path must really have served the documents it claims.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from server.graphql import controller
from server.graphql.compiled import NotCompiled
from server.graphql.schema import schema
from server.graphql.traces.fast_append import append_plans, compile_plan
from server.settings import Settings
from tests.support import (
    CountingPlans,
    NoPlans,
    finished,
    input_observed,
    new_tenant,
    started,
    to_input,
)

pytestmark = pytest.mark.anyio

EVERY_FIELD = """
mutation Ingest($batch: [EventInput!]!) {
  appendEvents(events: $batch) {
    __typename
    errs: errors { __typename code message field index }
    stored: events {
      __typename logSeq eventId traceId traceSeq eventType occurredAt recordedAt
      src: source { __typename producerId system subsystem }
      actor { actorId actorType __typename }
      idempotencyKey payload payloadHash correlationId causationEventId schemaVersion
      tags idempotentReplay
    }
  }
}
"""
BENCH = (
    "mutation($events: [EventInput!]!) { appendEvents(events: $events) "
    "{ events { logSeq } errors { code message } } }"
)
NOT_COMPILED = [
    # a fragment, a directive, an inline literal, a second root field
    "mutation($events: [EventInput!]!) { appendEvents(events: $events) { ...P } }"
    " fragment P on AppendEventsPayload { events { logSeq } errors { code } }",
    "mutation($events: [EventInput!]!, $no: Boolean!) { appendEvents(events: $events) "
    "{ events @skip(if: $no) { logSeq } errors { code } } }",
    "mutation($events: [EventInput!]!) { appendEvents(events: $events) "
    "{ events { logSeq logSeq } errors { code } } }",
    "mutation($events: [EventInput!]!) { a: appendEvents(events: $events) { errors { code } }"
    " b: appendEvents(events: $events) { errors { code } } }",
]


def batch(trace: str) -> list[dict[str, Any]]:
    tagged = input_observed(trace, 1, tags=["b", "a", "é"], correlation_id="corr-1")
    return [started(trace), tagged, finished(trace, 2)]


def batches() -> Iterator[tuple[str, dict[str, Any]]]:
    """(case, variables) pairs; the variable is named `events` here, renamed per query."""
    good = [to_input(e) for e in batch("t-1")]
    yield "good", {"events": good}
    bad_item = [to_input(e) for e in batch("t-2")]
    bad_item[1] = bad_item[1] | {"payload": {"facts": [], "ratio": 0.5}}
    yield "float in one item", {"events": bad_item}
    yield "unknown type", {"events": [to_input(started("t-3")) | {"eventType": "Nope"}]}
    yield "empty batch", {"events": []}
    yield "wrong variable type", {"events": [to_input(started("t-4")) | {"traceSeq": "0"}]}
    yield "unknown input field", {"events": [to_input(started("t-5")) | {"colour": "red"}]}
    yield "null in list", {"events": [None]}
    yield "variable missing", {}


async def send(
    http: httpx.AsyncClient,
    token: str,
    query: str,
    variables: dict[str, Any],
    operation: str | None = None,
    tenant: str | None = None,
) -> str:
    if "$batch" in query and "events" in variables:
        variables = {"batch": variables["events"]}
    body: dict[str, Any] = {"query": query, "variables": variables}
    if operation:
        body["operationName"] = operation
    response = await http.post(
        "/graphql",
        content=json.dumps(body),
        headers={
            "Authorization": f"Bearer {token}",
            "X-Tenant-ID": tenant or new_tenant(),
            "Content-Type": "application/json",
        },
    )
    masked = re.sub(r'"recordedAt":"[^"]*"', '"recordedAt":"-"', response.text)
    return f"{response.status_code} {masked}"


async def both_ways(
    http: httpx.AsyncClient,
    token: str,
    monkeypatch: pytest.MonkeyPatch,
    query: str,
    variables: dict[str, Any],
    operation: str | None = None,
) -> tuple[str, str, int]:
    """(generic response, compiled response, documents the compiled path served)."""
    monkeypatch.setattr(controller, "_append_plans", NoPlans())
    generic = await send(http, token, query, variables, operation)
    counting = CountingPlans(append_plans(schema._schema))
    monkeypatch.setattr(controller, "_append_plans", counting)
    compiled = await send(http, token, query, variables, operation)
    return generic, compiled, counting.served


@pytest.mark.parametrize("query", [EVERY_FIELD, BENCH], ids=["every field", "bench"])
@pytest.mark.parametrize(("case", "variables"), list(batches()), ids=[c for c, _ in batches()])
async def test_compiled_path_answers_like_the_executor(
    http: httpx.AsyncClient,
    admin_token: str,
    monkeypatch: pytest.MonkeyPatch,
    query: str,
    case: str,
    variables: dict[str, Any],
) -> None:
    generic, compiled, served = await both_ways(http, admin_token, monkeypatch, query, variables)
    assert compiled == generic
    assert served == 1  # the plan exists; a refused variable still takes the generic path
    if case == "good":
        assert '"logSeq":1' in compiled


async def test_an_idempotent_retry_answers_the_same_on_both_paths(
    http: httpx.AsyncClient, admin_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = new_tenant()
    variables = {"events": [to_input(e) for e in batch("retry")]}
    monkeypatch.setattr(controller, "_append_plans", NoPlans())
    first = await send(http, admin_token, EVERY_FIELD, variables, tenant=tenant)
    generic = await send(http, admin_token, EVERY_FIELD, variables, tenant=tenant)
    monkeypatch.setattr(controller, "_append_plans", CountingPlans(append_plans(schema._schema)))
    compiled = await send(http, admin_token, EVERY_FIELD, variables, tenant=tenant)
    assert '"idempotentReplay":false' in first
    assert '"idempotentReplay":true' in generic
    assert compiled == generic


async def test_a_key_without_append_permission_is_refused_the_same_way(
    http: httpx.AsyncClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.startup import create_key

    reader = await create_key(settings, "reader", ["*"], ["reader"])
    variables = {"events": [to_input(e) for e in batch("r")]}
    generic, compiled, served = await both_ways(http, reader, monkeypatch, BENCH, variables)
    assert compiled == generic
    assert "DG_ERR_FORBIDDEN" in compiled
    assert served == 1


@pytest.mark.parametrize("query", NOT_COMPILED)
async def test_other_documents_are_left_to_the_executor(
    http: httpx.AsyncClient, admin_token: str, monkeypatch: pytest.MonkeyPatch, query: str
) -> None:
    variables: dict[str, Any] = {"events": [to_input(e) for e in batch("n")]}
    if "$no" in query:
        variables["no"] = False
    generic, compiled, served = await both_ways(http, admin_token, monkeypatch, query, variables)
    assert compiled == generic
    assert served == 0


async def test_operation_names_are_respected(
    http: httpx.AsyncClient, admin_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    variables = {"events": [to_input(e) for e in batch("o")]}
    generic, compiled, served = await both_ways(
        http, admin_token, monkeypatch, EVERY_FIELD, variables, operation="Other"
    )
    assert compiled == generic
    assert "Unknown operation named" in compiled
    assert served == 0


def test_documents_that_do_not_validate_are_not_compiled() -> None:

    with pytest.raises(NotCompiled):
        compile_plan(
            schema._schema,
            "mutation($events: [EventInput!]!) { appendEvents(events: $events) { nope } }",
            None,
        )
