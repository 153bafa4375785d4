"""Capture every console screen for docs/console.md (`make screenshots`).

Starts its own server, worker and console on free ports against the configured (or
embedded) services, seeds the release demo, and drives headless Chromium through each
screen. Everything goes through the `decisiongraph` command and the public API.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "console"
TENANT = "release-demo"
LIVE = "trace-live-renewal-002"
LIVE_WORKFLOW = f"{LIVE}:exception:ex-live-renewal-002"
SCREENS = [
    ("signin", "/signin", "Sign-in"),
    ("overview", f"/?tenant={TENANT}&view=overview", "Projection health"),
    ("traces", f"/?tenant={TENANT}&view=traces&trace_id={LIVE}", "Timeline"),
    ("graph", f"/?tenant={TENANT}&view=graph&trace_id={LIVE}", "nodes"),
    ("precedents", f"/?tenant={TENANT}&view=precedents&trace_id={LIVE}"
     "&compare=trace-precedent-renewal-001", "trace-precedent-renewal-001"),
    ("inbox", f"/?tenant={TENANT}&trace_id={LIVE}&workflow_id={LIVE_WORKFLOW}", "Decide"),
    ("replays", f"/?tenant={TENANT}&view=replays", "Runs"),
    ("simulation", f"/?tenant={TENANT}&view=simulation", "flipped"),
    ("stream", f"/?tenant={TENANT}&view=stream", "seq 22"),
    ("status", f"/?tenant={TENANT}&view=status", "Environment"),
]  # fmt: skip


# docs/demo.md steps 5-7: after the approver decides and the agent commits.
DEMO_OUT = ROOT / "docs" / "demo"
WALKTHROUGH = [
    ("5-review", f"/?tenant={TENANT}&trace_id={LIVE}&workflow_id={LIVE_WORKFLOW}", "approved"),
    ("6-commit", f"/?tenant={TENANT}&view=traces&trace_id={LIVE}", "ActionCommitted"),
    ("7-replay", f"/?tenant={TENANT}&view=replays", "match"),
]


async def _simulate(api: str, token: str) -> None:
    """A policy simulation run for the Policy simulation screen: a cap at 30% instead."""
    from decisiongraph.sdk import DecisionGraphClient

    async with DecisionGraphClient(api, token, TENANT) as dg:
        await dg.execute(
            """mutation { simulatePolicy(policyId: "discount-cap", reason: "docs screenshot",
               rules: [{fact: "requested_discount_pct", op: GT, value: 30}]) {
               errors { code } } }"""
        )


async def _decide_commit_verify(api: str, token: str) -> None:
    """The second half of the flagship scenario, through the SDK, as docs/demo.md shows it."""
    from decisiongraph.sdk import Actor, Change, DecisionGraphClient, Entity, Source, evidence

    async with DecisionGraphClient(api, token, TENANT) as dg:
        trace = await dg.trace(LIVE)
        if trace is None or trace.finished:
            return  # already played on this database
        await dg.review(
            LIVE_WORKFLOW, "approve",
            "Precedent trace-precedent-renewal-001 approved a similar exception; margin holds",
            evidence=evidence("trace://trace-precedent-renewal-001"),
            request_id="docs-walkthrough",
        )  # fmt: skip
        agent = await dg.resume_trace(
            LIVE, Source("release-demo", "decisiongraph", "agent"), Actor.agent("revenue-agent")
        )
        proposed = agent.action_proposed(
            "action:live:002", "update",
            Entity("opportunity", "oppty-acme-renewal-2026-002", "crm"), "crm",
            [Change("discount_pct", 21, old_value=12)],
        )  # fmt: skip
        stored = await dg.append([
            proposed,
            agent.action_committed("action:live:002", "success",
                                   external_reference="crm-sync-2002",
                                   causation_event_id=proposed.event_id),
            agent.finished("success", summary="Acme renewal approved at 21% with precedent"),
        ])  # fmt: skip
        await dg.projection_health(at_least=stored[-1].log_seq)
        replay = await dg.request_replay("ALL", "VERIFY", "docs walkthrough: prove the rebuild")
        await dg.wait_replay(replay.replay_id)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _cli(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        env=env, cwd=ROOT, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return done.stdout.strip()


def _wait(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(url)


@contextmanager
def _platform() -> Iterator[tuple[str, str, str]]:
    api, console = _free_port(), _free_port()
    env = os.environ.copy() | {"DG_HTTP_PORT": str(api), "DG_UI_PORT": str(console)}
    env["DG_API_URL"] = f"http://127.0.0.1:{api}"
    _cli("migrate", env=env)
    _cli("demo", "seed", "--tenant", TENANT, env=env)
    token = _cli("keys", "create", "--tenant", "*", "--role", "admin", "--name", "docs", env=env)
    children = [
        subprocess.Popen([sys.executable, "-m", "server.cli", command], env=env, cwd=ROOT)
        for command in ("serve", "worker", "ui")
    ]
    try:
        _wait(f"http://127.0.0.1:{api}/healthz")
        _wait(f"http://127.0.0.1:{console}/healthz")
        time.sleep(3)  # the worker projects the demo and fires its SLA timers
        yield f"http://127.0.0.1:{console}", f"http://127.0.0.1:{api}", token
    finally:
        for child in reversed(children):
            child.terminate()
            child.wait(timeout=20)


def main() -> int:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    OUT.mkdir(parents=True, exist_ok=True)
    DEMO_OUT.mkdir(parents=True, exist_ok=True)
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1480,960"):  # fmt: skip
        options.add_argument(flag)
    with _platform() as (console, api, token):
        browser = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
        try:
            browser.get(f"{console}/signin")
            field = WebDriverWait(browser, 20).until(
                lambda d: d.find_element(By.XPATH, "//input[@type='password']")
            )
            browser.save_screenshot(str(OUT / "signin.png"))
            field.send_keys(token)
            browser.find_element(By.XPATH, "//button[contains(., 'Sign in')]").click()
            time.sleep(2)

            def capture(name: str, path: str, marker: str, folder: Path) -> None:
                browser.get(console + path)

                def shown(driver: Any) -> bool:
                    return marker.lower() in driver.find_element(By.TAG_NAME, "body").text.lower()

                try:
                    WebDriverWait(browser, 20).until(shown)
                except TimeoutException:
                    print(f"{name}: {marker!r} never appeared; captured as it is")
                time.sleep(1.5)  # charts settle
                browser.save_screenshot(str(folder / f"{name}.png"))
                print(f"captured {name}")

            asyncio.run(_simulate(api, token))
            for name, path, marker in SCREENS[1:]:
                capture(name, path, marker, OUT)
            asyncio.run(_decide_commit_verify(api, token))
            for name, path, marker in WALKTHROUGH:
                capture(name, path, marker, DEMO_OUT)
        finally:
            browser.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
