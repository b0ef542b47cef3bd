"""Dashboards: a server-side run of each page (streamlit AppTest) over 30 days × 50 assets.

The database is filled through the pipelines' tables (``tests/dashboard_data.py``: one OEE
minute per asset and minute, the stops, the raw events, alerts, dead letters, and the quality
flow's results and KPI minutes) and rolled up by
``refresh_oee_rollups()``; the dashboards read it as their read-only role, as in the stack.

Per page: the median wall time of a full script run with an EMPTY query cache (every query of
the page really runs: the cost a refresh pays once per cache TTL), and with a warm cache (what
the other refreshes and viewers in the TTL pay). Target: < 500 ms per page, cold. The note of
each page lists the queries it issued and their median times (``dashboards.queries.QUERY_LOG``).
"""

from __future__ import annotations

import os
import statistics
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import streamlit as st
from streamlit.testing.v1 import AppTest

from asbuilt.plant import default_plant
from bench.harness import Context, Figure
from dashboards import queries
from dashboards.service import ensure_roles
from tests.dashboard_data import fill, fill_quality, plant_end

REPEATS = 1  # one fill; each page is timed RUNS times within the run
RUNS = 5
TARGET_MS = 500.0
APP = str(Path(__file__).resolve().parents[1] / "dashboards" / "app.py")
PAGES = {
    "plant overview": ("pages/plant_overview.py", None),
    "line performance (line, current shift)": (
        "pages/line_performance.py",
        {"level": "line", "key": "acme/basel/packaging/line1"},
    ),
    "line performance (site, current shift)": (
        "pages/line_performance.py",
        {"level": "site", "key": "acme/basel"},
    ),
    "line performance (site, week)": (
        "pages/line_performance.py",
        {"level": "site", "key": "acme/basel", "period": "Week"},
    ),
    "downtime and alerts (last 24 h)": ("pages/downtime_alerts.py", None),
    "downtime and alerts (week)": ("pages/downtime_alerts.py", {"period": "Week"}),
    "data freshness": ("pages/data_freshness.py", None),
    "data quality (last 24 h)": ("pages/data_quality.py", None),
    "data quality (week)": ("pages/data_quality.py", {"period": "Week"}),
}


def _filled(dsn: str, days: float, n_assets: int) -> tuple[int, float]:
    """Fill once (a second call finds the rows); (minute rows, seconds the fill took)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM oee_minutes").fetchone()
    if row and row[0]:
        return int(row[0]), 0.0
    began = time.perf_counter()
    plant = default_plant().with_lines(-(-(n_assets - 7) // 4))  # 7 OSD + 4 per line
    filled = fill(dsn, end=plant_end(plant, datetime.now(UTC)), days=days, plant=plant,
                  max_assets=n_assets)  # fmt: skip
    fill_quality(dsn, filled, failures_every=97)  # what the quality flow writes, some failures
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        row = conn.execute("SELECT count(*) FROM oee_minutes").fetchone()
    return int(row[0]) if row else 0, time.perf_counter() - began


def _run(
    page: str, query: dict[str, str] | None, cold: bool
) -> tuple[float, list[tuple[str, float]]]:
    if cold:
        st.cache_data.clear()
    query = dict(query or {})
    period = query.pop("period", None)  # a period other than the page's default
    at = AppTest.from_file(APP, default_timeout=600)
    at.query_params.update(query)
    if page != "pages/plant_overview.py":
        at.run()  # the default page first (navigation), not timed
        at.switch_page(page)
        if period is not None:
            at.run()
            key = {"pages/line_performance.py": "perf-period",
                   "pages/data_quality.py": "dq-period"}.get(page, "dt-period")  # fmt: skip
            at.segmented_control(key=key).set_value(period)
        if cold:
            st.cache_data.clear()
    del queries.QUERY_LOG[:]
    began = time.perf_counter()
    at.run()
    elapsed = 1000 * (time.perf_counter() - began)
    if at.exception or at.error:
        raise RuntimeError(f"{page}: {[e.value for e in (*at.exception, *at.error)]}")
    return elapsed, list(queries.QUERY_LOG)


def measure(ctx: Context) -> list[Figure]:
    days, n_assets = (3.0, 15) if ctx.quick else (30.0, 50)
    rows, fill_s = _filled(ctx.dsn, days, n_assets)
    roles = ensure_roles(ctx.dsn)
    os.environ["ASBUILT_DASHBOARD_DSN"] = roles.reader
    os.environ["ASBUILT_DASHBOARD_ACK_DSN"] = roles.acker
    st.cache_resource.clear()
    st.cache_data.clear()
    figures = []
    for name, (page, query) in PAGES.items():
        _run(page, query, cold=True)  # warm-up: imports, connection, plan caches
        cold: list[float] = []
        per_query: dict[str, list[float]] = defaultdict(list)
        for _ in range(RUNS):
            ms, log = _run(page, query, cold=True)
            cold.append(ms)
            for qname, qms in log:
                per_query[qname].append(qms)
        warm = [_run(page, query, cold=False)[0] for _ in range(RUNS)]
        issued = sum(len(v) for v in per_query.values()) // RUNS
        detail = ", ".join(
            f"{q} {statistics.median(v):.0f} ms"
            for q, v in sorted(per_query.items(), key=lambda kv: -statistics.median(kv[1]))
        )
        cold_ms = statistics.median(cold)
        print(f"[bench] dashboards {name}: cold {cold_ms:.0f} ms, warm "
              f"{statistics.median(warm):.0f} ms, {issued} queries: {detail}")  # fmt: skip
        figures.append(
            Figure(
                bench="dashboards page run (server side, AppTest)",
                metric=f"{name}: ms per run, empty query cache; {issued} queries",
                unit="ms",
                ours_name="page script + its queries",
                ours=cold_ms,
                peer_name="same page, warm query cache",
                peer=statistics.median(warm),
                higher_is_better=False,
                note=(
                    f"{name} ({'within' if cold_ms < TARGET_MS else 'OVER'} the "
                    f"{TARGET_MS:.0f} ms target): {detail}"
                ),
            )
        )
    figures.append(
        Figure(
            bench="dashboards page run (server side, AppTest)",
            metric=f"data: {days:g} days × {n_assets} assets",
            unit="minute rows",
            ours_name="oee_minutes rows",
            ours=float(rows),
            note=f"dashboards fill: {rows:,} OEE minutes"
            + (f", written in {fill_s:.0f} s" if fill_s else ""),
        )
    )
    return figures
