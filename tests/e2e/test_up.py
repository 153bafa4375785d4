"""`decisiongraph up` (what `make up` runs) as a newcomer meets it: on an empty database it
migrates, seeds the release demo, prints working links and a working admin key, and the
first deep link opens the escalated exception review with its precedent beside it."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from server.settings import Settings
from server.store.database import admin_sql, with_database
from tests.e2e.browser import sign_in, text_xpath, wait_for
from tests.e2e.conftest import free_port
from tests.support import ROOT, new_tenant, process_env

pytestmark = pytest.mark.e2e


class Up:
    def __init__(self, popen: subprocess.Popen[str], banner: str) -> None:
        self.popen = popen
        self.banner = banner

    def field(self, label: str) -> str:
        found = re.search(rf"{label}\s*:\s*(\S+)", self.banner)
        assert found, f"no {label!r} in:\n{self.banner}"
        return found.group(1)

    @property
    def deep_links(self) -> list[str]:
        return re.findall(r"^\s+(http://\S+\?tenant=release-demo\S+)$", self.banner, re.M)


@pytest.fixture(scope="module")
def up(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    """`decisiongraph up` against a database of its own (nothing seeded before it)."""
    name = f"dg_up_{new_tenant()[2:10]}"
    asyncio.run(admin_sql(settings.require_database_url, f"CREATE DATABASE {name}"))
    env = process_env(
        settings,
        DG_DATABASE_URL=with_database(settings.require_database_url, name),
        DG_NAMESPACE=f"up{new_tenant()[2:8]}",
        DG_DATA_DIR=str(tmp_path_factory.mktemp("up-data")),
        DG_HTTP_PORT=str(free_port()),
        DG_UI_PORT=str(free_port()),
        DG_LOG_LEVEL="info",
    )
    popen = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "up"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert popen.stdout is not None
    # Read its output on a thread: the platform must never block on a full pipe, and a
    # hung start must fail the test at the deadline instead of hanging it.
    lines: list[str] = []
    drain = threading.Thread(target=lines.extend, args=(popen.stdout,), daemon=True)
    drain.start()
    deadline = time.monotonic() + 120  # the bound: links usable within two minutes
    try:
        while not any(line.startswith("Press Ctrl-C") for line in lines):
            assert time.monotonic() < deadline and popen.poll() is None, "".join(lines)[-4000:]
            time.sleep(0.1)
        banner = "".join(lines)
        assert "DecisionGraph is up." in banner, banner[-4000:]
        yield Up(popen, banner)
        popen.send_signal(signal.SIGINT)
        assert popen.wait(timeout=30) == 0, "".join(lines)[-4000:]
    finally:
        if popen.poll() is None:
            popen.kill()
            popen.wait()
        drain.join(timeout=10)
        popen.stdout.close()
        asyncio.run(
            admin_sql(settings.require_database_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        )


def test_the_printed_admin_key_and_graphiql_work(up: Up) -> None:
    api = up.field("GraphQL API and GraphiQL")
    token = up.field("Admin API key")
    page = httpx.get(api, headers={"Accept": "text/html"}, timeout=10)
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    saved = Path(re.search(r"saved in (\S+)\)", up.banner).group(1))  # type: ignore[union-attr]
    assert saved.read_text().strip() == token
    answer = httpx.post(
        api,
        json={"query": "{ projectionHealth { lastLogSeq } workflows { totalCount } }"},
        headers={"Authorization": f"Bearer {token}", "X-Tenant-ID": "release-demo"},
        timeout=10,
    ).json()
    assert answer["data"] == {
        "projectionHealth": {"lastLogSeq": 22},
        "workflows": {"totalCount": 4},
    }


def test_the_deep_link_shows_the_escalated_review_with_its_precedent(
    up: Up, browser: WebDriver
) -> None:
    live, incident = up.deep_links
    assert "trace_id=trace-live-renewal-002" in live and "trace-incident-review-003" in incident
    console = up.field("Operator console").rstrip("/")
    with urllib.request.urlopen(f"{console}/healthz", timeout=10) as health:
        assert health.status == 200
    sign_in(browser, console, up.field("Admin API key"))
    wait_for(browser, text_xpath("Projection health"))
    browser.get(live)
    wait_for(browser, text_xpath("Live renewal exception review for Acme Platform"))
    wait_for(browser, "//*[contains(@class,'dg-chip') and normalize-space(.)='escalated']")
    precedent = wait_for(browser, text_xpath("trace-precedent-renewal-001"))
    card = precedent.find_element("xpath", "ancestor::*[contains(., 'Precedent context')][1]")
    assert "approved" in card.text.lower() or "success" in card.text.lower(), card.text
