"""The audit trail of privileged actions (replays, keys, workflow overrides, exports)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import asyncpg

from server.store.database import translated


@translated
class PostgresAudit:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(
        self,
        *,
        tenant_id: str | None,
        key_id: str | None,
        action: str,
        outcome: str,
        target: str | None = None,
        reason: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO dg_audit_log (tenant_id, key_id, action, outcome, target, reason, "
                "detail_json) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                tenant_id,
                key_id,
                action,
                outcome,
                target,
                reason,
                json.dumps(dict(detail or {}), sort_keys=True),
            )

    async def recent(self, tenant_id: str, limit: int = 50) -> list[dict[str, Any]]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT at, key_id, action, outcome, target, reason, detail_json "
                "FROM dg_audit_log WHERE tenant_id = $1 ORDER BY audit_id DESC LIMIT $2",
                tenant_id,
                limit,
            )
        return [dict(row) | {"detail": json.loads(row["detail_json"])} for row in rows]
