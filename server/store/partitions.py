"""Names of a scope's projection partitions (migration 7), as SQL dg_projection_partition
spells them: a REBUILD swaps a new table in under the same name, so the name always
denotes the scope's live partition."""

from __future__ import annotations

import hashlib


def partition_name(parent: str, scope: str) -> str:
    return f"{parent}__{hashlib.md5(scope.encode()).hexdigest()[:16]}"
