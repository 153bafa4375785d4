"""Shared pieces of the compiled operation paths (traces/fast_append.py, live/fast_stream.py).

A compiled path turns a validated document's selection set into getters once, then
renders each result object with plain attribute reads, in the order graphql-core would
write it. Only selections whose fields are plain attribute reads in the schema's own
resolvers compile; anything else (fragments, directives, arguments on fields, repeated
response keys) raises NotCompiled and the document takes the generic executor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import Any, Final, Generic, TypeVar

from graphql import (
    FieldNode,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    parse,
    validate,
)
from graphql.error import GraphQLSyntaxError

MAX_PLANS: Final = 256
Getter = Callable[[Any], Any]
Renderer = Callable[[Any], dict[str, Any]]


class NotCompiled(Exception):
    """The document is outside the compiled shape."""


def attribute(name: str) -> Getter:
    return attrgetter(name)  # C speed; dotted names walk into nested values


def constant(value: str) -> Getter:
    return lambda _: value


def listed(name: str) -> Getter:
    get = attrgetter(name)
    return lambda value: list(get(value))


SOURCE: Final[dict[str, Getter]] = {
    "producerId": attribute("producer_id"),
    "system": attribute("system"),
    "subsystem": attribute("subsystem"),
    "__typename": constant("Source"),
}
ACTOR: Final[dict[str, Getter]] = {
    "actorType": attribute("actor_type"),
    "actorId": attribute("actor_id"),
    "__typename": constant("Actor"),
}


def event_getters(prefix: str, typename: str) -> dict[str, Getter]:
    """The scalar fields of `Event`, read from `<prefix>` a StoredEvent."""
    return {
        "logSeq": attribute(prefix + "log_seq"),
        "eventId": attribute(prefix + "event_id"),
        "traceId": attribute(prefix + "trace_id"),
        "traceSeq": attribute(prefix + "trace_seq"),
        "eventType": attribute(prefix + "event_type"),
        "occurredAt": attribute(prefix + "occurred_at"),
        "recordedAt": attribute(prefix + "recorded_at"),
        "idempotencyKey": attribute(prefix + "idempotency_key"),
        "payload": attribute(prefix + "payload"),
        "payloadHash": attribute(prefix + "payload_hash"),
        "correlationId": attribute(prefix + "correlation_id"),
        "causationEventId": attribute(prefix + "causation_event_id"),
        "schemaVersion": attribute(prefix + "schema_version"),
        "tags": listed(prefix + "tags"),
        "__typename": constant(typename),
    }


def event_objects(prefix: str) -> dict[str, tuple[str, dict[str, Getter]]]:
    return {"source": (prefix + "source", SOURCE), "actor": (prefix + "actor", ACTOR)}


def single_operation(
    schema: GraphQLSchema, query: str, operation_name: str | None, kind: OperationType
) -> tuple[OperationDefinitionNode, FieldNode]:
    """The document's only operation and its only root field, or NotCompiled (also when
    the document does not validate: the generic path reports why)."""
    try:
        document = parse(query, no_location=True)
    except GraphQLSyntaxError:
        raise NotCompiled from None
    if len(document.definitions) != 1:
        raise NotCompiled
    operation = document.definitions[0]
    if (
        not isinstance(operation, OperationDefinitionNode)
        or operation.operation is not kind
        or operation.directives
        or any(d.directives for d in operation.variable_definitions or ())
        or (
            operation_name is not None
            and (operation.name is None or operation.name.value != operation_name)
        )
        or len(operation.selection_set.selections) != 1
    ):
        raise NotCompiled
    root = operation.selection_set.selections[0]
    if not isinstance(root, FieldNode) or root.directives or validate(schema, document):
        raise NotCompiled
    return operation, root


P = TypeVar("P")


class PlanCache(Generic[P]):
    """Compiled plans by (query, operation name); None remembers "not compilable"."""

    def __init__(
        self,
        schema: GraphQLSchema,
        compile_plan: Callable[[GraphQLSchema, str, str | None], P],
        fields: frozenset[str],
        size: int = MAX_PLANS,
    ) -> None:
        self.schema = schema
        self._compile = compile_plan
        self._fields = fields
        self._size = size
        self._plans: dict[tuple[str, str | None], P | None] = {}

    def get(self, query: str | None, operation_name: str | None) -> P | None:
        if not query or not any(name in query for name in self._fields):
            return None
        key = (query, operation_name)
        if key not in self._plans:
            if len(self._plans) >= self._size:
                self._plans.clear()  # documents are few; a full cache means churn
            try:
                self._plans[key] = self._compile(self.schema, query, operation_name)
            except NotCompiled:
                self._plans[key] = None
        return self._plans[key]


def selected_fields(selection_set: SelectionSetNode | None) -> list[FieldNode]:
    if selection_set is None:
        raise NotCompiled
    fields = []
    for selection in selection_set.selections:
        if not isinstance(selection, FieldNode) or selection.directives or selection.arguments:
            raise NotCompiled  # fragments, @skip/@include, arguments
        fields.append(selection)
    return fields


def response_key(node: FieldNode) -> str:
    return node.alias.value if node.alias else node.name.value


def renderer(
    selection_set: SelectionSetNode | None,
    getters: Mapping[str, Getter],
    objects: Mapping[str, tuple[str, Mapping[str, Getter]]] | None = None,
) -> Renderer:
    """A function writing one result object in the order graphql-core would."""
    columns: list[tuple[str, Getter]] = []
    for node in selected_fields(selection_set):
        name = node.name.value
        if name in getters:
            if node.selection_set is not None:
                raise NotCompiled
            columns.append((response_key(node), getters[name]))
        elif objects is not None and name in objects:
            path, nested = objects[name]
            columns.append(
                (response_key(node), _nested(path, renderer(node.selection_set, nested)))
            )
        else:
            raise NotCompiled
    keys = [key for key, _ in columns]
    if len(set(keys)) != len(keys):
        raise NotCompiled  # graphql-core merges repeated keys (and their sub-selections)
    compiled = tuple(columns)

    def render(value: Any) -> dict[str, Any]:
        return {key: get(value) for key, get in compiled}

    return render


def _nested(path: str, render: Renderer) -> Getter:
    get = attrgetter(path)
    return lambda value: render(get(value))
