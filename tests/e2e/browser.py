"""Headless Chromium for the end-to-end dashboard tests: the browser, waiting for a page, reading
its metrics, screenshots as artifacts.

Debian's ``chromium`` driven by selenium through the system ``chromedriver`` (installed by
``make install``, infra/install-browser.sh). Chromium runs as root here: ``--no-sandbox`` and
the network-quiet flags of docs/platform-facts (without them it floods a closed network with
refused connections). Screenshots go to ``tests/artifacts/dashboards/<UTC time>/``
(git-ignored; the tests print the path and record it as a test property, so it is in the junit
XML report).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import psycopg
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1500,2200",
)
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "dashboards"
HANG_S = 120.0  # a page that has not rendered by then hangs (only turns a hang into a failure)
T = TypeVar("T")


@contextmanager
def chromium(profile: Path) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with its own profile directory, quit on exit."""
    for path in (CHROMIUM, CHROMEDRIVER):
        assert Path(path).exists(), (
            f"{path} is missing: run `make install` (infra/install-browser.sh)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def screenshots_dir(record_property: Callable[[str, object], None], suffix: str = "") -> Path:
    """A fresh ``tests/artifacts/dashboards/<UTC time><suffix>/``, printed and recorded."""
    shots = ARTIFACTS / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}{suffix}"
    record_property("screenshots", str(shots))
    print(f"screenshots: {shots}")
    return shots


def until(
    what: str,
    probe: Callable[[], T | None],
    evidence: Callable[[], str] = str,
    hang_s: float = HANG_S,
) -> T:
    """Poll ``probe`` until it returns something (a hang becomes a failure after ``hang_s``,
    with the ``evidence`` of what was on the screen)."""
    deadline = time.monotonic() + hang_s
    while True:
        try:
            value = probe()
        except WebDriverException:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; {evidence()}")
        time.sleep(0.25)


def evidence(driver: webdriver.Chrome, shot: Path) -> str:
    """What the page showed when a wait timed out: a screenshot and the page's text."""
    try:
        driver.save_screenshot(str(shot))
        text = driver.find_element(By.TAG_NAME, "body").text
    except WebDriverException as exc:
        return f"(no evidence: {exc})"
    return f"screenshot {shot}; the page said:\n{text[:3000]}"


def metrics(driver: webdriver.Chrome) -> dict[str, str]:
    """The page's ``st.metric`` elements: label -> the value shown."""
    out = {}
    for m in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stMetric"]'):
        label = m.find_element(By.CSS_SELECTOR, '[data-testid="stMetricLabel"]').text.strip()
        value = m.find_element(By.CSS_SELECTOR, '[data-testid="stMetricValue"]').text.strip()
        out[label] = value
    return out


def exceptions(driver: webdriver.Chrome) -> list[str]:
    """The text of every exception element on the page (Streamlit's traceback box)."""
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')]


def open_page(
    driver: webdriver.Chrome, url: str, wanted: str, shots: Path, name: str
) -> dict[str, str]:
    """Open a page, wait for the metric ``wanted``, check for exceptions, keep a screenshot."""
    driver.get(url)
    shots.mkdir(parents=True, exist_ok=True)

    def seen() -> str:
        return evidence(driver, shots / f"{name}-timeout.png")

    shown = until(
        f"metric {wanted!r} on {url}",
        lambda: shown if wanted in (shown := metrics(driver)) else None,
        seen,
    )
    running = '[data-testid="stStatusWidget"] [data-testid="stSpinner"]'
    until(
        "the page to finish running",
        lambda: not driver.find_elements(By.CSS_SELECTOR, running) or None,
        seen,
    )
    time.sleep(1.0)  # let charts draw for the screenshot (not an assertion)
    shots.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(shots / f"{name}.png"))
    found = exceptions(driver)
    assert not found, f"{url}: {found}"
    return {**shown, **metrics(driver)}


def sql_value(dsn: str, query: str, params: dict[str, object]) -> object:
    """The first column of the first row of ``query``."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]
