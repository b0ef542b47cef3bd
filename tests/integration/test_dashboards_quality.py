"""The data-quality side of the dashboards, server-side (streamlit AppTest) against a real
TimescaleDB through the read-only role: the Data quality page shows the failing expectations
with their examples, KPIs per asset and line equal to the SQL functions' values (dq_kpis,
line_dq_kpis), the suites' windows and the dead letters by reason (dead_letter_reasons); an
empty database, a stopped quality flow and an unreachable database each give a message, never
a traceback; on the OEE pages a figure whose view row is not trustworthy (low data coverage)
carries the marker and a trustworthy one does not.

The rows are written through SQL as the pipelines write them (tests/dashboard_data.py: fill for
the plant, fill_quality for what the quality flow writes). That data ends in the future (ahead
of the wall clock), so the pages' "now" is the latest data time.
"""

# ruff: noqa: F401, F811 -- dashboard_env is the fixture of test_dashboards.py, imported to be shared

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from asbuilt.plant import default_plant
from dashboards import components as ui
from tests.dashboard_data import DqFilled, Filled, fill, fill_quality, plant_end
from tests.integration.test_dashboards import (
    APP,
    RUN_TIMEOUT_S,
    dashboard_env,
    frame_with,
    metric,
    run_page,
)

pytestmark = pytest.mark.integration

PAGE = "pages/data_quality.py"


def rows(dsn: str, query: str, params: dict[str, Any]) -> pd.DataFrame:
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(query, params)
        return pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description or ()])


UNKNOWN_ASSET = "acme/basel/packaging/line2/case_packer"


@pytest.fixture
def plant(dashboard_env: str) -> tuple[Filled, DqFilled]:
    """The two-day plant with what the quality flow writes; one asset's state unknown for its
    last three hours (coverage 21 of 24 hours, below the 0.9 threshold)."""
    filled = fill(dashboard_env, end=plant_end(default_plant(), datetime.now(UTC)), days=2)
    assert UNKNOWN_ASSET in filled.assets
    unknown_for(dashboard_env, UNKNOWN_ASSET, filled.end - timedelta(hours=3), filled)
    return filled, fill_quality(dashboard_env, filled)


def unknown_for(dsn: str, asset: str, since: datetime, filled: Filled) -> None:
    """The asset's state unknown from ``since``: its minutes' time in state unknown (what the
    OEE flow writes when it has no state), rolled up again."""
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "UPDATE oee_minutes SET unknown_s = 60 - planned_downtime_s - not_scheduled_s, "
            "production_s = 0, setup_s = 0, breakdown_s = 0, minor_stop_s = 0, external_s = 0, "
            "idle_s = 0, processed = 0, defective = 0 WHERE asset = %s AND ts >= %s",
            (asset, since),
        )
        conn.execute("SELECT refresh_oee_rollups(NULL, %s, %s)", (filled.start, filled.end))


def the_pages_period(filled: Filled) -> dict[str, datetime]:
    """The page's default period, "Last 24 hours": to the minute after its now (the newest
    ingest-time data, the end of the fill)."""
    at = filled.end + timedelta(minutes=1)
    return {"start": at - timedelta(hours=24), "end": at}


def test_the_page_shows_the_failing_expectations_with_their_examples(
    plant: tuple[Filled, DqFilled],
) -> None:
    filled, dq = plant
    at = run_page(PAGE)
    period = the_pages_period(filled)
    failures = frame_with(at, "expectation")
    in_period = [f for f in dq.failures if period["start"] <= f[0] < period["end"]]
    assert len(in_period) == 2  # the third is 30 h old
    # one row for the window ('' asset) and one for the failing asset's share, newest first
    shown = list(zip(failures["suite"], failures["expectation"], failures["asset"], strict=True))
    wanted = [(s, c, who) for _, s, c, a, _ in in_period for who in ("", a)]
    assert sorted(shown) == sorted(wanted)
    assert list(failures["expectation"].iloc[:2]) == ["value_not_negative"] * 2
    assert "value_within_instrument_range" not in set(failures["expectation"])
    for (_, _suite, check, asset, value), examples in (
        (f, failures.loc[(failures["expectation"] == f[2]) & (failures["asset"] == f[3]),
                         "examples"].iloc[0])
        for f in in_period
    ):  # fmt: skip
        parsed = json.loads(examples)
        assert [(e["asset"], e["value"]) for e in parsed] == [(asset, value)], check
    # the examples of the newest failure, as a table of their own
    example = frame_with(at, "origin")
    assert list(example["value"]) == [-5]
    assert list(example["asset"]) == [filled.assets[-1]]
    # another failure picked: its examples
    pick = at.selectbox(key="dq-example")
    states = next(o for o in pick.options if "state_in_packml_set" in o)
    pick.select(states).run()
    assert not at.exception
    assert list(frame_with(at, "origin")["value"]) == ["Running"]


def test_the_kpis_equal_the_sql_functions(
    plant: tuple[Filled, DqFilled], dashboard_env: str
) -> None:
    filled, _ = plant
    at = run_page(PAGE)
    period = the_pages_period(filled)
    per_asset = rows(dashboard_env, "SELECT * FROM dq_kpis(%(start)s, %(end)s)", period)
    per_line = rows(dashboard_env, "SELECT * FROM line_dq_kpis(%(start)s, %(end)s)", period)
    threshold = float(rows(dashboard_env, "SELECT dq_coverage_threshold() AS t", {})["t"].iloc[0])
    assert len(per_asset) == len(filled.assets)
    for key, sql_rows in (("asset", per_asset), ("line", per_line)):
        if key == "line":
            at.segmented_control(key="dq-per").set_value("line").run()
            assert not at.exception
        shown = next(df.value for df in at.dataframe if "coverage %" in df.value.columns)
        assert key in shown.columns
        merged = shown.merge(sql_rows, on=key, suffixes=("", "_sql"))
        assert len(merged) == len(shown) == len(sql_rows), key
        for column, label in (
            ("coverage", "coverage %"),
            ("pv_bad_share", "PV bad %"),
            ("pv_uncertain_share", "PV uncertain %"),
            ("dead_letter_rate", "dead-letter rate %"),
        ):
            expected = (100 * pd.to_numeric(merged[column], errors="coerce")).round(2)
            assert merged[label].tolist() == pytest.approx(expected.tolist(), nan_ok=True), column
        for column in ("unknown_s", "staleness_s", "skew_s_p50", "skew_s_max", "events",
                       "rejected"):  # fmt: skip
            got = pd.to_numeric(merged[column], errors="coerce").tolist()
            want = pd.to_numeric(merged[f"{column}_sql"], errors="coerce").tolist()
            assert got == pytest.approx(want, nan_ok=True), (key, column)
        trust = merged["coverage"].astype(float) >= threshold
        assert merged["trustworthy"].tolist() == trust.tolist(), key
        # the asset whose state was unknown for its last three hours is below the threshold
        # (21 of 24 hours); its line is not (4 assets: 93 of 96 hours)
        below = list(sql_rows.loc[pd.to_numeric(sql_rows["coverage"]) < threshold, key])
        assert below == ([UNKNOWN_ASSET] if key == "asset" else [])
        label = f"{key.capitalize()}s below coverage"
        assert metric(at, label) == f"{len(below)} / {len(sql_rows)}"
        assert list(shown.loc[~shown["trustworthy"], key]) == below
    # the silent asset's staleness is the two hours it sent nothing (+ the page's minute)
    silent = per_asset[per_asset["asset"] == filled.silent_asset]
    assert float(silent["staleness_s"].iloc[0]) >= 2 * 3600


def test_suites_over_time_and_dead_letters_by_reason(
    plant: tuple[Filled, DqFilled], dashboard_env: str
) -> None:
    filled, _ = plant
    at = run_page(PAGE)
    period = the_pages_period(filled)
    status = rows(
        dashboard_env,
        "SELECT * FROM dq_suite_status(%(start)s, %(end)s, interval '1 hour')",
        period,
    )
    failed, windows = int(status["failed_windows"].sum()), int(status["windows"].sum())
    assert failed == 2
    assert metric(at, "Failed windows") == f"{failed:,} / {windows:,}"
    assert metric(at, "Suites with failures") == f"2 / {status['suite'].nunique()}"
    suites = frame_with(at, "failed_windows")
    assert dict(zip(suites["suite"], suites["failed_windows"], strict=True)) == (
        status.groupby("suite")["failed_windows"].sum().to_dict()
    )
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")  # the charts are drawn
    dead = rows(dashboard_env, "SELECT * FROM dead_letter_reasons(%(start)s, %(end)s)", period)
    shown = next(df.value for df in at.dataframe if list(df.value.columns) == list(dead.columns))
    assert len(shown) == len(dead) == 2  # 'invalid JSON' x 3, 'does not match the contract' x 2
    counts = sorted(int(v) for v in dead.select_dtypes("number").iloc[:, 0])
    assert counts == [2, 3]
    assert metric(at, "Dead letters") == str(filled.dead_letters)


def test_an_empty_database_says_that_nothing_was_validated(dashboard_env: str) -> None:
    at = run_page(PAGE)
    assert any("No data-quality results yet" in i.value for i in at.info)
    assert not at.dataframe


def test_a_stopped_quality_flow_is_called_out(dashboard_env: str) -> None:
    """Data that ends three hours before the wall clock: the page's now is the wall clock, the
    results are shown, and the page says the quality flow may have stopped."""
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)
    filled = fill(dashboard_env, end=end, days=1, max_assets=4)
    fill_quality(dashboard_env, filled)
    at = run_page(PAGE)
    assert any("is the quality flow running" in w.value for w in at.warning)
    failures = frame_with(at, "expectation")  # two, each with its window's and asset's row
    assert sorted(set(failures["expectation"])) == ["state_in_packml_set", "value_not_negative"]
    assert len(failures) == 4


def test_an_unreachable_database_gives_a_message(
    dashboard_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASBUILT_DASHBOARD_DSN", "postgresql://nobody@127.0.0.1:9/none")
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=RUN_TIMEOUT_S)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Cannot reach the database" in e.value for e in at.error)


# --- the OEE pages mark untrustworthy figures ----------------------------------------------------


@pytest.fixture
def low_coverage(dashboard_env: str) -> tuple[Filled, str]:
    """The plant with one asset whose state was unknown for the whole current shift so far:
    its coverage, and its line's, are below the threshold; the other lines' are not."""
    filled = fill(dashboard_env, end=plant_end(default_plant(), datetime.now(UTC)), days=2)
    asset = next(a for a in filled.assets if a.startswith("acme/basel/packaging/line1/"))
    with psycopg.connect(dashboard_env) as conn:
        shift = conn.execute(
            "SELECT start_ts FROM shifts WHERE start_ts <= %s ORDER BY start_ts DESC LIMIT 1",
            (filled.end,),
        ).fetchone()
    assert shift is not None
    unknown_for(dashboard_env, asset, shift[0], filled)
    return filled, asset


def view_row(dsn: str, view: str, key: str, value: str, at: datetime) -> pd.Series:
    frame = rows(
        dsn,
        f"SELECT v.coverage, v.trustworthy FROM {view} v WHERE v.{key} = %(value)s "
        "AND v.convention = 'iso22400' AND v.shift_start = (SELECT max(start_ts) FROM shifts "
        "WHERE start_ts <= %(at)s)",
        {"value": value, "at": at},
    )
    assert len(frame) == 1, (view, value)
    return frame.iloc[0]


def test_plant_overview_marks_the_untrustworthy_figures(
    low_coverage: tuple[Filled, str], dashboard_env: str
) -> None:
    filled, asset = low_coverage
    at = run_page("pages/plant_overview.py")
    row = view_row(dashboard_env, "oee_by_shift", "asset", asset, filled.end)
    assert not row["trustworthy"]
    assets = frame_with(at, "PackML state")
    marked = assets[assets["data"] != ""]
    assert list(marked["asset"]) == [asset.rsplit("/", 1)[-1]]
    assert list(marked["data"]) == [f"⚠ low data coverage {100 * row['coverage']:.0f} %"]
    assert marked["coverage %"].iloc[0] == pytest.approx(round(100 * row["coverage"], 1))
    lines = frame_with(at, "producing")
    line = asset.rsplit("/", 1)[0]
    line_row = view_row(dashboard_env, "line_oee_by_shift", "line", line, filled.end)
    assert not line_row["trustworthy"]
    assert list(lines.loc[lines["data"] != "", "line"]) == [line]
    # the site: 14 of 15 assets fully covered, above the threshold: no marker on its tiles
    site_row = view_row(dashboard_env, "site_oee_by_shift", "site", "acme/basel", filled.end)
    assert site_row["trustworthy"]
    assert [m.delta for m in at.metric if m.label == "Site OEE"] in ([None], [""])


def test_line_performance_marks_a_low_coverage_line_and_not_a_covered_one(
    low_coverage: tuple[Filled, str], dashboard_env: str
) -> None:
    filled, asset = low_coverage
    line = asset.rsplit("/", 1)[0]
    row = view_row(dashboard_env, "line_oee_by_shift", "line", line, filled.end)
    at = run_page("pages/line_performance.py", {"level": "line", "key": line})
    oee = next(m for m in at.metric if m.label == "OEE")
    assert oee.delta == ui.coverage_marker(row)
    assert oee.delta == f"⚠ low data coverage {100 * row['coverage']:.0f} %"
    other = next(
        a.rsplit("/", 1)[0] for a in filled.assets
        if a.startswith("acme/basel/packaging/") and not a.startswith(f"{line}/")
    )  # fmt: skip
    assert view_row(dashboard_env, "line_oee_by_shift", "line", other, filled.end)["trustworthy"]
    at = run_page("pages/line_performance.py", {"level": "line", "key": other})
    oee = next(m for m in at.metric if m.label == "OEE")
    assert oee.delta in (None, "")


def test_no_page_script_has_a_bare_string_that_streamlit_would_show() -> None:
    """Streamlit's magic writes every bare expression of a page script onto the page, a string
    documenting a constant too (the plant overview showed one): only the module docstring may
    be a bare string."""
    pages = sorted((Path(APP).parent / "pages").glob("*.py"))
    assert len(pages) == 5
    for page in pages:
        body = ast.parse(page.read_text()).body
        floating = [
            node.lineno for node in body[1:]
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        ]  # fmt: skip
        assert not floating, f"{page.name}: bare strings at lines {floating}"
