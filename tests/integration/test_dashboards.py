"""Every dashboard page run server-side (streamlit AppTest) against a real TimescaleDB, through
the read-only role the dashboards use in the stack: the key figures shown equal the database's,
an empty database gives clear messages (never an exception), acknowledging an alert records who
and when, and the roles can do exactly what they are meant to.

Two ways to fill the database: the published oee.com example produced as events and written by
the real historian, OEE and downtime flows (the figures are the published ones); and, for the
pages that need a plant's worth of history (two days, 15 assets, open stops, alerts, dead
letters), rows written through the pipelines' SQL tables (tests/dashboard_data.py) and rolled up
with refresh_oee_rollups() as the OEE sink does. That data ends in the future (ahead of the wall
clock, like the accelerated demo), so "now" is the latest data time.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import psycopg
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from asbuilt.plant import default_plant
from dashboards import timeutil
from dashboards.queries import RAW_TABLES
from dashboards.service import ensure_roles
from tests.conftest import Stack
from tests.dashboard_data import Filled, fill, plant_end
from tests.flowkit import FlowProcess, wait_until

pytestmark = pytest.mark.integration

APP = str(Path(__file__).resolve().parents[2] / "dashboards" / "app.py")
PAGES = (
    "pages/plant_overview.py",
    "pages/line_performance.py",
    "pages/downtime_alerts.py",
    "pages/data_freshness.py",
)
RUN_TIMEOUT_S = 120  # only turns a hang into a failure


@pytest.fixture
def dashboard_env(db_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The dashboards' environment as dashboard_service() gives it: the role DSNs."""
    roles = ensure_roles(db_dsn)
    monkeypatch.setenv("ASBUILT_DASHBOARD_DSN", roles.reader)
    monkeypatch.setenv("ASBUILT_DASHBOARD_ACK_DSN", roles.acker)
    monkeypatch.delenv("ASBUILT_PLANT_MODEL", raising=False)
    st.cache_data.clear()
    st.cache_resource.clear()
    yield db_dsn
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def filled(dashboard_env: str) -> Filled:
    return fill(dashboard_env, end=plant_end(default_plant(), datetime.now(UTC)), days=2)


def run_page(page: str, query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=RUN_TIMEOUT_S)
    if query:
        at.query_params.update(query)
    at.run()
    if page != PAGES[0]:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def metric(at: AppTest, label: str) -> str:
    values = [m.value for m in at.metric if m.label == label]
    assert values, f"no metric {label!r} among {[m.label for m in at.metric]}"
    return values[0]


def frame_with(at: AppTest, column: str) -> pd.DataFrame:
    for df in at.dataframe:
        if column in df.value.columns:
            return df.value
    raise AssertionError(f"no table with a column {column!r}")


def sql_one(dsn: str, query: str, *params: object) -> object:
    args = params[0] if len(params) == 1 and isinstance(params[0], dict) else params
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query, args).fetchone()
    assert row is not None
    return row[0]


def test_plant_overview_shows_the_current_shift_oee_of_the_database(filled: Filled) -> None:
    at = run_page(PAGES[0])
    dsn = _dsn()
    shift_start = sql_one(
        dsn, "SELECT start_ts FROM shifts WHERE start_ts <= %s ORDER BY start_ts DESC LIMIT 1",
        filled.end,
    )  # fmt: skip
    oee = sql_one(
        dsn,
        "SELECT oee FROM site_oee_by_shift WHERE shift_start = %s AND convention = 'iso22400'",
        shift_start,
    )
    assert metric(at, "Site OEE") == timeutil.percent(float(oee))  # type: ignore[arg-type]
    availability = sql_one(
        dsn,
        "SELECT availability FROM site_oee_by_shift "
        "WHERE shift_start = %s AND convention = 'iso22400'",
        shift_start,
    )
    assert metric(at, "Site Availability") == timeutil.percent(float(availability))  # type: ignore[arg-type]
    assert any("Current shift: early" in s.value for s in at.subheader)
    assert any("ahead of the wall clock" in c.value for c in at.caption)  # demo time noticed
    # the open stop's asset, and only it, shows as a breakdown (coloured by loss category)
    tables = [df.value for df in at.dataframe if "PackML state" in df.value.columns]
    assert sum(len(t) for t in tables) == len(filled.assets)
    shown = pd.concat(tables)
    broken = shown[shown["state"].str.endswith("breakdown")]
    assert list(broken["asset"]) == [filled.open_stop_asset.rsplit("/", 1)[-1]]
    assert set(shown["state"].str.split(" ").str[-1]) <= {"production", "breakdown"}
    # the lines table shows each line's worst state; each line links to its performance page
    lines = frame_with(at, "producing")
    assert list(lines["line"]) == filled.lines
    assert set(lines.loc[lines["state"] == "breakdown", "line"]) == {
        filled.open_stop_asset.rsplit("/", 1)[0]
    }
    assert len(at.get("page_link")) == len(filled.lines)


def _dsn() -> str:
    import os

    return os.environ["ASBUILT_DASHBOARD_DSN"]


def test_line_performance_figures_equal_the_database(filled: Filled) -> None:
    line = "acme/basel/packaging/line1"
    at = run_page(PAGES[1], {"level": "line", "key": line})
    dsn = _dsn()
    shift_start = sql_one(
        dsn, "SELECT start_ts FROM shifts WHERE start_ts <= %s ORDER BY start_ts DESC LIMIT 1",
        filled.end,
    )  # fmt: skip
    row = None
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT oee, availability, performance, quality FROM line_oee_by_shift "
            "WHERE line = %s AND shift_start = %s AND convention = 'iso22400'",
            (line, shift_start),
        ).fetchone()
    assert row is not None
    for label, value in zip(("OEE", "Availability", "Performance", "Quality"), row, strict=True):
        assert metric(at, label) == timeutil.percent(value)
    # counts against target: processed per asset equals the minutes' sums
    counts = frame_with(at, "target")
    processed = sql_one(
        dsn, "SELECT sum(processed) FROM oee_minutes WHERE asset LIKE %s AND shift_start = %s",
        f"{line}/%", shift_start,
    )  # fmt: skip
    assert int(counts["processed"].sum()) == processed
    # the convention selector switches every figure to the other convention
    at.radio(key="perf-convention").set_value("oee.com").run()
    assert not at.exception
    with psycopg.connect(dsn) as conn:
        com = conn.execute(
            "SELECT availability FROM line_oee_by_shift "
            "WHERE line = %s AND shift_start = %s AND convention = 'oee.com'",
            (line, shift_start),
        ).fetchone()
    assert com is not None
    assert metric(at, "Availability") == timeutil.percent(com[0])
    # a whole day and a week resolve too
    for choice in ("Day", "Week", "Last 24 hours"):
        at.segmented_control(key="perf-period").set_value(choice).run()
        assert not at.exception, choice
        assert not at.error, choice


def test_downtime_and_alerts_and_acknowledging(filled: Filled) -> None:
    at = run_page(PAGES[2])
    dsn = _dsn()
    pareto = frame_with(at, "cumulative_share")
    total = sql_one(  # the page's default period: the 24 hours to now (+ the current minute);
        dsn,  # the open stop runs until the page's now (the data's, ahead of the wall clock)
        "SELECT sum(duration_s) FROM downtime_pareto(%(t)s + interval '1 minute' - "
        "interval '24 hours', %(t)s + interval '1 minute', 'reason', '%%', %(t)s)",
        {"t": filled.end},
    )
    assert float(pareto["duration_s"].sum()) == pytest.approx(float(total), rel=1e-6)  # type: ignore[arg-type]
    assert metric(at, "Downtime") == timeutil.duration(float(total))  # type: ignore[arg-type]
    assert metric(at, "Stops open now") == "1"
    assert metric(at, "Active alerts") == str(filled.alerts_active)
    active = frame_with(at, "rule")
    assert len(active) >= filled.alerts_active
    open_now = frame_with(at, "running")
    assert filled.open_stop_asset in set(open_now["asset"])

    at.text_input(key="ack-who").input("Alice")
    at.form_submit_button[0].click().run()
    assert not at.exception
    assert any("Acknowledged by Alice" in s.value for s in at.success)
    with psycopg.connect(dsn) as conn:
        acked = conn.execute(
            "SELECT acked_by, acked_at IS NOT NULL FROM alerts WHERE acked_by IS NOT NULL"
        ).fetchall()
    assert acked == [("Alice", True)]


def test_data_freshness_shows_silent_assets_and_dead_letters(filled: Filled) -> None:
    at = run_page(PAGES[3])
    assert metric(at, "Silent assets") == "1"
    assert metric(at, "Dead letters") == str(filled.dead_letters)
    events = frame_with(at, "silent")
    assert set(events.loc[events["silent"], "asset"]) == {filled.silent_asset}
    assert len(events) == len(filled.assets)


@pytest.mark.parametrize("page", PAGES)
def test_an_empty_database_gives_messages_not_exceptions(dashboard_env: str, page: str) -> None:
    at = run_page(page)
    assert at.info, "an empty database must say why nothing is shown"


def test_the_roles_may_do_only_what_they_are_for(dashboard_env: str) -> None:
    roles = ensure_roles(dashboard_env)  # a second run is fine (idempotent)
    with psycopg.connect(roles.reader) as conn:
        assert conn.execute("SELECT count(*) FROM oee_by_hour").fetchone() == (0,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("DELETE FROM alerts")
    with psycopg.connect(roles.acker, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE alerts SET message = 'x'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT message FROM alerts")
        conn.execute("UPDATE alerts SET acked_by = 'x', acked_at = now() WHERE false")


def test_an_asset_without_data_in_the_period_gets_a_message(filled: Filled) -> None:
    at = run_page(PAGES[1], {"level": "asset", "key": filled.assets[0]})
    at.segmented_control(key="perf-period").set_value("Day").run()
    long_before = (filled.start - timedelta(days=30)).date()
    at.date_input(key="perf-day").set_value(long_before).run()
    assert not at.exception
    assert not at.error
    assert any("No OEE data for" in i.value for i in at.info)
    assert not [m for m in at.metric if m.label == "OEE"]


def test_pages_over_the_published_example_written_by_the_real_flows(
    local_stack: Stack,
    dashboard_env: str,
    topic_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The oee.com worked example (tests/integration/test_oee_flow.py) produced as events and
    written by the real historian, OEE and downtime flows; the pages show the published
    figures (OEE 74.8 %: A 88.8 %, P 86.1 %, Q 97.8 %) and the database's downtime; the plant
    overview shows that shift as the last one with the site's OEE of it, the data freshness page
    the example asset's last event per raw table as the tables hold them."""
    from tests.integration.test_oee_flow import (
        MON,
        OEECOM,
        feed,
        oeecom_events,
        pushes,
        settings_for,
    )

    dsn = dashboard_env
    settings = settings_for(local_stack, dsn, topic_prefix, tmp_path / ".asbuilt")
    with (
        FlowProcess("historian", settings) as historian,
        FlowProcess("oee", settings) as oee,
        FlowProcess("downtime", settings) as downtime,
    ):
        feed(settings, oee, oeecom_events(), pushes())  # as a live plant: watermarks move last
        wait_until(
            lambda: sql_one(dsn, "SELECT count(*) FROM oee_minutes WHERE asset = %s "
                            "AND shift IS NOT NULL", OEECOM) == 480
            and sql_one(dsn, "SELECT count(*) FROM downtime_events WHERE asset = %s "
                        "AND stop_reason = '100.20' AND end_ts IS NOT NULL", OEECOM) == 1
            and sql_one(dsn, "SELECT count(*) FROM equipment_states WHERE asset = %s",
                        OEECOM) == 10,
            300, "the shift's minutes, the jam and the states written by the flows",
            [historian, oee, downtime],
        )  # fmt: skip
    assert settings.plant_model is not None
    monkeypatch.setenv("ASBUILT_PLANT_MODEL", str(settings.plant_model))  # zone UTC
    day = MON.date()

    at = run_page(PAGES[1], {"level": "asset", "key": OEECOM})
    at.radio(key="perf-convention").set_value("oee.com").run()
    at.segmented_control(key="perf-period").set_value("Custom").run()
    at.date_input(key="perf-custom").set_value((day, day)).run()
    assert not at.exception
    assert not at.error
    assert metric(at, "OEE") == "74.8 %"
    assert metric(at, "Availability") == "88.8 %"
    assert metric(at, "Performance") == "86.1 %"
    assert metric(at, "Quality") == "97.8 %"
    counts = frame_with(at, "target")
    assert list(counts["processed"]) == [19_271]
    assert list(counts["good"]) == [19_271 - 423]

    at = run_page(PAGES[2])
    at.segmented_control(key="dt-period").set_value("Custom").run()
    at.date_input(key="dt-custom").set_value((day, day)).run()
    assert not at.exception
    start, end = MON, MON + timedelta(days=1)
    total = sql_one(
        dsn, "SELECT sum(duration_s) FROM downtime_pareto(%s, %s, 'reason', '%%')", start, end
    )
    assert metric(at, "Downtime") == timeutil.duration(float(total))  # type: ignore[arg-type]
    reasons = frame_with(at, "cumulative_share")
    jam = reasons[reasons["key"].str.startswith("100.20")]
    assert list(jam["duration_s"]) == [47 * 60]

    # plant overview: the flows wrote only the example's shift instance (Monday early, in the
    # past), so the page shows it as the last shift with the site's OEE of it; the site has only
    # the example asset's minutes, so in the oee.com convention that is the published 74.8 %
    at = run_page(PAGES[0])
    shift_start = sql_one(dsn, "SELECT max(start_ts) FROM shifts WHERE start_ts <= now()")
    assert shift_start == MON + timedelta(hours=6)
    assert any(s.value.startswith("Last shift (none running now): ") for s in at.subheader)
    oee = sql_one(
        dsn,
        "SELECT oee FROM site_oee_by_shift WHERE shift_start = %s AND convention = 'iso22400'",
        shift_start,
    )
    assert metric(at, "Site OEE") == timeutil.percent(float(oee))  # type: ignore[arg-type]
    shown = frame_with(at, "PackML state")
    assert len(shown) == sql_one(dsn, "SELECT count(*) FROM assets")
    example = shown[shown["asset"] == OEECOM.rsplit("/", 1)[-1]]
    last_state = sql_one(
        dsn, "SELECT state FROM equipment_states WHERE asset = %s ORDER BY ts DESC LIMIT 1", OEECOM
    )
    assert list(example["PackML state"]) == [last_state]
    at.radio(key="overview-convention").set_value("oee.com").run()
    assert not at.exception
    assert not at.error
    assert metric(at, "Site OEE") == "74.8 %"
    assert metric(at, "Site Availability") == "88.8 %"

    # data freshness: the example asset's last event per raw table is the tables' latest time;
    # every asset is silent (the example is long past); no dead letters were written
    at = run_page(PAGES[3])
    events = frame_with(at, "silent")
    row = events[events["asset"] == OEECOM]
    assert len(row) == 1
    latest = {
        table: sql_one(dsn, f"SELECT max(ts) FROM {table} WHERE asset = %s", OEECOM)
        for table in RAW_TABLES
    }
    assert latest["equipment_states"] is not None
    assert latest["counter_samples"] is not None
    for table, ts in latest.items():  # NULL (no event of that kind) shows as empty
        shown_ts = pd.Timestamp(row[table].iloc[0])
        assert pd.isna(shown_ts) if ts is None else shown_ts == ts, table
    newest = max(ts for ts in latest.values() if ts is not None)  # type: ignore[type-var]
    assert pd.Timestamp(row["last_event"].iloc[0]) == pd.Timestamp(newest)
    assert bool(row["silent"].iloc[0])
    n_assets = sql_one(dsn, "SELECT count(*) FROM assets")
    assert metric(at, "Silent assets") == str(n_assets)
    assert metric(at, "Assets reporting") == f"0 / {n_assets}"
    assert sql_one(dsn, "SELECT count(*) FROM dead_letters") == 0
    assert any("No dead letters in the last 24 hours" in i.value for i in at.info)
