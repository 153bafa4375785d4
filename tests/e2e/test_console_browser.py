"""The console in a real browser: real server, worker and console processes, headless
Chromium driven by Selenium."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from decisiongraph.sdk import DecisionGraphClient, GraphQLError
from server.demo.release_demo import LIVE, LIVE_WORKFLOW, release_demo_events
from server.settings import Settings
from server.startup import create_key
from tests.e2e.browser import sign_in, text_xpath, wait_for, wait_text
from tests.e2e.conftest import Process, Server
from tests.support import input_observed, new_tenant, to_input

pytestmark = pytest.mark.e2e

SHOTS = Path(__file__).resolve().parents[2] / "screenshots"


def shot(browser: WebDriver, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(SHOTS / f"{name}.png"))


def seed(server: Server, token: str) -> None:
    async def run() -> None:
        async with DecisionGraphClient(server.url, token) as api:
            await api.append([to_input(e) for e in release_demo_events()])

    asyncio.run(run())


def signed_in_admin(
    browser: WebDriver,
    console: str,
    server: Server,
    start_worker: Callable[[], Process],
    settings: Settings,
    name: str,
) -> tuple[str, str]:
    """A fresh tenant with a worker and the seeded scenario, and the console signed in
    with an admin key of it: (tenant, token)."""
    tenant = new_tenant()
    token = asyncio.run(create_key(settings, name, [tenant], ["admin"]))
    start_worker()
    seed(server, token)
    sign_in(browser, console, token)
    wait_for(browser, text_xpath("Projection health"))
    return tenant, token


def test_a_wrong_key_is_refused_at_sign_in(browser: WebDriver, console: str) -> None:
    sign_in(browser, console, "dg_nope_not_a_key")
    wait_for(browser, text_xpath("Sign-in refused"))
    browser.get(f"{console}/")
    wait_for(browser, "//input[@type='password']")  # still signed out


def test_the_operator_journey(
    browser: WebDriver,
    console: str,
    server: Server,
    start_worker: Callable[[], Process],
    settings: Settings,
) -> None:
    tenant, token = signed_in_admin(browser, console, server, start_worker, settings, "operator")
    deep = f"{console}/?tenant={tenant}&trace_id={LIVE}&workflow_id={LIVE_WORKFLOW}"
    browser.get(deep)
    wait_for(browser, text_xpath("Live renewal exception review for Acme Platform"))
    wait_for(browser, text_xpath("escalated"), within=20)  # the SLA timer got there first
    shot(browser, "inbox")

    # Approve with a rationale: the inbox and the trace both show it.
    wait_for(browser, "//textarea").send_keys("Strategic renewal; margin holds")
    wait_for(browser, "//button[contains(., 'Approve')]").click()
    # The review's own status (the scored precedent beside it shows approved cases too).
    wait_for(
        browser, "//*[contains(@class,'dg-workflow-status') and normalize-space(.)='approved']"
    )
    browser.get(f"{console}/?tenant={tenant}&view=traces&trace_id={LIVE}")
    wait_for(browser, text_xpath("ApprovalRecorded"))
    shot(browser, "trace")

    # VERIFY replay: watch progress reach "digests match".
    browser.get(f"{console}/?tenant={tenant}&view=replays")
    inputs = WebDriverWait(browser, 15).until(
        lambda d: d.find_elements(By.XPATH, "//input[@type='text' or not(@type)]")
    )
    reason = browser.find_element(By.XPATH, "//label[contains(., 'reason')]//input")
    reason.send_keys("browser check")
    confirm = browser.find_element(By.XPATH, "//label[contains(., 'confirmation')]//input")
    confirm.send_keys("VERIFY ALL")
    assert inputs
    browser.find_element(By.XPATH, "//button[contains(., 'Queue replay')]").click()
    wait_for(browser, text_xpath("digests match"), within=30)
    shot(browser, "replays")

    # The stream: a new event appears without reload, within a second.
    browser.get(f"{console}/?tenant={tenant}&view=stream")
    wait_for(browser, text_xpath("seq 23"))  # the approval was position 23

    async def append() -> float:
        async with DecisionGraphClient(server.url, token) as api:
            await api.append([to_input(input_observed(LIVE, 7, idempotency_key="browser"))])
        return time.monotonic()

    appended = asyncio.run(append())
    try:
        wait_for(browser, text_xpath("seq 24"), within=5)
    except TimeoutException:
        raise AssertionError("the new event never reached the stream") from None
    delay = time.monotonic() - appended
    shot(browser, "stream")
    assert delay < 1.0, f"the event took {delay:.2f} s to appear"


def test_a_reader_cannot_act_in_the_console_or_the_api(
    browser: WebDriver,
    console: str,
    server: Server,
    start_worker: Callable[[], Process],
    settings: Settings,
) -> None:
    start_worker()
    tenant = new_tenant()
    admin = asyncio.run(create_key(settings, "seeder", [tenant], ["admin"]))
    reader = asyncio.run(create_key(settings, "auditor", [tenant], ["reader"]))
    seed(server, admin)
    sign_in(browser, console, reader)
    wait_for(browser, text_xpath("Projection health"))
    browser.get(f"{console}/?tenant={tenant}&trace_id={LIVE}&workflow_id={LIVE_WORKFLOW}")
    wait_for(browser, text_xpath("Needs the reviewer or admin role"))
    approve = wait_for(browser, "//button[contains(., 'Approve')]")
    assert approve.get_attribute("disabled") is not None

    async def try_api() -> GraphQLError:
        async with DecisionGraphClient(server.url, reader) as api:
            with pytest.raises(GraphQLError) as refused:
                await api.mutate(
                    """mutation($id: String!) { reviewWorkflow(workflowId: $id,
                       decision: APPROVE, rationale: "sneaky") { errors { code message } } }""",
                    "reviewWorkflow",
                    {"id": LIVE_WORKFLOW},
                )
            return refused.value

    assert asyncio.run(try_api()).code == "DG_ERR_FORBIDDEN"


def test_scored_precedent_warns_the_reviewer_and_a_simulation_shows_its_flips(
    browser: WebDriver,
    console: str,
    server: Server,
    start_worker: Callable[[], Process],
    settings: Settings,
) -> None:
    tenant, _ = signed_in_admin(browser, console, server, start_worker, settings, "analyst")

    # The review screen: scored precedent, explained, the approved Acme renewal first, and
    # a warning that rejecting would go against it.
    browser.get(f"{console}/?tenant={tenant}&view=inbox&workflow_id={LIVE_WORKFLOW}")
    wait_text(
        browser,
        "//*[contains(@class,'dg-scored-precedent')]",  # the first one: the best match
        "Approved renewal precedent for Acme Platform",
        "same account:acct-acme-platform",
        "requested_discount_pct 18 vs 21 (86%)",
        within=20,
    )
    wait_text(
        browser,
        "//*[contains(@class,'dg-precedent-warning')]",
        "if rejected",
        "Rejecting goes against 1 of the 2 most similar decided cases",
        "trace-precedent-renewal-001",
    )
    shot(browser, "review-precedent")

    # The simulation screen: a cap at 30% would have let both recorded exceptions through.
    browser.get(f"{console}/?tenant={tenant}&view=simulation")
    value = wait_for(browser, "//label[contains(., 'value')]//input")
    value.send_keys(Keys.CONTROL, "a")
    value.send_keys("30")
    browser.find_element(By.XPATH, "//label[contains(., 'reason')]//input").send_keys("what if")
    browser.find_element(By.XPATH, "//button[contains(., 'Simulate')]").click()
    wait_for(browser, text_xpath("discount-cap: requested_discount_pct GT 30 -> require_exception"))
    summary = "//*[contains(@class,'dg-simulation-summary')]"
    wait_for(browser, f"{summary}//*[normalize-space(.)='2 re-judged']", within=20)
    wait_for(browser, f"{summary}//*[normalize-space(.)='2 flipped']")
    flips = "//*[contains(@class,'dg-simulation-flips')]"
    wait_for(browser, f"{flips}//td[normalize-space(.)='trace-precedent-renewal-001']")
    wait_for(browser, f"{flips}//td[normalize-space(.)='trace-incident-review-003']")
    wait_for(browser, "//*[contains(@class,'dg-simulation-chart')]//canvas")
    shot(browser, "simulation")
