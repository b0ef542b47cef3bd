"""Plant overview: every line and asset with its current state (coloured by loss category), the
current shift's OEE with availability, performance and quality, a trend, and a click through to
each line. Refreshes in place every ``refresh_s``."""

from __future__ import annotations

from datetime import timedelta

import altair as alt
import pandas as pd
import streamlit as st

from dashboards import components as ui
from dashboards import queries as q
from dashboards import timeutil

cfg = ui.config()
st.title("Plant overview")
convention = st.radio(
    "OEE convention",
    ui.CONVENTIONS,
    format_func=ui.CONVENTION_LABELS.get,
    horizontal=True,
    key="overview-convention",
)


def _state(row: pd.Series) -> str:
    """The state category of an asset: its open stop's category, else production while the
    PackML state is Execute, else unknown; no data when it never reported a state."""
    if isinstance(row["category"], str):
        return row["category"]
    if row["state"] == "Execute":
        return "production"
    return "unknown" if isinstance(row["state"], str) else "no data"


def _percent(df: pd.DataFrame, column: str) -> pd.Series:
    return (100 * pd.to_numeric(df[column], errors="coerce")).round(1)


def _trend_chart(trend: pd.DataFrame) -> alt.Chart:
    return ui.trend_chart(trend, cfg.zone, "hour (plant time)", ui.TIME_AXIS, 220)


@ui.live(cfg.refresh_s)
def overview() -> None:
    with ui.guarded():
        _overview()


def _overview() -> None:
    clock = ui.clock(cfg.dsn)
    ui.clock_caption(clock, cfg.zone)
    assets = q.assets(cfg.dsn)
    if assets.empty:
        ui.empty(
            "No assets yet. The pipelines write the plant's assets and shift calendar when "
            "they start: start the stack with `asbuilt up` (or `make demo`)."
        )
        return
    at = ui.minute(clock.now) + timedelta(minutes=1)
    states = q.current_states(cfg.dsn, at)
    states["state_category"] = states.apply(_state, axis=1)
    for site in assets["site"].drop_duplicates():
        st.header(site)
        shift = q.shift_at(cfg.dsn, site, at)
        if shift.empty:
            ui.empty(f"No shift of {site} has started yet, so there is no current-shift OEE.")
            continue
        row = shift.iloc[0]
        period = timeutil.shift_period(
            str(row["shift"]), ui.required(row["start_ts"]), ui.required(row["end_ts"]), cfg.zone
        )
        running = bool(row["running"])
        st.subheader(("Current shift: " if running else "Last shift (none running now): ")
                     + period.label)  # fmt: skip
        site_oee = q.shift_oee(cfg.dsn, "site", period.start, convention)
        site_row = site_oee[site_oee["site"] == site]
        if site_row.empty:
            ui.empty(
                f"No OEE for {period.label} yet: the OEE pipeline writes a minute once it "
                "closes (after the allowed lateness). Check the Data freshness page."
            )
        else:
            ui.kpi_tiles(site_row.iloc[0], prefix="Site ")
            trend = q.trend(
                cfg.dsn, "site", site, period.start, min(period.end, at), convention, "hour"
            )
            if not trend.empty:
                st.altair_chart(_trend_chart(trend), width="stretch")
        line_oee = q.shift_oee(cfg.dsn, "line", period.start, convention)
        asset_oee = q.shift_oee(cfg.dsn, "asset", period.start, convention)
        site_assets = states[states["site"] == site].assign(
            line=lambda d: d["line"].fillna("(no line)")
        )
        _lines(site, site_assets, line_oee)
        _assets(site, site_assets, asset_oee)


# Which state a line shows: the most severe of its assets' states. (A comment, not a string:
# Streamlit's magic would show a bare string on the page.)
SEVERITY = ("breakdown", "unknown", "setup", "external", "minor_stop", "idle",
            "planned_downtime", "not_scheduled", "production", "no data")  # fmt: skip


def _lines(site: str, assets: pd.DataFrame, line_oee: pd.DataFrame) -> None:
    """One row per line: its worst asset state (coloured), how many assets produce, and the
    line's current-shift OEE with A/P/Q; a link to each line's performance page."""
    st.markdown("#### Lines")
    rank = {c: i for i, c in enumerate(SEVERITY)}
    summary = (
        assets.groupby("line", sort=False)
        .agg(
            state=("state_category", lambda c: min(c, key=lambda x: rank.get(x, 0))),
            assets=("asset", "count"),
            producing=("state_category", lambda c: int((c == "production").sum())),
        )
        .reset_index()
        .merge(line_oee, on="line", how="left")
    )
    view = pd.DataFrame(
        {
            "line": summary["line"],
            "state": summary["state"],
            "producing": summary["producing"].astype(str) + " / " + summary["assets"].astype(str),
            "OEE %": _percent(summary, "oee"),
            "A %": _percent(summary, "availability"),
            "P %": _percent(summary, "performance"),
            "Q %": _percent(summary, "quality"),
        }
    ).join(ui.coverage_columns(summary))
    ui.table(view, f"lines {site}", cfg.zone, colour_by="state")
    lines = [line for line in summary["line"] if line != "(no line)"]
    for start in range(0, len(lines), 4):
        for col, line in zip(st.columns(4), lines[start : start + 4], strict=False):
            col.page_link(
                "pages/line_performance.py",
                label=f"{line.rsplit('/', 1)[-1]} →",
                help=f"Line performance of {line}",
                query_params={"level": "line", "key": line},
            )


def _assets(site: str, assets: pd.DataFrame, asset_oee: pd.DataFrame) -> None:
    """Every asset: its state coloured by loss category, its stop and the shift's OEE."""
    st.markdown("#### Assets")
    merged = assets.merge(asset_oee, on="asset", how="left")
    view = pd.DataFrame(
        {
            "line": merged["line"].str.rsplit("/", n=1).str[-1],
            "asset": merged["asset"].str.rsplit("/", n=1).str[-1],
            "state": merged["state_category"],
            "PackML state": merged["state"],
            "stop reason": [
                f"{r} {cfg.reasons.get(r, '')}".strip() if isinstance(r, str) else None
                for r in merged["stop_reason"]
            ],
            "stopped since": merged["stopped_since"],
            "OEE %": _percent(merged, "oee"),
            "A %": _percent(merged, "availability"),
            "P %": _percent(merged, "performance"),
            "Q %": _percent(merged, "quality"),
        }
    ).join(ui.coverage_columns(merged))
    ui.table(view, f"assets {site}", cfg.zone, colour_by="state")


overview()
ui.legend()
