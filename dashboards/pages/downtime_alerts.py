"""Downtime and alerts: Pareto by reason and by loss category (duration and count), MTBF/MTTR
per asset, the stops open right now, active and recent alerts, and acknowledging an alert (who
and when: the dashboards' only write, as the narrowly-granted acknowledging role)."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from dashboards import components as ui
from dashboards import queries as q
from dashboards import timeutil

cfg = ui.config()
st.title("Downtime and alerts")


@ui.live(cfg.refresh_s)
def page() -> None:
    with ui.guarded():
        _page()


def _page() -> None:
    clock = ui.clock(cfg.dsn)
    ui.clock_caption(clock, cfg.zone)
    assets = q.assets(cfg.dsn)
    lines = sorted(assets["line"].dropna().unique()) if not assets.empty else []
    c1, c2 = st.columns([2, 3])
    scope = c1.selectbox("Scope", ["whole plant", *lines], key="dt-scope")
    like = "%" if scope == "whole plant" else f"{scope}/%"
    site = None if assets.empty else str(assets["site"].iloc[0])
    with c2:
        period = ui.period_picker(cfg.dsn, clock, cfg.zone, site, "dt", "Last 24 hours")
    if period is None:
        return
    st.subheader(f"Downtime — {period.label}")
    now = ui.minute(clock.now)
    by_reason = q.pareto(cfg.dsn, period.start, period.end, "reason", like, now)
    open_all = q.open_downtimes(cfg.dsn, now)
    open_here = open_all if scope == "whole plant" else open_all[open_all["line"] == scope]
    active_all = q.alerts_active(cfg.dsn)
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Downtime", timeutil.duration(float(by_reason["duration_s"].sum())))
    m2.metric("Stops", int(by_reason["stops"].sum()) if not by_reason.empty else 0)
    m3.metric("Stops open now", len(open_here))
    m4.metric("Active alerts", len(active_all))

    for by, title in (("reason", "by stop reason"), ("loss", "by loss category")):
        st.markdown(f"#### Pareto {title}")
        pareto = q.pareto(cfg.dsn, period.start, period.end, by, like, now)
        if pareto.empty:
            ui.empty(f"No stops in {period.label} ({scope}).")
            continue
        if by == "reason":
            pareto["key"] = [
                f"{k} {cfg.reasons.get(k, '')}".strip() for k in pareto["key"].astype(str)
            ]
        pareto["hours"] = pd.to_numeric(pareto["duration_s"]) / 3600
        dur, cnt = st.columns(2)
        dur.altair_chart(_pareto(pareto, "hours", "duration (h)"), width="stretch")
        cnt.altair_chart(_pareto(pareto, "stops", "stops"), width="stretch")
        ui.table(pareto.drop(columns=["hours"]), f"pareto {by}", cfg.zone)

    st.markdown("#### MTBF and MTTR per asset")
    ui.definition("MTBF")
    mtbf = q.mtbf_mttr(cfg.dsn, period.start, period.end, like)
    if mtbf.empty:
        ui.empty(f"No equipment failures started in {period.label} ({scope}).")
    else:
        per_asset = mtbf[mtbf["all_reasons"]].drop(columns=["stop_reason", "all_reasons"])
        per_asset = per_asset.assign(
            MTBF=[timeutil.duration(ui.as_float(v)) for v in per_asset["mtbf_s"]],
            MTTR=[timeutil.duration(ui.as_float(v)) for v in per_asset["mttr_s"]],
        )
        ui.table(per_asset, "mtbf mttr", cfg.zone)
        with st.expander("Per asset and stop reason"):
            ui.table(mtbf[~mtbf["all_reasons"]], "mtbf mttr by reason", cfg.zone)

    st.markdown("#### Stops open now")
    open_now = open_here
    if open_now.empty:
        ui.empty("No stop is open right now.")
    else:
        open_now = open_now.assign(
            running=[timeutil.duration(ui.as_float(v)) for v in open_now["running_s"]]
        )
        ui.table(open_now, "open stops", cfg.zone)

    st.markdown("#### Active alerts")
    active = active_all
    if active.empty:
        ui.empty("No active alerts.")
    else:
        ui.table(active, "active alerts", cfg.zone)
    st.markdown("#### Recent alerts (7 days)")
    recent = q.alerts_recent(cfg.dsn)
    if recent.empty:
        ui.empty("No alerts in the last 7 days.")
    else:
        ui.table(recent, "recent alerts", cfg.zone)


def _pareto(df: pd.DataFrame, field: str, title: str) -> alt.Chart:
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X(f"{field}:Q", title=title),
            y=alt.Y(
                "key:N", sort="-x", title=None, axis=alt.Axis(labelOverlap=False, labelLimit=180)
            ),
            tooltip=[
                "key:N",
                "stops:Q",
                alt.Tooltip("hours:Q", format=".2f"),
                alt.Tooltip("share:Q", format=".1%"),
            ],
        )
        .properties(height=max(120, 24 * len(df)))
    )


def acknowledge() -> None:
    """Acknowledge an active alert: records who and when (not part of the live refresh, so a
    refresh never resets what is being typed)."""
    st.markdown("#### Acknowledge an alert")
    if cfg.ack_dsn is None:
        st.caption(
            "Acknowledging is off: the dashboards run without the acknowledging role "
            "(ASBUILT_DASHBOARD_ACK_DSN). `asbuilt up` sets it up."
        )
        return
    with ui.guarded():
        active = q.alerts_active(cfg.dsn)
        pending = active[active["acked_by"].isna()] if not active.empty else active
        if pending.empty:
            ui.empty("Every active alert is acknowledged.")
            return
        labels = {
            r.alert_id: f"{r.severity} · {r.rule} · {r.asset} · {r.message}"
            for r in pending.itertuples()
        }
        with st.form("ack"):
            alert_id = st.selectbox("Alert", list(labels), format_func=labels.get)
            who = st.text_input("Your name", key="ack-who")
            done = st.form_submit_button("Acknowledge")
        if done:
            if not who.strip():
                st.warning("Type your name: an acknowledgement records who made it.")
            elif q.acknowledge_alert(cfg.ack_dsn, str(alert_id), who.strip()):
                st.success(f"Acknowledged by {who.strip()}.")
            else:
                st.info("Someone acknowledged it first; the first acknowledgement stands.")


page()
acknowledge()
