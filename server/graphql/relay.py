"""Relay connection plumbing: `PageInfo` and opaque, typed cursors."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import strawberry

from server.core.errors import invalid_argument


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


def encode_cursor(kind: str, position: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{position}".encode()).decode("ascii")


def decode_cursor(kind: str, cursor: str) -> int:
    """The position inside a cursor of `kind`; anything else is DG_ERR_INVALID_ARGUMENT."""
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii")
        prefix, _, number = text.partition(":")
        if prefix == kind:
            return int(number)
    except (ValueError, binascii.Error, UnicodeError):
        pass
    raise invalid_argument(f"Invalid cursor {cursor!r}")


def encode_keyset(kind: str, *values: object) -> str:
    """An opaque cursor for a multi-column keyset position."""
    raw = json.dumps([kind, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_keyset(kind: str, cursor: str, arity: int) -> list[Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
        if isinstance(values, list) and len(values) == arity + 1 and values[0] == kind:
            return values[1:]
    except (ValueError, binascii.Error, UnicodeError):
        pass
    raise invalid_argument(f"Invalid cursor {cursor!r}")


def page_info(cursors: list[str], has_next: bool, has_previous: bool = False) -> PageInfo:
    return PageInfo(
        has_next_page=has_next,
        has_previous_page=has_previous,
        start_cursor=cursors[0] if cursors else None,
        end_cursor=cursors[-1] if cursors else None,
    )
