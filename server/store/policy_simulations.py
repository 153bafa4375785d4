"""Policy simulation runs in PostgreSQL (migration 9)."""

from __future__ import annotations

import uuid
from typing import Any, Final

import asyncpg

from server.core.policy_simulation import SimulationRecord
from server.store.database import translated

_COLUMNS: Final = """simulation_id, tenant_id, policy_id, request_json, status, requested_by,
    requested_at, started_at, finished_at, total, processed, result_json, error_code,
    error_message"""


def _record(row: asyncpg.Record) -> SimulationRecord:
    return SimulationRecord(*row)


@translated
class PostgresSimulations:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(
        self, tenant_id: str, policy_id: str, request_json: str, requested_by: str, total: int
    ) -> SimulationRecord:
        simulation_id = f"sim-{uuid.uuid4().hex}"
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                f"""INSERT INTO dg_policy_simulations (simulation_id, tenant_id, policy_id,
                        request_json, status, requested_by, total)
                    VALUES ($1, $2, $3, $4, 'QUEUED', $5, $6) RETURNING {_COLUMNS}""",
                simulation_id, tenant_id, policy_id, request_json, requested_by, total,
            )  # fmt: skip
        return _record(row)

    async def get(
        self, simulation_id: str, tenant_id: str | None = None
    ) -> SimulationRecord | None:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM dg_policy_simulations WHERE simulation_id = $1 "
                "AND ($2::text IS NULL OR tenant_id = $2)",
                simulation_id,
                tenant_id,
            )
        return _record(row) if row else None

    async def recent(self, tenant_id: str, limit: int) -> list[SimulationRecord]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM dg_policy_simulations WHERE tenant_id = $1 "
                "ORDER BY requested_at DESC, simulation_id LIMIT $2",
                tenant_id,
                limit,
            )
        return [_record(r) for r in rows]

    async def update(self, simulation_id: str, **fields: Any) -> SimulationRecord:
        """Set columns; `status` RUNNING stamps started_at, COMPLETED/FAILED finished_at."""
        names = sorted(fields)
        sets = [f"{name} = ${i + 2}" for i, name in enumerate(names)]
        status = fields.get("status")
        if status == "RUNNING":
            sets.append("started_at = coalesce(started_at, now())")
        elif status in ("COMPLETED", "FAILED"):
            sets.append("finished_at = now()")
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                f"UPDATE dg_policy_simulations SET {', '.join(sets)} WHERE simulation_id = $1 "
                f"RETURNING {_COLUMNS}",
                simulation_id,
                *(fields[n] for n in names),
            )
        return _record(row)
