"""Bad input gets its precise code, never a 500, and nothing is written."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support import APPEND, GraphQLClient, new_tenant, started, to_input

pytestmark = pytest.mark.anyio


async def rows(pool: asyncpg.Pool, tenant: str) -> int:
    async with pool.acquire() as conn:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM dg_event_log WHERE tenant_id = $1", tenant
        )
        return count


async def post(http: httpx.AsyncClient, body: Any, headers: dict[str, str]) -> httpx.Response:
    return await http.post("/graphql", json=body, headers=headers)


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda e: e | {"traceSeq": "zero"}, "Int cannot represent"),
        (lambda e: e | {"traceSeq": 2**31}, "Int cannot represent"),
        (lambda e: e | {"source": "nope"}, "SourceInput"),
        (lambda e: {k: v for k, v in e.items() if k != "actor"}, "actor"),
        (lambda e: e | {"tags": [1, 2]}, "String cannot represent"),
    ],
)
async def test_wrong_types_are_graphql_validation_errors(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str, mutate: Any, fragment: str
) -> None:
    event = mutate(to_input(started("t")))
    body = await gql.execute(APPEND, {"events": [event]})
    assert body.get("data") is None
    error = body["errors"][0]
    assert fragment in error["message"]
    assert error["extensions"]["code"] == "DG_ERR_INVALID_ARGUMENT"
    assert await rows(pool, tenant) == 0


async def test_payload_that_is_not_an_object(
    gql: GraphQLClient, tenant: str, pool: asyncpg.Pool
) -> None:
    event = to_input(started("t")) | {"payload": "a string"}
    result = (await gql.execute(APPEND, {"events": [event]}))["data"]["appendEvents"]
    assert result["errors"][0]["code"] == "DG_ERR_SCHEMA_VIOLATION"
    assert result["errors"][0]["message"] == "Payload must be a dict"
    assert await rows(pool, tenant) == 0


async def test_float_from_a_raw_json_body(
    http: httpx.AsyncClient, admin_token: str, tenant: str, pool: asyncpg.Pool
) -> None:
    event = to_input(started("t"))
    event["payload"]["score"] = 0.92
    response = await post(
        http,
        {"query": APPEND, "variables": {"events": [event]}},
        {"Authorization": f"Bearer {admin_token}", "X-Tenant-ID": tenant},
    )
    error = response.json()["data"]["appendEvents"]["errors"][0]
    assert error["code"] == "DG_ERR_SCHEMA_VIOLATION"
    assert error["message"] == (
        "Float found at '$.score': 0.92. Use string representation for decimals."
    )
    assert await rows(pool, tenant) == 0


async def test_nan_in_raw_json_is_a_float(
    http: httpx.AsyncClient, admin_token: str, tenant: str
) -> None:
    query = json.dumps(APPEND)
    body = (
        f'{{"query": {query}, "variables": {{"events": [{{"eventId": "e", "traceId": "t",'
        ' "traceSeq": 0, "eventType": "TraceFinished", "occurredAt": "x", "source":'
        ' {"producerId": "p", "system": "s"}, "actor": {"actorType": "a", "actorId": "b"},'
        ' "idempotencyKey": "k", "payload": {"outcome": "ok", "x": NaN}}]}}'
    )
    response = await http.post(
        "/graphql",
        content=body,
        headers={
            "Authorization": f"Bearer {admin_token}",
            "X-Tenant-ID": tenant,
            "Content-Type": "application/json",
        },
    )
    error = response.json()["data"]["appendEvents"]["errors"][0]
    assert error["code"] == "DG_ERR_SCHEMA_VIOLATION" and "Float found" in error["message"]


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        (
            "payload",
            {
                "workflow": "w\u0000",
                "title": "t",
                "primary_entity": {"entity_type": "a", "entity_id": "b"},
            },
            "Null bytes",
        ),
        ("traceId", "t\u0000", "Null bytes"),
        ("idempotencyKey", "k\u0000", "null bytes"),
    ],
)
async def test_nul_characters(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str, field: str, value: Any, fragment: str
) -> None:
    event = to_input(started("t")) | {field: value}
    result = (await gql.execute(APPEND, {"events": [event]}))["data"]["appendEvents"]
    assert result["errors"][0]["code"] == "DG_ERR_INVALID_ARGUMENT"
    assert fragment in result["errors"][0]["message"]
    assert await rows(pool, tenant) == 0


async def test_oversized_batch(gql: GraphQLClient, pool: asyncpg.Pool, tenant: str) -> None:
    events = [to_input(started(f"t{i}")) for i in range(1001)]
    result = (await gql.execute(APPEND, {"events": events}))["data"]["appendEvents"]
    assert result["errors"] == [
        {
            "code": "DG_ERR_INVALID_ARGUMENT",
            "message": "A batch holds at most 1000 events (got 1001)",
            "index": None,
            "field": None,
        }
    ]
    assert await rows(pool, tenant) == 0


async def test_empty_batch(gql: GraphQLClient) -> None:
    result = (await gql.execute(APPEND, {"events": []}))["data"]["appendEvents"]
    assert result["errors"][0]["code"] == "DG_ERR_INVALID_ARGUMENT"


async def test_oversized_payload(gql: GraphQLClient, pool: asyncpg.Pool, tenant: str) -> None:
    event = to_input(started("t"))
    event["payload"]["blob"] = "x" * 300_000
    result = (await gql.execute(APPEND, {"events": [event]}))["data"]["appendEvents"]
    assert result["errors"][0]["code"] == "DG_ERR_INVALID_ARGUMENT"
    assert result["errors"][0]["message"].startswith("Payload exceeds 262144 bytes")
    assert await rows(pool, tenant) == 0


async def test_one_bad_event_rejects_the_whole_batch(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    good = [to_input(started(f"ok{i}")) for i in range(3)]
    bad = to_input(started("bad")) | {"eventType": "Nope"}
    also_bad = to_input(started("bad2")) | {"idempotencyKey": ""}
    result = (await gql.execute(APPEND, {"events": [*good, bad, also_bad]}))["data"]["appendEvents"]
    assert [(e["index"], e["code"]) for e in result["errors"]] == [
        (3, "DG_ERR_SCHEMA_VIOLATION"),
        (4, "DG_ERR_INVALID_ARGUMENT"),
    ]
    assert result["events"] == []
    assert await rows(pool, tenant) == 0


async def test_a_stateful_failure_mid_batch_writes_nothing(
    gql: GraphQLClient, pool: asyncpg.Pool, tenant: str
) -> None:
    events = [
        to_input(started("a")),
        to_input(started("b")),
        to_input(started("a", idempotency_key="z")),
    ]
    result = (await gql.execute(APPEND, {"events": events}))["data"]["appendEvents"]
    assert result["errors"][0]["index"] == 2
    assert result["errors"][0]["code"] == "DG_ERR_EVENT_SEQUENCE_INVALID"
    assert await rows(pool, tenant) == 0


async def test_missing_and_bad_credentials_are_401(http: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer nope"}):
        response = await post(http, {"query": "{ events { edges { cursor } } }"}, headers)
        assert response.status_code == 401
        assert response.json()["errors"][0]["extensions"]["code"] == "DG_ERR_UNAUTHORIZED"
        assert response.headers["www-authenticate"] == "Bearer"


async def test_graphiql_needs_no_credentials(http: httpx.AsyncClient) -> None:
    response = await http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200 and "graphiql" in response.text.lower()


async def test_a_key_used_on_another_tenant(
    http: httpx.AsyncClient, settings: Any, pool: asyncpg.Pool
) -> None:
    from server.startup import create_key

    home, other = new_tenant(), new_tenant()
    token = await create_key(settings, None, [home], ["writer"])
    client = GraphQLClient(http, token, other)
    result = await client.append([started("t")])
    assert result["errors"][0]["code"] == "DG_ERR_FORBIDDEN"
    query = await client.execute('{ trace(traceId: "t") { traceId } }')
    assert query["errors"][0]["extensions"]["code"] == "DG_ERR_FORBIDDEN"
    assert query["data"] == {"trace": None}  # only the refused (nullable) field is null
    assert await rows(pool, other) == 0
    # without a header the key's only tenant is used
    client.tenant = None
    assert (await client.append_ok([started("t")]))[0]["logSeq"] == 1
    assert await rows(pool, home) == 1


async def test_roles(http: httpx.AsyncClient, settings: Any) -> None:
    from server.startup import create_key

    tenant = new_tenant()
    reader = GraphQLClient(http, await create_key(settings, None, [tenant], ["reader"]), tenant)
    result = await reader.append([started("t")])
    assert result["errors"][0]["code"] == "DG_ERR_FORBIDDEN"
    assert "append" in result["errors"][0]["message"]
    assert (await reader.data('{ trace(traceId: "t") { traceId } }'))["trace"] is None


async def test_multi_tenant_key_must_name_a_tenant(gql: GraphQLClient) -> None:
    gql.tenant = None
    result = await gql.append([started("t")])
    assert result["errors"][0]["code"] == "DG_ERR_INVALID_ARGUMENT"
    gql.tenant = "Not_A_Tenant"
    result = await gql.append([started("t")])
    assert result["errors"][0]["code"] == "DG_ERR_INVALID_ARGUMENT"


@pytest.mark.parametrize(
    "query",
    [
        "{ events(first: 10001) { edges { cursor } } }",
        "{ events(first: -1) { edges { cursor } } }",
        "{ events(afterLogSeq: -5) { edges { cursor } } }",
        '{ events(after: "garbage") { edges { cursor } } }',
        '{ events(afterLogSeq: "5") { edges { cursor } } }',
        "{ events(afterLogSeq: 99999999999999999999) { edges { cursor } } }",
        "{ nope }",
        "{ events { ",
    ],
)
async def test_bad_query_arguments_have_codes(gql: GraphQLClient, query: str) -> None:
    body = await gql.execute(query)
    assert body["errors"], body
    assert body["errors"][0]["extensions"]["code"] == "DG_ERR_INVALID_ARGUMENT"


async def test_malformed_json_body_is_a_400(http: httpx.AsyncClient, admin_token: str) -> None:
    response = await http.post(
        "/graphql",
        content=b"{not json",
        headers={"Authorization": f"Bearer {admin_token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    "query",
    [
        '{ replay(replayId: "a\\u0000b") { replayId } }',
        '{ nodeEdges(nodeType: "x\\u0000", nodeId: "y") { edges { cursor } } }',
        '{ trace(traceId: "t\\u0000") { traceId } }',
        '{ precedents(policyId: "p\\u0000") { traceId } }',
    ],
)
async def test_nul_in_query_arguments_is_a_client_error(gql: GraphQLClient, query: str) -> None:
    body = await gql.execute(query)
    assert body["errors"][0]["extensions"]["code"] == "DG_ERR_INVALID_ARGUMENT"


async def test_nul_in_mutation_arguments_is_a_payload_error(gql: GraphQLClient) -> None:
    body = await gql.data(
        'mutation { requestReplay(projection: ALL, mode: VERIFY, reason: "r\\u0000") '
        "{ replay { replayId } errors { code } } }"
    )
    assert body["requestReplay"] == {
        "replay": None,
        "errors": [{"code": "DG_ERR_INVALID_ARGUMENT"}],
    }


@pytest.mark.parametrize("operation_name", [None, "Live"])
async def test_a_subscription_sent_over_http_is_refused_with_a_precise_error(
    gql: GraphQLClient, operation_name: str | None
) -> None:
    """What GraphiQL sends when it runs a subscription before it has parsed the document:
    a clear refusal, where executing it used to fail inside as DG_ERR_INTERNAL."""
    document = (
        "query Q { viewer { keyId } } subscription Live { events(afterLogSeq: 0) { logSeq } }"
    )
    if operation_name is None:
        document = "subscription { events(afterLogSeq: 0) { logSeq } }"
    body = await gql.execute(document, {}, operation_name=operation_name)
    assert body.get("data") is None
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "DG_ERR_INVALID_ARGUMENT"
    assert error["message"].startswith("Subscriptions run over a websocket at /graphql")
