"""The one error tree of DecisionGraph, with the stable codes of spec/semantics.md §1.4.

    DecisionGraphError(code, message)
     ├── BatchItemError              (the code of the item's error, plus its index)
     ├── NotFoundError               DG_ERR_NOT_FOUND
     ├── ConflictError               DG_ERR_CONFLICT
     ├── IdempotencyConflictError    DG_ERR_IDEMPOTENCY_CONFLICT
     ├── SchemaViolationError        DG_ERR_SCHEMA_VIOLATION
     │    └── FloatFoundError        (adds path, float_value)
     ├── EventSequenceInvalidError   DG_ERR_EVENT_SEQUENCE_INVALID
     ├── ProjectionOutOfDateError    DG_ERR_PROJECTION_OUT_OF_DATE
     ├── InvalidArgumentError        DG_ERR_INVALID_ARGUMENT
     ├── StorageError                DG_ERR_STORAGE
     ├── PiiPolicyViolationError     DG_ERR_PII_POLICY_VIOLATION
     ├── UnauthorizedError           DG_ERR_UNAUTHORIZED
     ├── ForbiddenError              DG_ERR_FORBIDDEN
     ├── RateLimitedError            DG_ERR_RATE_LIMITED
     └── InternalError               DG_ERR_INTERNAL (our fault; the message says no more)

Adapters translate infrastructure failures (asyncpg, redis) into this tree; nothing else
crosses a layer boundary.
"""

from __future__ import annotations

from typing import ClassVar

NOT_FOUND = "DG_ERR_NOT_FOUND"
CONFLICT = "DG_ERR_CONFLICT"
IDEMPOTENCY_CONFLICT = "DG_ERR_IDEMPOTENCY_CONFLICT"
SCHEMA_VIOLATION = "DG_ERR_SCHEMA_VIOLATION"
EVENT_SEQUENCE_INVALID = "DG_ERR_EVENT_SEQUENCE_INVALID"
PROJECTION_OUT_OF_DATE = "DG_ERR_PROJECTION_OUT_OF_DATE"
INVALID_ARGUMENT = "DG_ERR_INVALID_ARGUMENT"
STORAGE = "DG_ERR_STORAGE"
PII_POLICY_VIOLATION = "DG_ERR_PII_POLICY_VIOLATION"
UNAUTHORIZED = "DG_ERR_UNAUTHORIZED"
FORBIDDEN = "DG_ERR_FORBIDDEN"
RATE_LIMITED = "DG_ERR_RATE_LIMITED"
INTERNAL = "DG_ERR_INTERNAL"


class DecisionGraphError(Exception):
    """Base of every expected failure; `code` is stable, `message` is for humans."""

    default_code: ClassVar[str] = INTERNAL

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"DecisionGraphError({self.code!r}, {self.message!r})"


class BatchItemError(DecisionGraphError):
    """An error of one item in a batch; `index` is the item's position (0-based)."""

    def __init__(self, index: int, error: DecisionGraphError) -> None:
        super().__init__(error.code, error.message)
        self.index = index
        self.error = error


class NotFoundError(DecisionGraphError):
    default_code = NOT_FOUND


class ConflictError(DecisionGraphError):
    default_code = CONFLICT


class IdempotencyConflictError(DecisionGraphError):
    default_code = IDEMPOTENCY_CONFLICT


class SchemaViolationError(DecisionGraphError):
    default_code = SCHEMA_VIOLATION


class FloatFoundError(SchemaViolationError):
    """A float anywhere in a payload; decimals must travel as strings."""

    def __init__(self, path: str, float_value: float) -> None:
        super().__init__(
            SCHEMA_VIOLATION,
            f"Float found at '{path}': {float_value}. Use string representation for decimals.",
        )
        self.path = path
        self.float_value = float_value


class EventSequenceInvalidError(DecisionGraphError):
    default_code = EVENT_SEQUENCE_INVALID


class ProjectionOutOfDateError(DecisionGraphError):
    default_code = PROJECTION_OUT_OF_DATE


class InvalidArgumentError(DecisionGraphError):
    default_code = INVALID_ARGUMENT


class StorageError(DecisionGraphError):
    default_code = STORAGE


class PiiPolicyViolationError(DecisionGraphError):
    default_code = PII_POLICY_VIOLATION


class UnauthorizedError(DecisionGraphError):
    default_code = UNAUTHORIZED


class ForbiddenError(DecisionGraphError):
    default_code = FORBIDDEN


class RateLimitedError(DecisionGraphError):
    default_code = RATE_LIMITED


class InternalError(DecisionGraphError):
    default_code = INTERNAL


def internal(message: str = "Internal server error") -> InternalError:
    return InternalError(INTERNAL, message)


def not_found(message: str) -> NotFoundError:
    return NotFoundError(NOT_FOUND, message)


def conflict(message: str) -> ConflictError:
    return ConflictError(CONFLICT, message)


def idempotency_conflict(message: str) -> IdempotencyConflictError:
    return IdempotencyConflictError(IDEMPOTENCY_CONFLICT, message)


def schema_violation(message: str) -> SchemaViolationError:
    return SchemaViolationError(SCHEMA_VIOLATION, message)


def sequence_invalid(message: str) -> EventSequenceInvalidError:
    return EventSequenceInvalidError(EVENT_SEQUENCE_INVALID, message)


def out_of_date(cursor: int, last_log_seq: int) -> ProjectionOutOfDateError:
    return ProjectionOutOfDateError(
        PROJECTION_OUT_OF_DATE, f"Projections at log_seq={cursor}, events at {last_log_seq}"
    )


def invalid_argument(message: str) -> InvalidArgumentError:
    return InvalidArgumentError(INVALID_ARGUMENT, message)


def storage(message: str) -> StorageError:
    return StorageError(STORAGE, message)


def pii_violation(message: str) -> PiiPolicyViolationError:
    return PiiPolicyViolationError(PII_POLICY_VIOLATION, message)


def unauthorized(message: str) -> UnauthorizedError:
    return UnauthorizedError(UNAUTHORIZED, message)


def forbidden(message: str) -> ForbiddenError:
    return ForbiddenError(FORBIDDEN, message)


def rate_limited(message: str) -> RateLimitedError:
    return RateLimitedError(RATE_LIMITED, message)
