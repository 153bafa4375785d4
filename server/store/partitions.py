"""Names of a scope's projection partitions (migration 7), as SQL dg_projection_partition
spells them: a REBUILD swaps a new table in under the same name, so the name always
denotes the scope's live partition. And literals, for statements without parameters."""

from __future__ import annotations

import hashlib


def sql_literal(text: str) -> str:
    """A string literal (standard_conforming_strings, PostgreSQL's default since 9.1), for
    the statements that take no parameters: DDL, and COPY of a query."""
    return "'" + text.replace("'", "''") + "'"


def partition_name(parent: str, scope: str) -> str:
    return f"{parent}__{hashlib.md5(scope.encode()).hexdigest()[:16]}"
