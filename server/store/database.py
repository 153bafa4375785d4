"""The asyncpg pool and the translation of driver failures into the error tree."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from server.core.errors import DecisionGraphError, invalid_argument, storage


async def create_pool(dsn: str, *, size: int, application_name: str) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=size,
        # JIT compilation only ever costs us: every query is small and index-driven.
        server_settings={"application_name": application_name, "jit": "off"},
        # Pooled connections never keep session state (no LISTEN, no session advisory
        # locks, no SET), so asyncpg's reset query would be a wasted round trip per use.
        reset=_no_reset,
    )
    assert pool is not None
    return pool


async def _no_reset(connection: asyncpg.Connection) -> None:
    return None


def translate(exc: BaseException) -> DecisionGraphError:
    """Driver failures become our errors: text or numbers PostgreSQL cannot hold are the
    caller's mistake (DG_ERR_INVALID_ARGUMENT); the rest is DG_ERR_STORAGE."""
    if isinstance(exc, DecisionGraphError):
        return exc
    if isinstance(exc, asyncpg.CharacterNotInRepertoireError | asyncpg.UntranslatableCharacterError
                  | UnicodeEncodeError):  # fmt: skip
        return invalid_argument("Text cannot contain NUL characters or lone surrogates")
    if isinstance(exc, asyncpg.NumericValueOutOfRangeError | OverflowError):
        return invalid_argument("A number is out of range")
    detail = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return storage(f"Database error: {detail}")


T = TypeVar("T")


def translated(cls: type[T]) -> type[T]:
    """Wrap every public coroutine method so no driver exception crosses the adapter."""
    for name, member in list(vars(cls).items()):
        if name.startswith("_") or not inspect.iscoroutinefunction(member):
            continue
        setattr(cls, name, _translating(member))
    return cls


def _translating(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except DecisionGraphError:
            raise
        except Exception as exc:
            raise translate(exc) from exc

    return wrapper


# Errors that mean "the database is unreachable or restarting": safe to retry.
TRANSIENT = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.InterfaceError,
    ConnectionError,
    OSError,
)


def with_database(dsn: str, name: str) -> str:
    """`dsn` pointing at database `name` on the same server."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


async def admin_sql(dsn: str, sql: str) -> None:
    """Run `sql` on the server's `postgres` database (CREATE / DROP DATABASE)."""
    conn = await asyncpg.connect(with_database(dsn, "postgres"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
