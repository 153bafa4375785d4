"""`decisiongraph up`: services, migrations, demo, then server, worker and console as children.

Children run in their own sessions so a terminal Ctrl-C reaches only this supervisor,
which then stops them in order (console, worker, server) and the embedded services.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from server import embedded
from server.settings import Settings
from server.startup import create_key, migrate_database, resolve_services

_log = logging.getLogger("decisiongraph.up")

ADMIN_TOKEN_FILE = "admin-token"


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


def _spawn(name: str, command: str) -> Child:
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", command],
        env=os.environ.copy(),
        start_new_session=True,
    )
    return Child(name, process)


def _wait_http(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


async def _admin_token(settings: Settings) -> str:
    """Reuse the admin key saved in the data dir while it still works, else make one."""
    from server.auth.tokens import hash_token
    from server.store.api_keys import PostgresKeyStore
    from server.store.database import create_pool

    path = settings.data_dir / ADMIN_TOKEN_FILE
    if path.exists():
        token = path.read_text().strip()
        pool = await create_pool(settings.require_database_url, size=1, application_name="dg-up")
        try:
            record = await PostgresKeyStore(pool).find_key(hash_token(token))
        finally:
            await pool.close()
        if record is not None and not record.revoked and "admin" in record.roles:
            return token
    token = await create_key(settings, "up admin", ["*"], ["admin"])
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token


def _stop_children(children: list[Child]) -> None:
    for child in reversed(children):
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for child in reversed(children):
        remaining = max(0.1, deadline - time.monotonic())
        try:
            child.process.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            _log.warning("%s did not stop in time; killing it", child.name)
            child.process.kill()
            child.process.wait()


def run_platform(settings: Settings, *, with_ui: bool, with_demo: bool) -> int:
    # Only what `up` had to embed is stopped when it exits; external services stay up.
    embedded_postgres = settings.database_url is None
    embedded_redis = settings.redis_url is None
    settings = resolve_services(settings)
    migrate_database(settings)
    token = asyncio.run(_admin_token(settings))
    demo_links: list[str] = []
    if with_demo:
        demo_links = _seed_demo(settings)

    stopping = False

    def _on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)

    children = [_spawn("server", "serve"), _spawn("worker", "worker")]
    base = f"http://{settings.host}:{settings.http_port}"
    if not _wait_http(f"{base}/healthz", timeout=60):
        _log.error("the server did not become healthy; stopping")
        stopping = True
    with_ui = with_ui and _console_available()
    if with_ui and not stopping:
        children.append(_spawn("console", "ui"))
        _wait_http(f"http://{settings.host}:{settings.ui_port}/healthz", timeout=60)

    if not stopping:
        _announce(settings, token, with_ui, demo_links)
    code = 0
    try:
        while not stopping:
            for child in children:
                if child.process.poll() is not None:
                    _log.error(
                        "%s exited with code %s; stopping", child.name, child.process.returncode
                    )
                    stopping = True
                    code = 1
            time.sleep(0.2)
    finally:
        _log.info("stopping console, worker and server")
        _stop_children(children)
        stopped = embedded.stop(settings, redis=embedded_redis, postgres_=embedded_postgres)
        if stopped:
            _log.info("stopped embedded %s", " and ".join(stopped))
    return code


def _console_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("ui.app") is not None


def _seed_demo(settings: Settings) -> list[str]:
    from server.demo.seed import seed_release_demo

    report = asyncio.run(seed_release_demo(settings, tenant_id="release-demo"))
    paths: dict[str, str] = report["console_paths"]
    return list(paths.values())


def _announce(settings: Settings, token: str, with_ui: bool, demo_links: list[str]) -> None:
    base = f"http://{settings.host}:{settings.http_port}"
    console = f"http://{settings.host}:{settings.ui_port}"
    lines = [
        "",
        "DecisionGraph is up.",
        f"  GraphQL API and GraphiQL : {base}/graphql",
        f"  Health                   : {base}/healthz  {base}/readyz",
    ]
    if with_ui:
        lines.append(f"  Operator console         : {console}/")
    lines.append(f"  Admin API key            : {token}")
    lines.append(f"  (saved in {Path(settings.data_dir) / ADMIN_TOKEN_FILE})")
    if demo_links and with_ui:
        lines.append("  Release demo             :")
        lines += [f"    {console}{link}" for link in demo_links]
    lines += ["Press Ctrl-C to stop.", ""]
    print("\n".join(lines), flush=True)
