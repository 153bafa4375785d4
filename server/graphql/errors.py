"""The one place errors become GraphQL: payload `UserError`s and `extensions.code`.

Every error a query reports carries `extensions.code` (a stable DG_ERR_* code) and
`extensions.classification`: `BAD_REQUEST` when the caller can fix it, `ValidationError`
for documents that do not validate, `INTERNAL_SERVER_ERROR` for our own failures, whose
message is masked and whose traceback is logged.
"""

from __future__ import annotations

import logging
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.types import ExecutionContext

from server.core.errors import INTERNAL, INVALID_ARGUMENT, DecisionGraphError

_log = logging.getLogger("server.graphql")


@strawberry.type(description="Why a mutation (or one item of a batch) was refused.")
class UserError:
    code: str
    message: str
    field: list[str] | None = None
    index: int | None = strawberry.field(
        default=None, description="Position of the failing item in a batch (0-based)."
    )


def user_error(error: DecisionGraphError, field: list[str] | None = None) -> UserError:
    return UserError(
        code=error.code, message=error.message, field=field, index=getattr(error, "index", None)
    )


def user_errors(errors: list[DecisionGraphError]) -> list[UserError]:
    return [user_error(error) for error in errors]


def annotate(error: GraphQLError) -> None:
    """Give a GraphQL error its stable code; mask the message of unexpected failures."""
    original = error.original_error
    extensions: dict[str, Any] = dict(error.extensions or {})
    if isinstance(original, DecisionGraphError):
        ours = original.code == INTERNAL
        classification = "INTERNAL_SERVER_ERROR" if ours else "BAD_REQUEST"
        extensions.update(code=original.code, classification=classification)
        if getattr(original, "index", None) is not None:
            extensions["index"] = original.index  # type: ignore[attr-defined]
        error.message = original.message
    elif original is None or error.path is None:
        # Parse, validation and variable-coercion errors: the document is at fault.
        extensions.setdefault("code", INVALID_ARGUMENT)
        extensions.setdefault("classification", "ValidationError")
    else:
        _log.error("unexpected error", exc_info=original)
        error.message = "Internal server error"
        extensions.update(code=INTERNAL, classification="INTERNAL_SERVER_ERROR")
    error.extensions = extensions


def process_errors(errors: list[GraphQLError], context: ExecutionContext | None) -> None:
    for error in errors:
        annotate(error)
