"""GraphiQL served from this server: the page and its pinned, vendored assets.

Self-hosted installs often run on networks that reach no public CDN, where strawberry's
stock page (React, GraphiQL and the explorer from a CDN) never gets past "Loading...".
The assets live in `graphiql/vendor` with their licences; `graphiql/refresh.sh` updates them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

GRAPHIQL_DIR: Final = Path(__file__).parent / "graphiql"
ASSETS_PATH: Final = "/graphiql"
PAGE: Final = (GRAPHIQL_DIR / "index.html").read_text(encoding="utf-8")


def assets_router() -> Router:
    """GET /graphiql/<file>: the vendored files (versions are pinned, so cache for a day)."""
    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[GRAPHIQL_DIR / "vendor"],
        name="graphiql-assets",
        cache_control=CacheControlHeader(max_age=86_400),
    )
