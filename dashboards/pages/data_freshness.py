"""Data freshness: per asset the last event time in each raw table, the silent assets, how far
the OEE minutes lag behind the raw events, and the dead letters by reason -- so a manager
knows when a number can be trusted."""

from __future__ import annotations

from datetime import timedelta

import altair as alt
import pandas as pd
import streamlit as st

from dashboards import components as ui
from dashboards import queries as q
from dashboards import timeutil

cfg = ui.config()
st.title("Data freshness")
silent_after = st.number_input(
    "An asset is silent after (minutes without any event)",
    min_value=1,
    max_value=24 * 60,
    value=5,
    key="fresh-silent",
)


@ui.live(cfg.refresh_s)
def page() -> None:
    with ui.guarded():
        _page()


def _page() -> None:
    clock = ui.clock(cfg.dsn)
    ui.clock_caption(clock, cfg.zone)
    if clock.latest_data is None:
        ui.empty(
            "No data yet: nothing has been written by the pipelines. Start the stack "
            "(`asbuilt up`) and check that the connector and the flows run (`asbuilt status`)."
        )
    events = q.last_events(cfg.dsn)
    if events.empty:
        ui.empty("No assets yet: the pipelines write the asset list from the plant model.")
    else:
        raw = events[list(q.RAW_TABLES)].apply(pd.to_datetime, utc=True)
        events["last_event"] = raw.max(axis=1)
        now = pd.Timestamp(clock.now)
        age_s = (now - events["last_event"]).dt.total_seconds()
        events["silent"] = age_s.isna() | (age_s > 60 * silent_after)
        events["age"] = [timeutil.duration(None if pd.isna(s) else float(s)) for s in age_s]
        oee_until = pd.to_datetime(events["oee_until"], utc=True)
        lag_s = (events["last_event"] - oee_until).dt.total_seconds()
        events["oee_behind"] = [
            timeutil.duration(None if pd.isna(s) else max(float(s), 0.0)) for s in lag_s
        ]
        silent = events[events["silent"]]
        a, b, c = st.columns(3)
        a.metric("Assets reporting", f"{len(events) - len(silent)} / {len(events)}")
        b.metric("Silent assets", len(silent))
        latest = clock.latest_data
        c.metric(
            "Latest data",
            "–" if latest is None else f"{latest.astimezone(cfg.zone):%H:%M:%S}",
            help="The latest OEE minute, state event or downtime update, plant time.",
        )
        if not silent.empty:
            st.warning(
                f"{len(silent)} asset(s) sent nothing for more than {silent_after} min: their "
                "figures for that time are incomplete. " + ", ".join(silent["asset"].head(10))
            )
        columns = ["asset", "line", "last_event", "age", "silent", "oee_until", "oee_behind",
                   *q.RAW_TABLES]  # fmt: skip
        ui.table(events[columns], "last events", cfg.zone)

    st.markdown("#### Dead letters by reason (last 24 hours)")
    since = ui.minute(clock.now) - timedelta(hours=24)
    dead = q.dead_letters(cfg.dsn, since)
    if dead.empty:
        ui.empty("No dead letters in the last 24 hours: every input could be read.")
        return
    totals = (
        dead.groupby(["reason", "topic"], as_index=False)
        .agg(dead_letters=("dead_letters", "sum"), last_ts=("last_ts", "max"))
        .sort_values("dead_letters", ascending=False)
    )
    st.metric("Dead letters", int(totals["dead_letters"].sum()))
    chart = ui.chart_times(dead, cfg.zone, "hour")
    st.altair_chart(
        alt.Chart(chart)
        .mark_bar()
        .encode(
            x=alt.X("yearmonthdatehours(hour):O", title="hour (plant time)"),
            y=alt.Y("dead_letters:Q", title="dead letters"),
            color=alt.Color("reason:N"),
            tooltip=["hour:T", "reason:N", "topic:N", "dead_letters:Q"],
        )
        .properties(height=220),
        width="stretch",
    )
    ui.table(totals, "dead letters by reason", cfg.zone)


page()
