"""Line performance: OEE and its factors for a site, line or asset over a period (current shift,
a shift, a day, a week, custom days); the trend by hour or shift; the loss waterfall (planned
time → run time → net time → fully productive time); the six big losses; the stops on a
timeline; counts against target; the convention selector with each figure's definition."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from dashboards import components as ui
from dashboards import queries as q

cfg = ui.config()
st.title("Line performance")

LOSS_LABELS = {
    "equipment_failure": "Equipment failure",
    "setup_adjustment": "Setup and adjustment",
    "idling_minor_stops": "Idling and minor stops",
    "reduced_speed": "Reduced speed",
    "process_defects": "Process defects",
    "reduced_yield": "Reduced yield",
    "unknown": "Unclassified stops",
}


@ui.live(cfg.refresh_s)
def page() -> None:
    with ui.guarded():
        _page()


def _page() -> None:
    clock = ui.clock(cfg.dsn)
    ui.clock_caption(clock, cfg.zone)
    assets = q.assets(cfg.dsn)
    if assets.empty:
        ui.empty("No assets yet: start the stack (`asbuilt up`); the pipelines write them.")
        return
    choices: dict[q.Level, list[str]] = {
        "site": sorted(assets["site"].dropna().unique()),
        "line": sorted(assets["line"].dropna().unique()),
        "asset": list(assets["asset"]),
    }
    params = st.query_params
    wanted_level = params.get("level", "line")
    level_default = wanted_level if wanted_level in q.LEVELS and choices[wanted_level] else "site"
    c1, c2, c3 = st.columns([1, 3, 2])
    level = c1.selectbox("Level", q.LEVELS, index=q.LEVELS.index(level_default), key="perf-level")
    options = choices[level]
    if not options:
        ui.empty(f"No {level} in the plant model's assets.")
        return
    wanted_key = params.get("key")
    key = c2.selectbox(
        level.capitalize(),
        options,
        index=options.index(wanted_key) if wanted_key in options else 0,
        key=f"perf-key-{level}",
    )
    convention = c3.radio(
        "OEE convention",
        ui.CONVENTIONS,
        format_func=ui.CONVENTION_LABELS.get,
        horizontal=True,
        key="perf-convention",
    )
    site = _site_of(assets, level, key)
    period = ui.period_picker(cfg.dsn, clock, cfg.zone, site, "perf", "Current shift")
    if period is None:
        return
    st.subheader(f"{key} — {period.label}")
    kpis = q.period_kpis(cfg.dsn, level, key, period.start, period.end)
    row = kpis[kpis["convention"] == convention]
    if row.empty:
        ui.empty(
            f"No OEE data for {key} in {period.label}. Pick another period, or check the Data "
            "freshness page if the pipeline should have written some."
        )
        return
    r = row.iloc[0]
    ui.kpi_tiles(r)
    st.caption(
        f"{int(r['minutes']):,} asset-minutes from {int(r['assets'])} asset(s). "
        f"Convention {ui.CONVENTION_LABELS[convention]}."
    )

    by = st.segmented_control("Trend by", ["hour", "shift"], default="hour", key="perf-by")
    trend = q.trend(cfg.dsn, level, key, period.start, period.end, convention, by or "hour")
    st.markdown("#### OEE and its factors")
    if trend.empty:
        ui.empty(f"No {by}ly figures in {period.label} yet.")
    else:
        st.altair_chart(_trend(trend), width="stretch")

    left, right = st.columns(2)
    with left:
        st.markdown("#### Loss waterfall")
        ui.definition("Planned time")
        st.altair_chart(_waterfall(r), width="stretch")
    with right:
        st.markdown("#### Six big losses")
        losses = q.six_big_losses(cfg.dsn, level, key, period.start, period.end)
        if losses.empty:
            ui.empty("No losses recorded in this period.")
        else:
            losses["loss"] = losses["loss"].map(LOSS_LABELS).fillna(losses["loss"])
            losses["hours"] = pd.to_numeric(losses["seconds"], errors="coerce") / 3600
            st.altair_chart(
                alt.Chart(losses.dropna(subset=["hours"]))
                .mark_bar()
                .encode(
                    x=alt.X("hours:Q", title="hours"),
                    y=alt.Y("loss:N", sort=list(LOSS_LABELS.values()), title=None),
                    color=alt.Color("factor:N", title="OEE factor"),
                    tooltip=["loss:N", "factor:N", alt.Tooltip("hours:Q", format=".2f")],
                )
                .properties(height=220),
                width="stretch",
            )
            ui.table(losses[["loss", "factor", "seconds"]], "six big losses", cfg.zone)

    st.markdown("#### Stops on a timeline")
    stops = q.stops_timeline(cfg.dsn, level, key, period.start, period.end, ui.minute(clock.now))
    if stops.empty:
        ui.empty(f"No stops in {period.label}: the assets ran (or sent no data).")
    else:
        _timeline(stops)

    st.markdown("#### Counts against target")
    st.caption(
        "Target = planned time / ideal cycle time: the units the planned time allows at the "
        "ideal speed."
    )
    counts = q.counts_vs_target(cfg.dsn, level, key, period.start, period.end, convention)
    if counts.empty:
        ui.empty("No counts in this period.")
    else:
        counts["short name"] = counts["asset"].str.rsplit("/", n=1).str[-1]
        long = counts.melt(
            id_vars="short name", value_vars=["processed", "good", "target"],
            var_name="count", value_name="units",
        )  # fmt: skip
        st.altair_chart(
            alt.Chart(long)
            .mark_bar()
            .encode(
                x=alt.X("units:Q"),
                y=alt.Y("short name:N", title=None),
                color=alt.Color("count:N", title=None),
                yOffset="count:N",
                tooltip=["short name:N", "count:N", "units:Q"],
            ),
            width="stretch",
        )
        ui.table(counts.drop(columns=["short name"]), "counts vs target", cfg.zone)


def _site_of(assets: pd.DataFrame, level: str, key: str) -> str | None:
    match = assets[assets[level] == key]
    return None if match.empty else str(match["site"].iloc[0])


def _trend(trend: pd.DataFrame) -> alt.Chart:
    return ui.trend_chart(trend, cfg.zone, "plant time", "%d %b %H:%M", 260)


def _waterfall(r: pd.Series) -> alt.Chart:
    """Planned time, minus the availability loss = run time, minus the performance loss = net
    time, minus the quality loss = fully productive time (hours)."""
    base, run = ui.as_float(r["base_s"]) or 0.0, ui.as_float(r["run_s"]) or 0.0
    net, good = ui.as_float(r["ideal_s"]) or 0.0, ui.as_float(r["good_ideal_s"]) or 0.0
    bars = [
        ("1 planned time", 0.0, base, "time"),
        ("2 availability loss", run, base, "loss"),
        ("3 run time", 0.0, run, "time"),
        ("4 performance loss", net, run, "loss"),
        ("5 net time", 0.0, net, "time"),
        ("6 quality loss", good, net, "loss"),
        ("7 fully productive", 0.0, good, "time"),
    ]
    df = pd.DataFrame(
        [(n, lo / 3600, hi / 3600, k, (hi - lo) / 3600) for n, lo, hi, k in bars],
        columns=["step", "from_h", "to_h", "kind", "hours"],
    )
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X(
                "step:N",
                title=None,
                sort=None,
                axis=alt.Axis(labelAngle=-35, labelOverlap=False, labelLimit=200),
            ),
            y=alt.Y("from_h:Q", title="hours"),
            y2="to_h:Q",
            color=alt.Color(
                "kind:N",
                scale=alt.Scale(domain=["time", "loss"], range=["#2e7d32", "#c62828"]),
                legend=None,
            ),
            tooltip=["step:N", alt.Tooltip("hours:Q", format=".2f")],
        )
        .properties(height=260)
    )


def _timeline(stops: pd.DataFrame) -> None:
    df = ui.chart_times(stops, cfg.zone, "start_ts", "end_ts")
    df["asset"] = df["asset"].str.rsplit("/", n=1).str[-1]
    df["reason"] = [
        f"{r} {cfg.reasons.get(r, '')}".strip() if isinstance(r, str) else ""
        for r in df["stop_reason"]
    ]
    domain = [c for c in ui.CATEGORY_COLOURS if c not in ("no data",)]
    chart = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("start_ts:T", title="plant time", axis=alt.Axis(format="%d %b %H:%M")),
            x2="end_ts:T",
            y=alt.Y("asset:N", title=None, axis=alt.Axis(labelOverlap=False)),
            color=alt.Color(
                "category:N",
                scale=alt.Scale(domain=domain, range=[ui.CATEGORY_COLOURS[c] for c in domain]),
                title="stop category",
            ),
            tooltip=["asset:N", "category:N", "reason:N", "start_ts:T", "end_ts:T", "open:N"],
        )
        .properties(height=40 + 30 * df["asset"].nunique())
    )
    st.altair_chart(chart, width="stretch")
    with st.expander(f"The {len(stops)} stops as a table"):
        ui.table(stops, "stops", cfg.zone)


page()
