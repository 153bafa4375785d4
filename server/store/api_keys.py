"""API keys and tenants in PostgreSQL; only token hashes are stored."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from server.service.ports import KeyRecord
from server.store.database import translate, translated

ALL_TENANTS = "*"


@translated
class PostgresKeyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def find_key(self, token_hash: str) -> KeyRecord | None:
        try:
            async with self._pool.acquire() as conn:
                row = await conn.fetchrow(
                    "SELECT key_id, name, tenants, roles, revoked_at FROM dg_api_keys "
                    "WHERE token_hash = $1",
                    token_hash,
                )
        except Exception as exc:
            raise translate(exc) from exc
        if row is None:
            return None
        return KeyRecord(
            key_id=row["key_id"],
            name=row["name"],
            tenants=tuple(row["tenants"]),
            roles=tuple(row["roles"]),
            revoked=row["revoked_at"] is not None,
        )

    async def create_key(
        self, key_id: str, token_hash: str, name: str, tenants: Sequence[str], roles: Sequence[str]
    ) -> None:
        """Store a key by its token's hash, creating its tenants; the token itself is not kept."""
        async with self._pool.acquire() as conn, conn.transaction():
            for tenant in tenants:
                if tenant != ALL_TENANTS:
                    await conn.execute(
                        "INSERT INTO dg_tenants (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING",
                        tenant,
                    )
            await conn.execute(
                "INSERT INTO dg_api_keys (key_id, name, token_hash, tenants, roles) "
                "VALUES ($1, $2, $3, $4, $5)",
                key_id,
                name,
                token_hash,
                list(tenants),
                list(roles),
            )

    async def list_keys(self) -> list[KeyRecord]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT key_id, name, tenants, roles, revoked_at FROM dg_api_keys "
                "ORDER BY created_at"
            )
        return [
            KeyRecord(
                r["key_id"],
                r["name"],
                tuple(r["tenants"]),
                tuple(r["roles"]),
                r["revoked_at"] is not None,
            )
            for r in rows
        ]

    async def revoke_key(self, key_id: str) -> bool:
        async with self._pool.acquire() as conn:
            status = await conn.execute(
                "UPDATE dg_api_keys SET revoked_at = now() "
                "WHERE key_id = $1 AND revoked_at IS NULL",
                key_id,
            )
        return bool(status.endswith(" 1"))

    async def tenants(self) -> list[str]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch("SELECT tenant_id FROM dg_tenants ORDER BY tenant_id")
        return [row["tenant_id"] for row in rows]
