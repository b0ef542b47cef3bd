"""The dashboards in a real browser: headless Debian Chromium driven by selenium through the
system chromedriver, against ``streamlit run`` started as ``asbuilt up`` starts it (the
dashboards service of the stack: roles created, read-only DSN in its environment, health on
/_stcore/health) over a filled TimescaleDB. Every page opens without an exception element, its
key figures equal the database's, and a screenshot of each page is kept as a test artifact in
``tests/artifacts/dashboards/<UTC time>/`` (the browser and its helpers: tests/e2e/browser.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from selenium import webdriver

from asbuilt.plant import default_plant
from asbuilt.services.stack import private_settings
from asbuilt.services.supervisor import Supervisor
from dashboards import timeutil
from dashboards.service import dashboard_service
from tests.dashboard_data import Filled, fill, fill_quality, plant_end
from tests.e2e.browser import chromium, open_page, screenshots_dir, sql_value

pytestmark = pytest.mark.e2e


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    with chromium(tmp_path / "chromium-profile") as driver:
        yield driver


@pytest.fixture
def served(db_dsn: str, tmp_path: Path) -> Iterator[tuple[str, Filled]]:
    """The dashboards service of the stack over a filled database: (base URL, what was filled)."""
    filled = fill(db_dsn, end=plant_end(default_plant(), datetime.now(UTC)), days=2)
    fill_quality(db_dsn, filled)
    settings = private_settings(tmp_path / ".asbuilt", db_dsn=db_dsn)
    supervisor = Supervisor(settings, [dashboard_service(settings)])
    supervisor.start_all()
    try:
        yield f"http://{settings.bind_host}:{settings.dashboard_port}", filled
    finally:
        supervisor.stop_all()


def test_every_page_in_a_real_browser_shows_the_databases_figures(
    served: tuple[str, Filled],
    browser: webdriver.Chrome,
    db_dsn: str,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    base, filled = served
    shots = screenshots_dir(record_property)
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

    shown = open_page(browser, f"{base}/data_quality", "Failed windows", shots, "5-quality")
    period = {"from": filled.end + timedelta(minutes=1) - timedelta(hours=24),
              "to": filled.end + timedelta(minutes=1)}  # fmt: skip
    failed = sql_value(
        db_dsn,
        "SELECT to_char(sum(failed_windows), 'FM999,999,999') || ' / ' "
        "|| to_char(sum(windows), 'FM999,999,999') "
        "FROM dq_suite_status(%(from)s, %(to)s, interval '1 hour')",
        period,
    )
    assert shown["Failed windows"] == failed
    dead = sql_value(
        db_dsn, "SELECT sum(dead_letters) FROM dead_letter_reasons(%(from)s, %(to)s)", period
    )
    assert shown["Dead letters"] == str(dead)
    assert sorted(p.name for p in shots.iterdir()) == [
        "1-plant-overview.png", "2-line.png", "3-downtime.png", "4-freshness.png",
        "5-quality.png",
    ]  # fmt: skip
