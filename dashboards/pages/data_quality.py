"""Data quality: the great-expectations suites passing and failing over time, the failing
expectations with their examples, the data-quality KPIs per line and asset (coverage, unknown
time, staleness, clock skew, bad and uncertain OPC UA status, dead-letter rate) and the dead
letters by reason -- so a manager sees when data is wrong, late or missing.

Decision -- which "now": the quality flow validates windows of INGEST time (docs/sql.md), and
dead letters are stamped when they were received, so this page's clock is the later of the wall
clock and the latest ingest-time data it reads (``queries.dq_clock``): the rule of the other
pages (dashboards/timeutil.py) applied to this page's data. The other pages take the latest
event-time data; in the accelerated demo that runs hours ahead of ingest time, and a "last 24
hours" of data time would soon hold no validated window at all.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboards import components as ui
from dashboards import queries as q
from dashboards import timeutil

cfg = ui.config()
st.title("Data quality")

# Page constants are commented, not documented with bare strings: Streamlit's magic would show
# a bare string on the page.
STALE_AFTER = timedelta(minutes=5)  # newest result older (at the wall clock): flow stopped?
LEVELS = ["asset", "line"]  # the KPIs per asset (dq_kpis) or per line (line_dq_kpis)
KPI_PERCENT = {  # the KPI shares, shown in per cent under these column names
    "coverage": "coverage %",
    "pv_bad_share": "PV bad %",
    "pv_uncertain_share": "PV uncertain %",
    "dead_letter_rate": "dead-letter rate %",
}
FAILURE_COLUMNS = ("window_start", "window_end", "suite", "expectation", "asset",
                   "unexpected_count", "element_count", "unexpected_share", "observed_value",
                   "examples", "expectation_type", "kwargs", "validated_at")  # fmt: skip
# The KPI columns shown first (the rest of dq_kpis' columns follow: its components).
KPI_COLUMNS = ("asset", "line", "coverage %", "trustworthy", "unknown_s", "staleness_s",
               "skew_s_p50", "skew_s_max", "PV bad %", "PV uncertain %", "events", "rejected",
               "dead-letter rate %")  # fmt: skip


def bucket_s(period: timeutil.Period) -> int:
    """The chart's time bucket: about 12 to 48 columns for any period the picker offers."""
    hours = period.hours
    if hours <= 3:
        return 5 * 60
    if hours <= 48:
        return 3600
    if hours <= 8 * 24:
        return 6 * 3600
    return 24 * 3600


def _clock() -> timeutil.Clock:
    row = q.dq_clock(cfg.dsn).iloc[0]
    return timeutil.clock(
        ui.as_datetime(row["wall"]) or datetime.now(UTC),
        ui.as_datetime(row["dq_until"]),
        ui.as_datetime(row["kpi_until"]),
        ui.as_datetime(row["latest_dead_letter"]),
    )


def _json(value: Any) -> str:
    """A jsonb value as compact text (tables show it; CSV keeps it)."""
    if value is None or (not isinstance(value, list | dict) and pd.isna(value)):
        return ""
    return json.dumps(value, default=str, ensure_ascii=False, separators=(", ", ": "))


@ui.live(cfg.refresh_s)
def page() -> None:
    with ui.guarded():
        _page()


def _page() -> None:
    clock = _clock()
    ui.clock_caption(clock, cfg.zone)
    if clock.latest_data is None:
        ui.empty(
            "No data-quality results yet: nothing has been validated. The quality flow "
            "(`python -m pipelines.quality`, started by `asbuilt up` and `make demo`) writes a "
            "result for every minute of events once that minute has closed. Start the stack "
            "and check the flow with `asbuilt status`."
        )
        return
    if clock.data_age is not None and clock.data_age > STALE_AFTER:
        age = timeutil.duration(clock.data_age.total_seconds())
        st.warning(
            f"The newest data-quality result is {age} "
            "old: is the quality flow running? Check `asbuilt status`; the figures below end "
            "when it stopped."
        )
    assets = q.assets(cfg.dsn)
    site = None if assets.empty else str(assets["site"].iloc[0])
    period = ui.period_picker(cfg.dsn, clock, cfg.zone, site, "dq", "Last 24 hours")
    if period is None:
        return
    start, end = period.start, min(period.end, ui.minute(clock.now) + timedelta(minutes=1))
    if end <= start:
        ui.empty(f"{period.label} has not started yet.")
        return
    threshold = ui.as_float(q.dq_threshold(cfg.dsn).iloc[0]["threshold"])
    step_s = bucket_s(period)
    status = q.dq_suite_status(cfg.dsn, start, end, step_s)
    failures = q.dq_failures(cfg.dsn, start, end)
    # one KPI query per run: per line is the same function over summed components again
    per = st.segmented_control("KPIs per", LEVELS, default="asset", key="dq-per") or "asset"
    kpis = (q.dq_kpis if per == "asset" else q.line_dq_kpis)(cfg.dsn, start, end)
    dead = q.dead_letter_reasons(cfg.dsn, start, end)

    st.subheader(period.label)
    _tiles(status, kpis, per, dead, threshold)
    st.markdown("#### Suites over time")
    _suites(status, step_s)
    st.markdown("#### Failing expectations")
    _failures(failures)
    st.markdown("#### Data-quality KPIs")
    _kpis(kpis, per, threshold)
    st.markdown("#### Dead letters by reason")
    _dead_letters(dead)


def _tiles(
    status: pd.DataFrame,
    kpis: pd.DataFrame,
    per: str,
    dead: pd.DataFrame,
    threshold: float | None,
) -> None:
    windows = int(pd.to_numeric(status.get("windows"), errors="coerce").sum()) if len(status) else 0
    failed = (
        int(pd.to_numeric(status["failed_windows"], errors="coerce").sum()) if len(status) else 0
    )
    failing_suites = (
        status.loc[pd.to_numeric(status["failed_windows"]) > 0, "suite"].nunique()
        if len(status)
        else 0
    )
    coverage = pd.to_numeric(kpis.get("coverage"), errors="coerce") if len(kpis) else None
    low = 0 if coverage is None or threshold is None else int((coverage < threshold).sum())
    a, b, c, d = st.columns(4)
    a.metric("Suites with failures", f"{failing_suites} / {status['suite'].nunique()}"
             if len(status) else "0")  # fmt: skip
    b.metric(
        "Failed windows",
        f"{failed:,} / {windows:,}",
        help="Validated windows (a minute of one event kind, an hour of a derived table) "
        "with at least one failed expectation, of all validated windows.",
    )
    c.metric(
        f"{per.capitalize()}s below coverage",
        f"{low} / {len(kpis)}",
        help=(
            f"{per.capitalize()}s whose data coverage in the period is below the threshold "
            f"({timeutil.percent(threshold)}): their OEE figures are marked not trustworthy."
        ),
    )
    d.metric("Dead letters", f"{_dead_total(dead):,}")


def _dead_total(dead: pd.DataFrame) -> int:
    if dead.empty:
        return 0
    return int(pd.to_numeric(dead[_count_column(dead)], errors="coerce").sum())


def _count_column(dead: pd.DataFrame) -> str:
    for name in ("dead_letters", "count", "n"):
        if name in dead.columns:
            return name
    return str(dead.columns[1])


def _suites(status: pd.DataFrame, step_s: int) -> None:
    """One row per suite, one cell per time bucket: red when a window of the bucket failed,
    green when every window passed, blank when none was validated (the flow did not run)."""
    if status.empty:
        ui.empty("No suite validated a window in this period.")
        return
    df = status.copy()
    df["windows"] = pd.to_numeric(df["windows"], errors="coerce")
    df["failed_windows"] = pd.to_numeric(df["failed_windows"], errors="coerce")
    df = df[df["windows"] > 0]
    df["bucket_end"] = pd.to_datetime(df["bucket"], utc=True) + pd.Timedelta(seconds=step_s)
    df = ui.chart_times(df, cfg.zone, "bucket", "bucket_end")
    df["result"] = ["failing" if f > 0 else "passing" for f in df["failed_windows"]]
    chart = (
        alt.Chart(df)
        .mark_rect(stroke="white", strokeWidth=1)
        .encode(
            x=alt.X("bucket:T", title="plant time", axis=alt.Axis(format="%d %b %H:%M")),
            x2="bucket_end:T",
            y=alt.Y("suite:N", title=None, axis=alt.Axis(labelLimit=300, labelOverlap=False)),
            color=alt.Color(
                "result:N",
                title=None,
                scale=alt.Scale(domain=["passing", "failing"], range=["#2e7d32", "#c62828"]),
            ),
            tooltip=[
                "suite:N",
                alt.Tooltip("bucket:T", title="from", format="%d %b %H:%M"),
                "result:N",
                "windows:Q",
                alt.Tooltip("failed_windows:Q", title="failed windows"),
            ],
        )
        .properties(height=30 + 30 * df["suite"].nunique())
    )
    st.altair_chart(chart, width="stretch")
    totals = (
        status.groupby("suite", as_index=False)
        .agg(windows=("windows", "sum"), failed_windows=("failed_windows", "sum"))
        .sort_values(["failed_windows", "suite"], ascending=[False, True])
    )
    ui.table(totals, "suites", cfg.zone)


def _failures(failures: pd.DataFrame) -> None:
    if failures.empty:
        st.success("Every expectation passed in this period.", icon=":material/check_circle:")
        return
    order = [c for c in FAILURE_COLUMNS if c in failures.columns]
    shown = failures[order + [c for c in failures.columns if c not in order]].copy()
    for column in ("observed_value", "examples", "kwargs"):
        if column in shown.columns:
            shown[column] = shown[column].map(_json)
    st.caption(
        f"{len(failures):,} failed expectation(s), newest first"
        + (f" (the newest {q.ROW_LIMIT:,})" if len(failures) >= q.ROW_LIMIT else "")
        + ". A row with an asset is that asset's share of the window's failure."
    )
    ui.table(shown, "failing expectations", cfg.zone)
    if "examples" not in failures.columns:
        return
    choices = [
        i for i in failures.index
        if isinstance(failures.at[i, "examples"], list) and failures.at[i, "examples"]
    ]  # fmt: skip
    if not choices:
        return

    def label(i: int) -> str:
        r = failures.loc[i]
        at = ui.as_datetime(r.get("window_start"))
        when = "" if at is None else f"{at.astimezone(cfg.zone):%d %b %H:%M} "
        who = f" · {r['asset']}" if r.get("asset") else ""
        return f"{when}{r['suite']} · {r['expectation']}{who}"

    pick = st.selectbox("Examples of", choices, format_func=label, key="dq-example")
    examples = pd.json_normalize(failures.at[pick, "examples"])
    for column in examples.columns:
        if examples[column].map(lambda v: isinstance(v, list | dict)).any():
            examples[column] = examples[column].map(_json)
    ui.table(examples, "examples", cfg.zone)


def _kpis(kpis: pd.DataFrame, per: str, threshold: float | None) -> None:
    """The KPIs of every asset or line: coverage as bars against the threshold, every KPI in a
    table (the SQL function's values; shares in %)."""
    st.caption(
        "Coverage: share of the period for which the pipeline knew the asset's state "
        f"(below {timeutil.percent(threshold)} its OEE is not trustworthy). Unknown: seconds "
        "in state unknown. Staleness: end of the period − last event. Clock skew: ingest time − "
        "source time (negative: the source clock is ahead). Bad / uncertain: shares of process "
        "values by OPC UA status. Dead-letter rate: rejected ÷ (valid + rejected) messages. "
        "A line's KPIs come from the summed components of its assets."
    )
    if kpis.empty:
        ui.empty(f"No {per} with data-quality figures in this period.")
        return
    view = _kpi_view(kpis, threshold)
    chart = view.assign(short=view[per].str.rsplit("/", n=1).str[-1])
    bars = (
        alt.Chart(chart)
        .mark_bar()
        .encode(
            x=alt.X("coverage %:Q", title="data coverage %", scale=alt.Scale(domain=[0, 100])),
            y=alt.Y("short:N", title=None, sort=None, axis=alt.Axis(labelOverlap=False)),
            color=alt.condition(
                alt.datum["trustworthy"], alt.value("#2e7d32"), alt.value("#c62828")
            ),
            tooltip=[f"{per}:N", "coverage %:Q", "trustworthy:N"],
        )
    )
    layers: list[alt.Chart] = [bars]
    if threshold is not None:
        rule = pd.DataFrame({"threshold %": [100 * threshold]})
        layers.append(
            alt.Chart(rule).mark_rule(color="black", strokeDash=[4, 3]).encode(x="threshold %:Q")
        )
    st.altair_chart(alt.layer(*layers).properties(height=40 + 18 * len(chart)), width="stretch")
    ui.table(view, f"data quality per {per}", cfg.zone)


def _kpi_view(kpis: pd.DataFrame, threshold: float | None) -> pd.DataFrame:
    """The KPI rows as the tables show them: shares in % (two decimals), seconds as numbers,
    and whether the coverage reaches the threshold."""
    view = kpis.copy()
    for column in KPI_PERCENT:
        if column in view.columns:
            view[column] = (100 * pd.to_numeric(view[column], errors="coerce")).round(2)
    view = view.rename(columns=KPI_PERCENT)
    if "coverage %" in view.columns and threshold is not None:
        view["trustworthy"] = view["coverage %"] >= 100 * threshold
    first = [c for c in KPI_COLUMNS if c in view.columns]
    return view[first + [c for c in view.columns if c not in first]]


def _dead_letters(dead: pd.DataFrame) -> None:
    if dead.empty:
        ui.empty("No dead letters in this period: every message could be read.")
        return
    count = _count_column(dead)
    reason = "reason" if "reason" in dead.columns else str(dead.columns[0])
    st.altair_chart(
        alt.Chart(dead)
        .mark_bar()
        .encode(
            x=alt.X(f"{count}:Q", title="dead letters"),
            y=alt.Y(f"{reason}:N", title=None, sort="-x", axis=alt.Axis(labelLimit=400)),
            tooltip=[f"{reason}:N", f"{count}:Q"],
        )
        .properties(height=40 + 26 * len(dead)),
        width="stretch",
    )
    shown = dead.copy()
    for column in shown.columns:
        if shown[column].map(lambda v: isinstance(v, list | dict)).any():
            shown[column] = shown[column].map(_json)
    ui.table(shown, "dead letters by reason", cfg.zone)


page()
