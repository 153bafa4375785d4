"""GraphiQL and the console on a machine that reaches no public host: headless Chromium
resolves nothing but this machine, runs a query and a subscription from GraphiQL with a key
typed into its header editor, and no page asks for anything that is not local."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from decisiongraph.sdk import DecisionGraphClient
from server.settings import Settings
from server.startup import create_key
from tests.e2e.browser import launch, sign_in, text_xpath, wait_for
from tests.e2e.conftest import Server
from tests.support import input_observed, new_tenant, started, to_input

pytestmark = pytest.mark.e2e

LOCAL_HOSTS = {"127.0.0.1", "localhost"}
SHOTS = Path(__file__).resolve().parents[2] / "screenshots"
INLINE_SCHEMES = {"data", "blob", "about", "chrome", "devtools"}


@pytest.fixture(scope="module")
def offline() -> Iterator[WebDriver]:
    """Chromium that can resolve no host but this one, and records every request."""
    only_local = "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1"
    driver = launch(only_local, record_requests=True)
    try:
        yield driver
    finally:
        driver.quit()


def requested(browser: WebDriver) -> set[str]:
    """URLs the browser asked for (pages, assets, fetches, websockets) since the last call."""
    urls = set()
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.add(message["params"]["request"]["url"])
        elif message["method"] == "Network.webSocketCreated":
            urls.add(message["params"]["url"])
    return urls


def non_local(urls: set[str]) -> set[str]:
    return {
        url
        for url in urls
        if urlparse(url).scheme not in INLINE_SCHEMES and urlparse(url).hostname not in LOCAL_HOSTS
    }


def editor(browser: WebDriver, index: int, text: str) -> None:
    """Type into GraphiQL's n-th editor (0: query, 1: variables, 2: headers) as a user
    pasting would: through the CodeMirror editor itself."""
    browser.execute_script(
        "document.querySelectorAll('.CodeMirror')[arguments[0]].CodeMirror.setValue(arguments[1])",
        index,
        text,
    )


def result(browser: WebDriver) -> str:
    return str(browser.execute_script("return document.querySelector('.result-window').innerText"))


def until(browser: WebDriver, check: Callable[[], bool], within: float = 20) -> None:
    try:
        WebDriverWait(browser, within, poll_frequency=0.1).until(lambda _: check())
    except TimeoutException:
        SHOTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(SHOTS / "graphiql-timeout.png"))
        shown = browser.execute_script(
            "return Array.from(document.querySelectorAll('.CodeMirror'))"
            ".map(e => e.CodeMirror.getValue())"
        )
        raise AssertionError(f"GraphiQL shows {shown}") from None


def test_graphiql_runs_a_query_and_a_subscription_with_nothing_from_outside(
    server: Server, console: str, settings: Settings, offline: WebDriver
) -> None:
    tenant = new_tenant()
    token = asyncio.run(create_key(settings, "graphiql", [tenant], ["admin"]))

    async def append(events: list[dict[str, object]]) -> None:
        async with DecisionGraphClient(server.url, token, tenant) as api:
            await api.append([to_input(e) for e in events])

    asyncio.run(append([started("offline-1"), input_observed("offline-1", 1)]))
    offline.get(f"{server.url}/graphql")
    until(offline, lambda: len(offline.find_elements(By.CLASS_NAME, "CodeMirror")) >= 3)
    offline.find_element(By.XPATH, "//button[normalize-space(.)='Headers']").click()
    editor(offline, 2, json.dumps({"Authorization": f"Bearer {token}", "X-Tenant-ID": tenant}))

    # GraphiQL takes edited text into its state after a short debounce (the parsed document
    # decides HTTP or websocket), and a user re-fetches the schema after entering a key
    # (docs/api.md): so do we.
    time.sleep(1.0)
    offline.find_element(By.XPATH, "//button[@aria-label='Re-fetch GraphQL schema']").click()
    editor(offline, 0, "query { events(first: 5) { edges { node { logSeq traceId eventType } } } }")
    time.sleep(1.0)
    offline.find_element(By.XPATH, "//button[@aria-label='Execute query (Ctrl-Enter)']").click()
    until(offline, lambda: '"eventType": "InputObserved"' in result(offline))
    assert '"traceId": "offline-1"' in result(offline)

    editor(offline, 0, "subscription { events(afterLogSeq: 0) { logSeq traceId eventType } }")
    time.sleep(1.0)  # GraphiQL parses the edited document after a debounce, then knows it
    offline.find_element(By.XPATH, "//button[@aria-label='Execute query (Ctrl-Enter)']").click()
    until(offline, lambda: '"logSeq": 2' in result(offline))  # replayed from the log
    time.sleep(0.5)  # the subscription is live
    asyncio.run(append([started("offline-live")]))
    until(offline, lambda: '"traceId": "offline-live"' in result(offline))  # pushed live
    graphiql = requested(offline)
    assert any(url.startswith("ws://127.0.0.1") for url in graphiql), graphiql
    assert any(url.endswith("/graphiql/graphiql.min.js") for url in graphiql), graphiql
    assert non_local(graphiql) == set()

    sign_in(offline, console, token)
    wait_for(offline, text_xpath("Overview"))
    for view in ("overview", "traces", "graph", "precedents", "inbox", "replays", "stream",
                 "status"):  # fmt: skip
        offline.get(f"{console}/?tenant={tenant}&view={view}")
        wait_for(offline, "//main")
        time.sleep(0.5)  # let each page load what it loads
    pages = requested(offline)
    assert any(url.startswith(console) for url in pages), pages
    assert non_local(pages) == set()
