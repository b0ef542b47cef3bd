"""The dashboards of `make demo` in a real browser: the whole stack started as a new user starts
it (``make demo`` in a private home with free ports, its own process group, Ctrl-C at the end,
as tests/e2e/test_demo.py does), the simulated plant at its demo speed (60×) through connector,
broker and flows into TimescaleDB, and every page opened in headless Chromium once the OEE flow
has written the current shift: no exception element on any page (the Data quality page among
them, with the windows the demo's quality flow validated), key figures equal the database's, a
screenshot of each page kept in ``tests/artifacts/dashboards/<UTC time>-demo/``.

The data is live (a simulated minute per wall second), so a figure on the page cannot be
compared with one database read. A sampler reads the same views the page reads, every 0.1 s, from
before the page is opened; the figure shown must be one the database had meanwhile (the page
and its in-place refreshes read the database inside that window). The number of assets does
not move and is compared directly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
import pytest
from selenium import webdriver

from asbuilt.services.postgres import EmbeddedPostgres
from asbuilt.settings import Settings
from dashboards import timeutil
from tests.e2e.browser import (
    chromium,
    evidence,
    metrics,
    open_page,
    screenshots_dir,
    sql_value,
    until,
)
from tests.e2e.demo import START_HANG_S, make_demo

pytestmark = pytest.mark.e2e

SITE = "acme/basel"
LINE = "acme/basel/packaging/line1"
PARAMS: dict[str, object] = {"site": SITE, "line": LINE}

# The page's "now" (dashboards/timeutil.py clock: the later of the wall clock and the latest
# data), the minute after it as the pages ask (``ui.minute(now) + 1 min``), and the shift of
# the site running then or the last one that started (queries.shift_at).
SHIFT = """
    SELECT s.start_ts FROM shifts s
     WHERE s.site = %(site)s
       AND s.start_ts <= date_trunc('minute', greatest(
                now(),
                (SELECT max(ts) + interval '1 minute' FROM oee_minutes),
                (SELECT max(ts) FROM equipment_states),
                (SELECT max(updated_ts) FROM downtime_events))) + interval '1 minute'
     ORDER BY s.start_ts DESC LIMIT 1
"""
SITE_OEE = f"""
    SELECT v.oee FROM site_oee_by_shift v
     WHERE v.site = %(site)s AND v.convention = 'iso22400' AND v.shift_start = ({SHIFT})
"""
LINE_OEE = f"""
    SELECT v.oee FROM line_oee_by_shift v
     WHERE v.line = %(line)s AND v.convention = 'iso22400' AND v.shift_start = ({SHIFT})
"""


class Sampler:
    """Every value of some queries the database had while the sampler ran (read every 0.1 s on
    one autocommit connection), formatted as the page formats them."""

    def __init__(self, dsn: str, queries: dict[str, tuple[str, Callable[[Any], str]]]) -> None:
        self.dsn = dsn
        self.queries = queries
        self.seen: dict[str, set[str]] = {name: set() for name in queries}
        self.errors: list[psycopg.Error] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                while not self._stop.is_set():
                    for name, (query, show) in self.queries.items():
                        row = conn.execute(query, PARAMS).fetchone()
                        with self._lock:
                            self.seen[name].add(show(None if row is None else row[0]))
                    self._stop.wait(0.1)
        except psycopg.Error as exc:  # reported by had(): a dead sampler fails the test
            self.errors.append(exc)

    def had(self, name: str, value: str) -> bool:
        assert not self.errors, f"the sampler failed: {self.errors}"
        with self._lock:
            return value in self.seen[name]

    def values(self, name: str) -> list[str]:
        with self._lock:
            return sorted(self.seen[name])

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def _percent(value: Any) -> str:
    return timeutil.percent(None if value is None else float(value))


def shows_what_the_database_had(
    driver: webdriver.Chrome, sampler: Sampler, label: str, shots: Path, name: str
) -> str:
    """Wait until the metric ``label`` shows a value the database had while the page was open
    (the page refreshes in place; the sampler goes on reading): the value."""

    def probe() -> str | None:
        value = metrics(driver).get(label)
        return value if value is not None and sampler.had(label, value) else None

    return until(
        f"{label!r} to show a value the database had",
        probe,
        lambda: (
            f"the database had {sampler.values(label)}; "
            + evidence(driver, shots / f"{name}-mismatch.png")
        ),
    )


def test_make_demo_serves_every_dashboard_page_with_the_databases_figures(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    home = tmp_path / ".asbuilt"
    shots = screenshots_dir(record_property, "-demo")
    with make_demo(home, tmp_path / "demo.log") as (env, _demo, report):
        assert "dashboards" in {s["name"] for s in report["services"]}, report
        settings = Settings(home=home, db_port=int(env["ASBUILT_DB_PORT"]))
        dsn = EmbeddedPostgres(settings).dsn()
        base = f"http://127.0.0.1:{env['ASBUILT_DASHBOARD_PORT']}"
        until(  # the OEE flow has written minutes of the page's current shift for the line
            "the OEE flow to write the current shift of the line",
            lambda: sql_value(dsn, f"SELECT count(oee) FROM ({LINE_OEE}) x", PARAMS),
            lambda: (tmp_path / "demo.log").read_text()[-3000:],
            hang_s=START_HANG_S,
        )
        assets = int(sql_value(dsn, "SELECT count(*) FROM assets", {}))  # type: ignore[call-overload]
        assert assets > 0
        queries: dict[str, tuple[str, Callable[[Any], str]]] = {
            "Site OEE": (SITE_OEE, _percent),
            "OEE": (LINE_OEE, _percent),
            "Active alerts": ("SELECT count(*) FROM alerts_active", str),
        }
        with (
            chromium(tmp_path / "chromium-profile") as driver,
            Sampler(dsn, queries) as sampler,
        ):
            open_page(driver, f"{base}/", "Site OEE", shots, "1-plant-overview")
            site_oee = shows_what_the_database_had(
                driver, sampler, "Site OEE", shots, "1-plant-overview"
            )
            assert site_oee.endswith(" %"), site_oee  # a figure, not "–": the shift has OEE

            query = urlencode({"level": "line", "key": LINE})
            url = f"{base}/line_performance?{query}"
            open_page(driver, url, "OEE", shots, "2-line")
            shows_what_the_database_had(driver, sampler, "OEE", shots, "2-line")

            open_page(driver, f"{base}/downtime_alerts", "Active alerts", shots, "3-downtime")
            shows_what_the_database_had(driver, sampler, "Active alerts", shots, "3-downtime")

            shown = open_page(driver, f"{base}/data_freshness", "Silent assets", shots, "4-fresh")
            reporting, of = shown["Assets reporting"].split(" / ")
            assert int(of) == assets
            assert int(reporting) + int(shown["Silent assets"]) == assets

            # the quality flow of the demo has validated windows: the page counts them
            shown = open_page(driver, f"{base}/data_quality", "Failed windows", shots, "5-quality")
            failed, windows = (
                int(v.replace(",", "")) for v in shown["Failed windows"].split(" / ")
            )
            assert windows > 0
            assert 0 <= failed <= windows
            assert shown["Assets below coverage"].endswith(f" / {assets}")
    assert sorted(p.name for p in shots.glob("*.png")) == [
        "1-plant-overview.png", "2-line.png", "3-downtime.png", "4-fresh.png", "5-quality.png",
    ]  # fmt: skip
