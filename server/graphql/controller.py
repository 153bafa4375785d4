"""GraphQL over HTTP and websockets, with authentication at the door.

HTTP: a middleware authenticates POST (and GET with a query) before Strawberry runs, so
bad credentials are a plain 401; GET without a query serves GraphiQL. Websockets: the
`connection_init` payload carries the token and tenant; failures close with 4401
(credentials) or 4403 (tenant not allowed), as spec/api.md requires, and 4429 when the
key's read budget is spent.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, ClassVar, Final, cast

import msgspec
from graphql import (
    ExecutionResult,
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    parse,
)
from litestar import Response
from litestar.background_tasks import BackgroundTasks
from litestar.datastructures import Headers, State
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Dependencies, Receive, Scope, Send
from strawberry.http import GraphQLRequestData
from strawberry.litestar import make_graphql_controller
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from server.auth.principal import Permission, Principal
from server.core.errors import (
    FORBIDDEN,
    INVALID_ARGUMENT,
    RATE_LIMITED,
    UNAUTHORIZED,
    DecisionGraphError,
)
from server.core.rate_limit import Scope as Budget
from server.core.rate_limit import scope_of
from server.graphql.context import DGContext, Services
from server.graphql.ide import PAGE
from server.graphql.live.fast_stream import stream_plans
from server.graphql.schema import schema
from server.graphql.traces.fast_append import append_plans

GRAPHQL_PATH = "/graphql"


def _error_body(error: DecisionGraphError) -> dict[str, Any]:
    return {"errors": [{"message": error.message, "extensions": {"code": error.code}}]}


class AuthMiddleware(ASGIMiddleware):
    """Authenticate GraphQL HTTP requests; the principal travels in the ASGI scope state."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope["path"].rstrip("/") == GRAPHQL_PATH and _carries_operation(scope):
            services: Services = scope["litestar_app"].state.services
            headers = Headers.from_scope(scope)
            try:
                principal = await services.authenticator.authenticate(headers.get("authorization"))
            except DecisionGraphError as error:
                await _refuse(send, error)
                return
            scope.setdefault("state", {})["principal"] = principal
        await next_app(scope, receive, send)


async def _refuse(send: Send, error: DecisionGraphError) -> None:
    """401 for credentials (503 when the key store is unreachable), GraphQL-shaped body."""
    status = 401 if error.code == UNAUTHORIZED else 503
    body = json.dumps(_error_body(error)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    start: Any = {"type": "http.response.start", "status": status, "headers": headers}
    end: Any = {"type": "http.response.body", "body": body}
    await send(start)
    await send(end)


def _carries_operation(scope: Scope) -> bool:
    method = scope.get("method", "GET")
    if method == "POST":
        return True
    return method == "GET" and b"query=" in scope.get("query_string", b"")


async def context_getter(
    state: State, headers: Headers, scope: Scope, root_value: None
) -> DGContext:
    """One getter for HTTP and websockets: both offer `state`, `headers` and `scope`.
    `root_value` carries nothing: it puts this getter one depth after it (see
    GraphQLController.dependencies)."""
    connection_state = scope.get("state", {})
    return DGContext(
        services=state.services,
        principal=connection_state.get("principal"),
        tenant_header=headers.get("x-tenant-id"),
    )


async def _authenticate_socket(context: DGContext, payload: dict[str, Any]) -> tuple[int, str]:
    """(0, "") when the connection may proceed, else the close code and reason."""
    services: Services = context.services
    socket = context.websocket
    header = payload.get("authorization") or payload.get("Authorization")
    if header is None and socket is not None:
        header = socket.headers.get("authorization")
    try:
        principal: Principal = await services.authenticator.authenticate(header)
        tenant = principal.tenant_for(payload.get("tenant") or payload.get("tenantId"))
        principal.require(Permission.READ)  # every subscription reads
    except DecisionGraphError as error:
        if error.code == UNAUTHORIZED:
            return 4401, error.message[:120]
        if error.code == FORBIDDEN:
            return 4403, error.message[:120]
        return 4400, error.message[:120]
    # Opening a live connection spends one read of the key's budget, as a query would; the
    # subscriptions on it are bounded per connection and by the slow-consumer cut-off.
    admission = await services.rate_limiter.admit(principal.key_id, tenant, "read")
    if admission is not None and not admission.allowed:
        return (
            4429,
            f"Rate limit exceeded for the read API scope; retry in {admission.retry_after} s",
        )
    context.principal = principal
    context.tenant_header = tenant
    return 0, ""


class TransportWSHandler(BaseGraphQLTransportWSHandler[DGContext, None]):
    async def run_operation(self, operation: Any) -> None:
        """Plain `events` / `traceEvents` documents run compiled (live/fast_stream.py)."""
        plan = _stream_plans.get(operation.query, operation.operation_name)
        if plan is not None:
            arguments = plan.arguments(_stream_plans.schema, operation.variables)
            if arguments is not None:
                await plan.run(operation, self.context, arguments)
                return
        await super().run_operation(operation)

    async def handle_connection_init(self, message: Any) -> None:
        payload = message.get("payload") or {}
        if isinstance(payload, dict) and not self.connection_init_received:
            code, reason = await _authenticate_socket(self.context, payload)
            if code:
                await self.websocket.close(code=code, reason=reason)
                return
        await super().handle_connection_init(message)


class LegacyWSHandler(BaseGraphQLWSHandler[DGContext, None]):
    async def handle_connection_init(self, message: Any) -> None:
        payload = message.get("payload") or {}
        if isinstance(payload, dict):
            code, reason = await _authenticate_socket(self.context, payload)
            if code:
                await self.send_message(
                    {"type": "connection_error", "payload": {"message": reason, "code": code}}
                )
                await self.websocket.close(code=code, reason=reason)
                return
        await super().handle_connection_init(message)


@lru_cache(maxsize=512)
@lru_cache(maxsize=512)
def _single_operation(query: str, operation_name: str | None) -> OperationDefinitionNode | None:
    """The operation a request runs, or None when the document does not name exactly one
    (it then fails in GraphQL validation with the usual error). Clients repeat a few
    documents, so each is parsed here once."""
    try:
        document = parse(query)
    except GraphQLError:
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    return operations[0] if len(operations) == 1 else None


def operation_scope(query: str, operation_name: str | None) -> Budget:
    """The budget a document spends; an unparsable one spends `read` (it fails anyway)."""
    operation = _single_operation(query, operation_name)
    if operation is None:
        return "read"
    fields = frozenset(
        s.name.value for s in operation.selection_set.selections if isinstance(s, FieldNode)
    )
    return scope_of(operation.operation.value, fields)


def _subscription_over_http(query: str, operation_name: str | None) -> ExecutionResult | None:
    """A subscription sent as an HTTP request: a precise refusal, not an execution that
    fails inside (subscriptions stream over the websocket at the same path)."""
    operation = _single_operation(query, operation_name)
    if operation is None or operation.operation != OperationType.SUBSCRIPTION:
        return None
    message = (
        "Subscriptions run over a websocket at /graphql (graphql-transport-ws or graphql-ws), "
        "not over HTTP"
    )
    extensions = {"code": INVALID_ARGUMENT, "classification": "BAD_REQUEST"}
    return ExecutionResult(data=None, errors=[GraphQLError(message, extensions=extensions)])


async def _spend(context: DGContext, scope: Budget, sub_response: Any) -> ExecutionResult | None:
    """Count the request against its key's budget; a refusal is a 429 with Retry-After."""
    principal = context.principal
    if principal is None:
        return None
    try:
        tenant = principal.tenant_for(context.tenant_header)
    except DecisionGraphError:
        return None  # the resolvers refuse it with the precise code
    admission = await context.services.rate_limiter.admit(principal.key_id, tenant, scope)
    if admission is None:
        return None
    sub_response.headers["X-RateLimit-Limit"] = str(admission.limit)
    sub_response.headers["X-RateLimit-Remaining"] = str(admission.remaining)
    if admission.allowed:
        return None
    sub_response.status_code = 429
    sub_response.headers["Retry-After"] = str(admission.retry_after)
    message = f"Rate limit exceeded for the {scope} API scope; retry in {admission.retry_after} s"
    extensions = {"code": RATE_LIMITED, "classification": "BAD_REQUEST"}
    return ExecutionResult(data=None, errors=[GraphQLError(message, extensions=extensions)])


_Base: Any = make_graphql_controller(
    schema,
    path=GRAPHQL_PATH,
    graphql_ide="graphiql",
    allow_queries_via_get=True,
    keep_alive=True,
    keep_alive_interval=15,
    max_subscriptions_per_connection=32,
)


_strict_json: Final = msgspec.json.Decoder()


def parse_body(data: str | bytes) -> Any:
    """A request body: msgspec for strict JSON, the stdlib for anything else (decode_json)."""
    try:
        return _strict_json.decode(data)
    except msgspec.DecodeError:
        return json.loads(data)


_append_plans = append_plans(schema._schema)
_stream_plans = stream_plans(schema._schema)


def _response_getter() -> Response[Any]:
    return Response({}, background=BackgroundTasks([]))


# Litestar resolves the dependencies of one depth together in an anyio task group, a task
# each: strawberry's leaves (the sub-response, the root value, our context) made one such
# group per request, ~12% of the server's CPU for a small query (py-spy). Chained, each
# depth holds one dependency and each is simply awaited: response -> root value ->
# context getter -> strawberry's context. The links carry nothing; they only order.
async def _root_value(response: Response[Any]) -> None:
    return None


class GraphQLController(_Base):  # type: ignore[misc]
    # Our GraphiQL page: its assets come from this server, never from a CDN (graphql/ide.py).
    graphql_ide_html = PAGE
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler
    # strawberry provides the sub-response with `sync_to_thread=True`: a thread-pool hop per
    # request to build an empty Response (~5% of a server process's samples under ingest in
    # py-spy; no throughput change measurable through this VM's noise).
    dependencies: ClassVar[Dependencies] = {
        **_Base.dependencies,
        "response": Provide(_response_getter, sync_to_thread=False),
        "root_value": Provide(_root_value),
        "custom_context": Provide(context_getter),
    }

    async def execute_single(
        self,
        request: Any,
        request_adapter: Any,
        sub_response: Any,
        context: DGContext,
        root_value: Any,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Ingest documents run compiled (traces/fast_append.py); all else as usual."""
        plan = None
        if request_adapter.method == "POST":
            plan = _append_plans.get(request_data.query, request_data.operation_name)
        scope = (
            "write"
            if plan is not None
            else operation_scope(request_data.query or "", request_data.operation_name)
        )
        refused = await _spend(context, scope, sub_response)
        if refused is not None:
            return refused
        if plan is None:
            wrong = _subscription_over_http(request_data.query or "", request_data.operation_name)
            if wrong is not None:
                return wrong
        if plan is not None:
            result = await plan.run(context, request_data.variables)
            if result is not None:
                return cast(ExecutionResult, result)
        return cast(
            ExecutionResult,
            await super().execute_single(
                request, request_adapter, sub_response, context, root_value, request_data
            ),
        )

    def decode_json(self, data: str | bytes) -> object:
        """Strict JSON through msgspec, about twice as fast as the stdlib on event batches
        (measured on 1- to 500-event bodies). What msgspec refuses goes to the stdlib
        parser: what it accepts beyond strict JSON (NaN, Infinity, lone surrogates, a BOM)
        reaches our validation and gets its precise error instead of a bare 400. On every
        input msgspec accepts, the two parsers give the same values (tests/unit)."""
        return parse_body(data)

    def encode_json(self, data: object) -> bytes:
        # msgspec also writes integers past 64 bits exactly.
        return msgspec.json.encode(data)
