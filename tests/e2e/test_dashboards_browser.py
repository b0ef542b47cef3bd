"""The dashboards in a real browser: headless Debian Chromium driven by selenium through the
system chromedriver, against ``streamlit run`` started as ``asbuilt up`` starts it (the
dashboards service of the stack: roles created, read-only DSN in its environment, health on
/_stcore/health) over a filled TimescaleDB. Every page opens without an exception element, its
key figures equal the database's, and a screenshot of each page is kept as a test artifact in
``tests/artifacts/dashboards/<UTC time>/`` (git-ignored; the path is printed and recorded as a
test property, so it is in the junit XML report).

Chromium runs as root here: ``--no-sandbox`` and the network-quiet flags of
docs/platform-facts (without them it floods a closed network with refused connections).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlencode

import psycopg
import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from asbuilt.plant import default_plant
from asbuilt.services.stack import private_settings
from asbuilt.services.supervisor import Supervisor
from dashboards import timeutil
from dashboards.service import dashboard_service
from tests.dashboard_data import Filled, fill, plant_end

pytestmark = pytest.mark.e2e

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


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    for path in (CHROMIUM, CHROMEDRIVER):
        assert Path(path).exists(), (
            f"{path} is missing: run `make install` (infra/install-browser.sh)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def served(db_dsn: str, tmp_path: Path) -> Iterator[tuple[str, Filled]]:
    """The dashboards service of the stack over a filled database: (base URL, what was filled)."""
    filled = fill(db_dsn, end=plant_end(default_plant(), datetime.now(UTC)), days=2)
    settings = private_settings(tmp_path / ".asbuilt", db_dsn=db_dsn)
    supervisor = Supervisor(settings, [dashboard_service(settings)])
    supervisor.start_all()
    try:
        yield f"http://{settings.bind_host}:{settings.dashboard_port}", filled
    finally:
        supervisor.stop_all()


def until(what: str, probe: Callable[[], T | None], evidence: Callable[[], str] = str) -> T:
    """Poll ``probe`` until it returns something (a hang becomes a failure after HANG_S, with
    the ``evidence`` of what was on the screen)."""
    deadline = time.monotonic() + HANG_S
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


def _evidence(driver: webdriver.Chrome, shot: Path) -> str:
    """What the page showed when a wait timed out: a screenshot and the page's text."""
    try:
        driver.save_screenshot(str(shot))
        text = driver.find_element(By.TAG_NAME, "body").text
    except WebDriverException as exc:
        return f"(no evidence: {exc})"
    return f"screenshot {shot}; the page said:\n{text[:3000]}"


def metrics(driver: webdriver.Chrome) -> dict[str, str]:
    out = {}
    for m in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stMetric"]'):
        label = m.find_element(By.CSS_SELECTOR, '[data-testid="stMetricLabel"]').text.strip()
        value = m.find_element(By.CSS_SELECTOR, '[data-testid="stMetricValue"]').text.strip()
        out[label] = value
    return out


def open_page(
    driver: webdriver.Chrome, url: str, wanted: str, shots: Path, name: str
) -> dict[str, str]:
    """Open a page, wait for the metric ``wanted``, check for exceptions, keep a screenshot."""
    driver.get(url)
    shots.mkdir(parents=True, exist_ok=True)

    def seen() -> str:
        return _evidence(driver, shots / f"{name}-timeout.png")

    shown = until(
        f"metric {wanted!r} on {url}",
        lambda: wanted in metrics(driver) and metrics(driver),
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
    exceptions = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    assert not exceptions, f"{url}: {[e.text for e in exceptions]}"
    return {**shown, **metrics(driver)}


def sql_value(dsn: str, query: str, params: dict[str, object]) -> object:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def test_every_page_in_a_real_browser_shows_the_databases_figures(
    served: tuple[str, Filled],
    browser: webdriver.Chrome,
    db_dsn: str,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    base, filled = served
    shots = ARTIFACTS / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    record_property("screenshots", str(shots))
    print(f"screenshots: {shots}")
    shift_start = sql_value(
        db_dsn,
        "SELECT start_ts FROM shifts WHERE start_ts <= %(t)s ORDER BY start_ts DESC LIMIT 1",
        {"t": filled.end},
    )

    shown = open_page(browser, f"{base}/", "Site OEE", shots, "1-plant-overview")
    site_oee = sql_value(
        db_dsn,
        "SELECT oee FROM site_oee_by_shift WHERE shift_start = %(s)s AND convention = 'iso22400'",
        {"s": shift_start},
    )
    assert shown["Site OEE"] == timeutil.percent(float(site_oee))  # type: ignore[arg-type]

    line = "acme/basel/packaging/line1"
    query = urlencode({"level": "line", "key": line})
    shown = open_page(browser, f"{base}/line_performance?{query}", "OEE", shots, "2-line")
    line_oee = sql_value(
        db_dsn,
        "SELECT oee FROM line_oee_by_shift WHERE line = %(l)s AND shift_start = %(s)s "
        "AND convention = 'iso22400'",
        {"l": line, "s": shift_start},
    )
    assert shown["OEE"] == timeutil.percent(float(line_oee))  # type: ignore[arg-type]

    shown = open_page(browser, f"{base}/downtime_alerts", "Active alerts", shots, "3-downtime")
    active = sql_value(db_dsn, "SELECT count(*) FROM alerts_active", {})
    assert shown["Active alerts"] == str(active)
    assert shown["Stops open now"] == "1"

    shown = open_page(browser, f"{base}/data_freshness", "Silent assets", shots, "4-freshness")
    assert shown["Silent assets"] == "1"
    assert shown["Dead letters"] == str(sql_value(db_dsn, "SELECT count(*) FROM dead_letters", {}))
    assert sorted(p.name for p in shots.iterdir()) == [
        "1-plant-overview.png", "2-line.png", "3-downtime.png", "4-freshness.png",
    ]  # fmt: skip
