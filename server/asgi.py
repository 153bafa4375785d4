"""ASGI entry point for process managers (`uvicorn server.asgi:app --workers N`).

Settings come from the environment; DG_DATABASE_URL and DG_REDIS_URL must be set (the
`decisiongraph` CLI exports them after resolving embedded services).
"""

from __future__ import annotations

import os

from server.app import create_app
from server.observability import logs
from server.settings import Settings

settings = Settings.from_env(os.environ)
logs.setup(settings.log_level)  # a server process uvicorn spawned: configure its own logs
app = create_app(settings)
