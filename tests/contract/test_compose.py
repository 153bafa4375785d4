"""compose.yml holds together: every part is there, scaled and health-checked, configured by
environment only, and every command and variable it uses is one the product understands.

(No Docker daemon in CI: this checks the file against the code, not a running stack.)
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.cli import build_parser
from tests.support import ROOT

COMPOSE = ROOT / "compose.yml"
KNOWN_VARIABLES = set(
    re.findall(r'"(DG_[A-Z_]+)"', (ROOT / "server" / "settings.py").read_text())
    + re.findall(r'"(DG_[A-Z_]+)"', (ROOT / "ui" / "config.py").read_text())
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_every_part_is_there_and_scaled(compose: dict[str, Any]) -> None:
    services = compose["services"]
    always = {name for name, service in services.items() if "profiles" not in service}
    assert always == {"postgres", "redis", "migrate", "server", "worker", "console", "proxy"}
    # The trace collector is there, but only for `--profile observability`.
    assert services["otel-collector"]["profiles"] == ["observability"]
    assert services["server"]["deploy"]["replicas"] >= 2
    assert services["worker"]["deploy"]["replicas"] >= 2
    # The servers are reached through the proxy, never published one by one.
    assert "ports" not in services["server"]
    assert services["proxy"]["ports"] == ["${DG_HTTP_PUBLISHED:-8000}:8000"]
    caddyfile = compose["configs"]["caddyfile"]["content"]
    assert "dynamic a server 8000" in caddyfile
    assert services["server"]["environment"]["DG_HTTP_PORT"] == "8000"
    assert services["console"]["environment"]["DG_API_URL"] == "http://proxy:8000"


def test_long_running_services_have_health_checks_and_start_in_order(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    for name, service in services.items():
        if name == "migrate":
            assert service["restart"] == "no"  # a one-shot
            continue
        if "profiles" in service:  # the optional collector: a distroless image, no prober
            continue
        assert service["healthcheck"]["test"], name
    for name in ("server", "worker"):
        needs = services[name]["depends_on"]
        assert needs["migrate"] == {"condition": "service_completed_successfully"}
        assert needs["redis"] == {"condition": "service_healthy"}
    assert services["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_postgres_keeps_its_data_in_a_volume(compose: dict[str, Any]) -> None:
    assert compose["services"]["postgres"]["volumes"] == ["pgdata:/var/lib/postgresql/data"]
    assert "pgdata" in compose["volumes"]
    assert "--locale=C" in compose["services"]["postgres"]["environment"]["POSTGRES_INITDB_ARGS"]


def test_configuration_is_by_environment_only(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text()
    assert "env_file" not in text
    for name, service in compose["services"].items():
        mounts = [v for v in service.get("volumes", []) if v.split(":")[0].startswith((".", "/"))]
        assert mounts == [], f"{name} bind-mounts configuration"
        for key, value in service.get("environment", {}).items():
            if key.startswith("DG_"):
                assert key in KNOWN_VARIABLES, f"{name}: {key} is read by nothing"
            if "PASSWORD" in key or "SECRET" in key:
                assert str(value).startswith("${") and ":?" in str(value), f"{key} is hard-coded"
    # Secrets are required from the operator, never defaulted.
    assert "${POSTGRES_PASSWORD:?" in text and "${DG_UI_SECRET:?" in text
    # The console is a client of the API: no database or Redis credentials.
    console = compose["services"]["console"]["environment"]
    assert "DG_DATABASE_URL" not in console and "DG_REDIS_URL" not in console


def test_commands_are_commands_of_the_product(compose: dict[str, Any]) -> None:
    parser = build_parser()
    commands = []
    for service in compose["services"].values():
        if service.get("image", "").startswith("decisiongraph"):
            commands.append(service["command"])
            check = service.get("healthcheck", {}).get("test", [])
            if "decisiongraph" in check:
                commands.append(check[check.index("decisiongraph") :])
    assert len(commands) == 5  # migrate, serve, worker, its health check, ui
    for command in commands:
        assert command[0] == "decisiongraph"
        parser.parse_args(command[1:])  # exits (fails the test) on an unknown command
    header = [line for line in COMPOSE.read_text().splitlines() if "compose run" in line]
    (bootstrap,) = header
    words = shlex.split(bootstrap.lstrip("# "))
    parser.parse_args(words[words.index("decisiongraph") + 1 :])


def test_the_image_contains_every_package(compose: dict[str, Any]) -> None:
    dockerfile = compose["services"]["server"]["build"]["dockerfile_inline"]
    copied = re.findall(r"^COPY (\S+) ", dockerfile, flags=re.MULTILINE)
    copied += re.findall(r"^COPY \S+ (\S+) \./", dockerfile, flags=re.MULTILINE)
    for source in copied:
        assert (ROOT / source).exists(), source
    pyproject = (ROOT / "pyproject.toml").read_text()
    include = re.search(r"include = \[(.*?)\]", pyproject)
    assert include is not None
    packages = {p.strip(' "*') for p in include.group(1).split(",")}
    assert packages <= set(copied), packages - set(copied)
    assert all(Path(ROOT / p).is_dir() for p in packages)
