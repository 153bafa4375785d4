"""Real processes started the way a user starts them: `decisiongraph serve`, `worker`, `ui`."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from server.embedded import redis_server
from server.settings import Settings
from tests.e2e.browser import browser
from tests.support import ROOT, process_env

__all__ = ["browser"]  # the module-scoped headless Chromium fixture


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer in {timeout}s")


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def stop(self, timeout: float = 15) -> int:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start(name: str, command: list[str], env: dict[str, str], tmp: Path) -> Process:
    log = tmp / f"{name}.log"
    with log.open("wb") as handle:  # the child keeps its own descriptor
        popen = subprocess.Popen(
            [sys.executable, "-m", "server.cli", *command],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    return Process(name, popen, log)


def start_ready(name: str, command: list[str], env: dict[str, str], tmp: Path, url: str) -> Process:
    """Start a process and wait until `url` answers; its output is the error otherwise."""
    process = start(name, command, env, tmp)
    try:
        wait_http(url)
    except TimeoutError:
        process.stop()
        raise AssertionError(process.output()) from None
    return process


@dataclass
class Server:
    url: str
    process: Process


@pytest.fixture(scope="session")
def server(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    env = process_env(settings, DG_HTTP_PORT=str(port))
    url = f"http://127.0.0.1:{port}"
    process = start_ready(
        "server", ["serve"], env, tmp_path_factory.mktemp("server"), f"{url}/healthz"
    )
    yield Server(url, process)
    process.stop()


@pytest.fixture
def start_worker(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Process]]:
    """Start `decisiongraph worker` processes (extra arguments optional); all are stopped
    at the end of the test."""
    started: list[Process] = []

    def launch(*args: str) -> Process:
        env = process_env(settings)
        command = ["worker", *args]
        process = start(f"worker{len(started)}", command, env, tmp_path_factory.mktemp("w"))
        started.append(process)
        return process

    yield launch
    for process in started:
        process.stop()


@pytest.fixture
def worker_process(start_worker: Callable[..., Process]) -> Process:
    return start_worker()


@pytest.fixture(scope="module")
def console(
    server: Server, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`decisiongraph ui` against the module's server; its base URL."""
    port = free_port()
    env = process_env(
        settings,
        DG_API_URL=server.url,
        DG_UI_PORT=str(port),
        DG_DATA_DIR=str(tmp_path_factory.mktemp("console-data")),
    )
    url = f"http://127.0.0.1:{port}"
    process = start_ready(
        "console", ["ui"], env, tmp_path_factory.mktemp("console"), f"{url}/healthz"
    )
    yield url
    process.stop()


@pytest.fixture
def private_redis() -> Iterator[Path]:
    """A Redis of our own, to kill and restart (a short path: its unix socket keeps the
    same name on restart)."""
    directory = Path(tempfile.mkdtemp(prefix="dgr-", dir="/tmp"))
    redis_server.ensure(directory)
    yield directory
    redis_server.stop(directory)
    shutil.rmtree(directory, ignore_errors=True)
