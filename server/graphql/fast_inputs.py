"""Exact, fast coercion of the ingest variable (`[EventInput!]!`).

graphql-core coerces a variable field by field and then walks it again to bound its
depth; for a 100-event batch that was about a tenth of the server's CPU. At startup this
module compiles a strict coercer from the schema's own definition of the input type
(fields, defaults, nullability). A value it accepts comes out exactly as graphql-core
would produce it; anything else (a float for an Int, a single object for a list, an
unknown field, a null where one is not allowed, ...) is handed to graphql-core untouched,
so every coercion error is still graphql-core's own. tests/unit/test_fast_inputs.py
compares both on generated values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
    OperationDefinitionNode,
    type_from_ast,
)
from graphql.execution.get_variable_signature import get_variable_signature
from graphql.execution.values import VariableValueSource
from graphql.pyutils import Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

FAST_INPUT_TYPES: Final = frozenset({"EventInput"})
_MIN_INT, _MAX_INT = -(2**31), 2**31 - 1


class Refused(Exception):
    """Not a value the fast path vouches for; graphql-core will decide."""


Coercer = Callable[[Any], Any]


def _string(value: Any) -> Any:
    if type(value) is not str:
        raise Refused
    return value


def _int(value: Any) -> Any:
    if type(value) is not int or not _MIN_INT <= value <= _MAX_INT:
        raise Refused
    return value


_SCALARS: Final[dict[str, Coercer]] = {"String": _string, "Int": _int}


def compile_coercer(type_: GraphQLInputType) -> Coercer:
    """A strict coercer for `type_`; raises KeyError for a type it does not support."""
    if isinstance(type_, GraphQLNonNull):
        if isinstance(type_.of_type, GraphQLScalarType) and type_.of_type.name in _SCALARS:
            return _SCALARS[type_.of_type.name]  # refuses None by its exact type check
        inner = compile_coercer(type_.of_type)

        def non_null(value: Any) -> Any:
            if value is None:
                raise Refused
            return inner(value)

        return non_null
    if isinstance(type_, GraphQLList):
        item = compile_coercer(type_.of_type)

        def listed(value: Any) -> Any:
            if value is None:
                return None
            if type(value) is not list:  # graphql-core would wrap a single value
                raise Refused
            return [item(element) for element in value]

        return listed
    if isinstance(type_, GraphQLScalarType):
        # JSON keeps its own parse_value; String and Int accept only the exact Python
        # type, for which graphql-core returns the value unchanged.
        scalar = type_.parse_value if type_.name == "JSON" else _SCALARS[type_.name]
        return lambda value: None if value is None else scalar(value)
    if isinstance(type_, GraphQLInputObjectType):
        return _compile_object(type_)
    raise KeyError(type_)


def _compile_object(type_: GraphQLInputObjectType) -> Coercer:
    fields = []
    for name, field in type_.fields.items():
        if field.out_name not in (None, name):
            raise KeyError(type_)
        required = isinstance(field.type, GraphQLNonNull) and field.default_value is Undefined
        fields.append((name, compile_coercer(field.type), field.default_value, required))
    known = frozenset(type_.fields)
    out_type = type_.out_type

    def coerce_object(value: Any) -> Any:
        if value is None:
            return None
        if type(value) is not dict or not known.issuperset(value):
            raise Refused
        result: dict[str, Any] = {}
        for name, coerce, default, required in fields:
            if name in value:
                result[name] = coerce(value[name])
            elif required:
                raise Refused
            elif default is not Undefined:
                result[name] = default
        return out_type(result)

    return coerce_object


class FastInputExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor, with ingest variables coerced by the fast path."""

    @classmethod
    def build(
        cls,
        schema: GraphQLSchema,
        document: DocumentNode,
        root_value: Any = None,
        context_value: Any = None,
        raw_variable_values: dict[str, Any] | None = None,
        operation_name: str | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> list[GraphQLError] | Any:
        split = _split(schema, document, operation_name, raw_variable_values or {})
        if split is None:
            return super().build(
                schema,
                document,
                root_value,
                context_value,
                raw_variable_values,
                operation_name,
                *args,
                **kwargs,
            )
        rest_document, rest_values, coerced, sources = split
        executor = super().build(
            schema,
            rest_document,
            root_value,
            context_value,
            rest_values,
            operation_name,
            *args,
            **kwargs,
        )
        if isinstance(executor, list):
            return executor
        executor.variable_values.coerced.update(coerced)
        executor.variable_values.sources.update(sources)
        return executor


_cache: dict[tuple[int, str], Coercer | None] = {}


def coercer_for(schema: GraphQLSchema, type_: GraphQLInputType) -> Coercer | None:
    key = (id(schema), str(type_))
    if key not in _cache:
        try:
            _cache[key] = compile_coercer(type_)
        except KeyError:
            _cache[key] = None
    return _cache[key]


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name and o.name.value == name), None)


def _split(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    raw: dict[str, Any],
) -> tuple[DocumentNode, dict[str, Any], dict[str, Any], dict[str, Any]] | None:
    """Separate the fast-path variables from the rest, or None when there are none."""
    operation = _operation(document, operation_name)
    if operation is None or not operation.variable_definitions:
        return None
    coerced: dict[str, Any] = {}
    sources: dict[str, Any] = {}
    for definition in operation.variable_definitions:
        name = definition.variable.name.value
        type_ = type_from_ast(schema, definition.type)
        if name not in raw or type_ is None or not _is_fast(type_):
            continue
        coercer = coercer_for(schema, type_)  # type: ignore[arg-type]
        if coercer is None:
            continue
        try:
            coerced[name] = coercer(raw[name])
        except Refused:
            continue
        signature = get_variable_signature(schema, definition)
        sources[name] = VariableValueSource(signature, raw[name])  # type: ignore[arg-type]
    if not coerced:
        return None
    # AST nodes are immutable (and the parsed document is cached and shared): rebuild.
    rest_operation = _rebuilt(
        operation,
        variable_definitions=tuple(
            d for d in operation.variable_definitions if d.variable.name.value not in coerced
        ),
    )
    rest_document = _rebuilt(
        document,
        definitions=tuple(rest_operation if d is operation else d for d in document.definitions),
    )
    rest_values = {k: v for k, v in raw.items() if k not in coerced}
    return rest_document, rest_values, coerced, sources


def _rebuilt(node: Any, **changes: Any) -> Any:
    fields = {key: getattr(node, key) for key in node.keys if key not in changes}
    return type(node)(**fields, **changes)


def _is_fast(type_: Any) -> bool:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    return getattr(type_, "name", None) in FAST_INPUT_TYPES
