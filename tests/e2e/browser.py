"""Headless Chromium for the end-to-end tests: Debian's chromium and chromium-driver
(installed on first use), and the few page helpers the tests share."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait


def _browser_binaries() -> tuple[str, str]:
    """Debian's chromium and chromium-driver, installed on first use when missing."""
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver is None:
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"],
            check=True,
            capture_output=True,
        )
        browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert browser and driver, "chromium and chromium-driver could not be installed"
    return browser, driver


def launch(*flags: str, record_requests: bool = False) -> WebDriver:
    """Headless Chromium with our usual window, plus `flags`; `record_requests` keeps
    DevTools' network log (read with `get_log("performance")`)."""
    binary, driver_path = _browser_binaries()
    options = Options()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1500,1000", *flags):  # fmt: skip
        options.add_argument(flag)
    if record_requests:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(options=options, service=Service(driver_path))


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    driver = launch()
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(browser: WebDriver, xpath: str, within: float = 15) -> Any:
    return WebDriverWait(browser, within, poll_frequency=0.05).until(
        lambda d: d.find_element(By.XPATH, xpath)
    )


def wait_text(browser: WebDriver, xpath: str, *needles: str, within: float = 15) -> str:
    """The text of the element at `xpath` once it holds every needle; an element redrawn
    meanwhile (a live refresh) is simply looked up again."""
    seen = {"text": ""}

    def holds(driver: WebDriver) -> bool:
        seen["text"] = driver.find_element(By.XPATH, xpath).text
        return all(needle in seen["text"] for needle in needles)

    try:
        WebDriverWait(
            browser,
            within,
            poll_frequency=0.05,
            ignored_exceptions=(StaleElementReferenceException,),
        ).until(holds)
    except TimeoutException:
        raise AssertionError(
            f"{xpath} never showed {needles}; it showed {seen['text']!r}"
        ) from None
    return seen["text"]


def text_xpath(text: str) -> str:
    return f"//*[contains(normalize-space(.), {text!r}) and not(.//*[contains(normalize-space(.), {text!r})])]"


def sign_in(browser: WebDriver, console: str, token: str) -> None:
    browser.delete_all_cookies()
    browser.get(f"{console}/signin")
    wait_for(browser, "//input[@type='password']").send_keys(token)
    browser.find_element(By.XPATH, "//button[contains(., 'Sign in')]").click()
