"""The console's settings, from the same DG_* environment as every other process.

The console imports nothing from `server` (it is a client like any other), so it reads the
few variables it needs itself.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    api_url: str
    host: str
    port: int
    storage_secret: str
    title: str = "DecisionGraph"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ConsoleConfig:
        host = environ.get("DG_HOST") or "127.0.0.1"
        api = environ.get("DG_API_URL") or f"http://{host}:{environ.get('DG_HTTP_PORT', '8000')}"
        return cls(
            api_url=api.rstrip("/"),
            host=host,
            port=int(environ.get("DG_UI_PORT") or 8080),
            storage_secret=environ.get("DG_UI_SECRET") or _saved_secret(environ),
        )


def _saved_secret(environ: Mapping[str, str]) -> str:
    """A signing secret for browser sessions, kept in DG_DATA_DIR so restarts keep them."""
    directory = Path(environ.get("DG_DATA_DIR") or ".dg")
    path = directory / "ui-secret"
    try:
        return path.read_text().strip()
    except OSError:
        secret = secrets.token_urlsafe(32)
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(secret)
        path.chmod(0o600)
        return secret
