"""appendEvents compiled: the hot ingest document run without the generic executor.

Agents send one document shape over and over: `mutation($events: [EventInput!]!) {
appendEvents(events: $events) { events { logSeq ... } errors { code message } } }`. For a
100-event batch graphql-core and Strawberry spent about a third of the server's CPU
converting the variable into input objects and completing a hundred small result
objects. A document of that shape is compiled once (validated against the schema, its
selections turned into getters) and then runs straight through: the strict coercer of
fast_inputs, the envelope builder the resolver uses, `append_for` (the resolver's own body), and the
compiled getters for the response, reading the planned events directly.

Anything outside the shape (fragments, directives, literals instead of the variable,
fields with arguments, other root fields) is not compiled and takes the normal path, as
does a variable value the strict coercer will not vouch for, so every error a client can
provoke is still produced by graphql-core. tests/api/test_fast_append.py sends the same
requests down both paths and compares the responses byte for byte.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from graphql import (
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    OperationType,
    VariableNode,
    type_from_ast,
)

from server.core.append_plan import PlannedEvent
from server.graphql.compiled import (
    Getter,
    NotCompiled,
    PlanCache,
    Renderer,
    attribute,
    constant,
    event_getters,
    event_objects,
    renderer,
    response_key,
    selected_fields,
    single_operation,
)
from server.graphql.context import DGContext
from server.graphql.errors import UserError, annotate, user_errors
from server.graphql.fast_inputs import Coercer, Refused, coercer_for
from server.graphql.traces.resolvers import append_for
from server.graphql.traces.types import envelope_from_input

FIELD: Final = "appendEvents"
VARIABLE_TYPE: Final = "[EventInput!]!"
MAX_PLANS: Final = 256

_EVENT: Final = event_getters("event.", "AppendedEvent") | {"idempotentReplay": attribute("replay")}
_EVENT_OBJECTS: Final = event_objects("event.")
_ERROR: Final[dict[str, Getter]] = {
    "code": attribute("code"),
    "message": attribute("message"),
    "field": lambda error: None if error.field is None else list(error.field),
    "index": attribute("index"),
    "__typename": constant("UserError"),
}


@dataclass(frozen=True, slots=True)
class AppendPlan:
    """A compiled appendEvents document."""

    variable: str
    coerce: Coercer
    response_key: str
    payload_fields: tuple[tuple[str, str], ...]  # (response key, events|errors|__typename)
    render_event: Renderer | None
    render_error: Renderer | None

    async def run(self, context: DGContext, variables: Mapping[str, Any] | None) -> Any:
        """The ExecutionResult, or None when the variable must take the normal path."""
        if not variables or self.variable not in variables:
            return None
        try:
            values = self.coerce(variables[self.variable])
        except Refused:
            return None
        envelopes = [envelope_from_input(value) for value in values]
        try:
            outcome = await append_for(context, envelopes)
            data = {self.response_key: self._render(outcome.events, user_errors(outcome.errors))}
        except Exception as exc:  # the same masking a resolver failure would get
            error = GraphQLError(str(exc), path=[self.response_key], original_error=exc)
            annotate(error)
            return ExecutionResult(data=None, errors=[error])
        return ExecutionResult(data=data)

    def _render(self, events: list[PlannedEvent], errors: list[UserError]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, field in self.payload_fields:
            if field == "events":
                assert self.render_event is not None
                out[key] = [self.render_event(event) for event in events]
            elif field == "errors":
                assert self.render_error is not None
                out[key] = [self.render_error(error) for error in errors]
            else:
                out[key] = "AppendEventsPayload"
        return out


def compile_plan(schema: GraphQLSchema, query: str, operation_name: str | None) -> AppendPlan:
    """Compile `query` or raise NotCompiled (also for documents that do not validate)."""
    operation, root = single_operation(schema, query, operation_name, OperationType.MUTATION)
    if len(operation.variable_definitions or ()) != 1:
        raise NotCompiled
    definition = (operation.variable_definitions or ())[0]
    variable_type = type_from_ast(schema, definition.type)
    if (
        variable_type is None
        or str(variable_type) != VARIABLE_TYPE
        or definition.default_value is not None
        or definition.directives
    ):
        raise NotCompiled
    coerce = coercer_for(schema, variable_type)  # type: ignore[arg-type]
    if coerce is None:
        raise NotCompiled
    variable = definition.variable.name.value
    if (
        root.name.value != FIELD
        or len(arguments := root.arguments or ()) != 1
        or arguments[0].name.value != "events"
        or not isinstance(arguments[0].value, VariableNode)
        or arguments[0].value.name.value != variable
    ):
        raise NotCompiled
    payload_fields: list[tuple[str, str]] = []
    if len({response_key(node) for node in selected_fields(root.selection_set)}) != len(
        selected_fields(root.selection_set)
    ):
        raise NotCompiled
    render_event = render_error = None
    for node in selected_fields(root.selection_set):
        name = node.name.value
        if name == "events":
            render_event = renderer(node.selection_set, _EVENT, _EVENT_OBJECTS)
        elif name == "errors":
            render_error = renderer(node.selection_set, _ERROR)
        elif name != "__typename":
            raise NotCompiled
        payload_fields.append((response_key(node), name))
    return AppendPlan(
        variable=variable,
        coerce=coerce,
        response_key=response_key(root),
        payload_fields=tuple(payload_fields),
        render_event=render_event,
        render_error=render_error,
    )


def append_plans(schema: GraphQLSchema) -> PlanCache[AppendPlan]:
    return PlanCache(schema, compile_plan, frozenset({FIELD}))
