"""Piccolo configuration: the engine used to run migrations and the app registry.

The runtime talks to PostgreSQL through its own asyncpg pool (server/store/database.py);
Piccolo's engine exists for migrations, so `decisiongraph migrate` points it at the
resolved DSN before running them. `piccolo migrations ...` works too when
DG_DATABASE_URL is set.
"""

from __future__ import annotations

import os

from piccolo.conf.apps import AppRegistry
from piccolo.engine.postgres import PostgresEngine

from server.settings import Settings

_settings = Settings.from_env(os.environ)

DB = PostgresEngine(
    config={"dsn": _settings.database_url} if _settings.database_url else {},
    extensions=(),
)

APP_REGISTRY = AppRegistry(apps=["server.store.piccolo_app"])
