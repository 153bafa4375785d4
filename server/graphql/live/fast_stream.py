"""`events` and `traceEvents` subscriptions compiled: one rendering per event per document.

With many subscribers, graphql-core's per-message execution (a small result tree built,
completed and serialised for every subscriber and every event) dominated the server's
CPU. Subscribers of one tenant usually send the same document, so a compiled plan renders
each event once, as JSON, and every subscriber's `next` message embeds those bytes
(`msgspec.Raw`). Delivery is the same loss-free stream as the generic resolver
(service/live.py), with the same slow-consumer guard and the same errors.

Documents outside the compiled shape, arguments graphql-core would reject, and the legacy
graphql-ws protocol take the generic path. tests/e2e/test_fast_stream.py checks both paths
send the same bytes.
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLField,
    GraphQLSchema,
    OperationType,
    VariableDefinitionNode,
)
from graphql.execution.values import get_argument_values, get_variable_values

from server.auth.principal import Permission
from server.core.envelope import StoredEvent
from server.core.errors import DecisionGraphError, internal
from server.graphql.compiled import (
    NotCompiled,
    PlanCache,
    Renderer,
    event_getters,
    event_objects,
    renderer,
    response_key,
    single_operation,
)
from server.graphql.context import DGContext, authorize_context
from server.graphql.errors import annotate
from server.graphql.live.resolvers import cut_off
from server.observability.metrics import SUBSCRIPTIONS
from server.observability.tracing import pushed
from server.service import live
from server.service.ports import LOG_TOPIC

_log = logging.getLogger(__name__)

FIELDS: Final = frozenset({"events", "traceEvents"})
MAX_PLANS: Final = 256
RENDERED_EVENTS: Final = 4096  # per plan: the recent events every subscriber shares
_EVENT: Final = event_getters("", "Event")
_OBJECTS: Final = event_objects("")


@dataclass
class StreamPlan:
    field_name: str
    response_key: str
    root: FieldNode
    definition: GraphQLField
    variables: tuple[VariableDefinitionNode, ...]
    render: Renderer
    rendered: OrderedDict[tuple[str, int], msgspec.Raw] = field(default_factory=OrderedDict)

    def arguments(self, schema: GraphQLSchema, values: dict[str, Any] | None) -> Any:
        """The coerced arguments, or None when graphql-core should report a problem."""
        coerced = get_variable_values(schema, self.variables, values or {})
        if isinstance(coerced, list):
            return None
        try:
            return get_argument_values(self.definition, self.root, coerced)
        except GraphQLError:
            return None

    def payload(self, tenant_id: str, event: StoredEvent) -> msgspec.Raw:
        key = (tenant_id, event.log_seq)
        raw = self.rendered.get(key)
        if raw is None:
            data = {"data": {self.response_key: self.render(event)}}
            raw = msgspec.Raw(msgspec.json.encode(data))
            self.rendered[key] = raw
            if len(self.rendered) > RENDERED_EVENTS:
                self.rendered.popitem(last=False)
        return raw

    async def run(self, operation: Any, context: DGContext, arguments: dict[str, Any]) -> None:
        """Stream to `operation` (strawberry's graphql-transport-ws Operation)."""
        try:
            tenant = authorize_context(context, Permission.READ)
            feeds: live.LiveFeeds = context.services.live
            if self.field_name == "events":
                stream = live.follow_events(feeds, tenant, arguments["afterLogSeq"])
            else:
                stream = live.follow_trace(
                    feeds, tenant, arguments["traceId"], arguments["afterTraceSeq"]
                )
            guarded = feeds.watched(stream, cut_off(context.websocket))
            SUBSCRIPTIONS.inc()
            try:
                async with contextlib.aclosing(guarded):
                    async for event in guarded:
                        payload = self.payload(tenant, event)
                        cause = context.services.hub.cause(tenant, (LOG_TOPIC,))
                        with pushed(self.field_name, tenant, cause):
                            await operation.send_operation_message(
                                {"id": operation.id, "type": "next", "payload": payload}
                            )
            finally:
                SUBSCRIPTIONS.dec()
        except DecisionGraphError as exc:
            await _send_error(operation, exc)
        except Exception as exc:
            if type(exc).__name__ == "WebSocketDisconnected":
                raise
            _log.exception("subscription stream failed")
            await _send_error(operation, internal("Internal server error"))
        await operation.send_operation_message({"id": operation.id, "type": "complete"})


async def _send_error(operation: Any, exc: Exception) -> None:
    """The message the generic path sends when a subscription's source raises."""
    error = GraphQLError(str(exc), original_error=exc)
    annotate(error)
    payload = {"data": None, "errors": [error.formatted]}
    await operation.send_operation_message({"id": operation.id, "type": "next", "payload": payload})


def compile_stream(schema: GraphQLSchema, query: str, operation_name: str | None) -> StreamPlan:
    operation, root = single_operation(schema, query, operation_name, OperationType.SUBSCRIPTION)
    if root.name.value not in FIELDS:
        raise NotCompiled
    subscription = schema.subscription_type
    assert subscription is not None
    return StreamPlan(
        field_name=root.name.value,
        response_key=response_key(root),
        root=root,
        definition=subscription.fields[root.name.value],
        variables=tuple(operation.variable_definitions or ()),
        render=renderer(root.selection_set, _EVENT, _OBJECTS),
    )


def stream_plans(schema: GraphQLSchema) -> PlanCache[StreamPlan]:
    return PlanCache(schema, compile_stream, FIELDS)
