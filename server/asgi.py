"""ASGI entry point for process managers (`uvicorn server.asgi:app --workers N`).

Settings come from the environment; DG_DATABASE_URL and DG_REDIS_URL must be set (the
`decisiongraph` CLI exports them after resolving embedded services).
"""

from __future__ import annotations

import os

from server.app import create_app
from server.settings import Settings

app = create_app(Settings.from_env(os.environ))
