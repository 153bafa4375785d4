"""The platform's start-up steps, shared by the CLI and `up`'s supervisor: resolve the
services (embedded unless configured), migrate, and create API keys."""

from __future__ import annotations

import asyncio
import os

from server import embedded
from server.settings import Settings


def resolve_services(settings: Settings) -> Settings:
    """Settings with running database and Redis, exported for child processes too."""
    resolved = embedded.resolve(settings)
    os.environ["DG_DATABASE_URL"] = resolved.require_database_url
    os.environ["DG_REDIS_URL"] = resolved.require_redis_url
    return resolved


def migrate_database(settings: Settings) -> None:
    from server.store.migrate import migrate

    asyncio.run(migrate(settings.require_database_url))


async def create_key(
    settings: Settings, name: str | None, tenants: list[str], roles: list[str]
) -> str:
    """Store a new key and return its token (shown once; only its hash is kept)."""
    from server.auth.principal import ALL_TENANTS, check_tenant_id
    from server.auth.tokens import new_token
    from server.store.api_keys import PostgresKeyStore
    from server.store.database import create_pool

    for tenant in tenants:
        if tenant != ALL_TENANTS:
            check_tenant_id(tenant)
    token = new_token()
    pool = await create_pool(settings.require_database_url, size=1, application_name="dg-cli")
    try:
        label = name or f"{'+'.join(roles)}@{'+'.join(tenants)}"
        await PostgresKeyStore(pool).create_key(
            token.key_id, token.token_hash, label, sorted(set(tenants)), sorted(set(roles))
        )
    finally:
        await pool.close()
    return token.token
