"""What every page shares: configuration, the clock, error and empty-state handling, tables with
CSV export, KPI tiles with their definitions, the loss-category colours.

Configuration is read here, at the edge (the Streamlit entry point), from the environment that
:func:`dashboards.service.dashboard_service` gives the process:

- ``ASBUILT_DASHBOARD_DSN``: the read-only role's DSN. Unset (``streamlit run`` by hand): the
  application database of the ``ASBUILT_*`` settings, still with read-only transactions.
- ``ASBUILT_DASHBOARD_ACK_DSN``: the acknowledging role's DSN; unset: acknowledging is off.
- ``ASBUILT_DASHBOARD_REFRESH_S``: how often the live parts of the pages refresh (default 15).
- ``ASBUILT_PLANT_MODEL``: the plant model, for its time zone and stop reason names.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

import altair as alt
import pandas as pd
import psycopg
import streamlit as st

from asbuilt.plant import default_plant, load_plant
from dashboards import queries, timeutil

CATEGORY_COLOURS: Final = {
    "production": "#2e7d32",
    "setup": "#f9a825",
    "breakdown": "#c62828",
    "minor_stop": "#ef6c00",
    "external": "#6a1b9a",
    "idle": "#90a4ae",
    "unknown": "#616161",
    "planned_downtime": "#1565c0",
    "not_scheduled": "#cfd8dc",
    "no data": "#ffffff",
}
TIME_AXIS: Final = "%H:%M"
DARK_CATEGORIES: Final = frozenset({"production", "breakdown", "external", "unknown",
                                    "planned_downtime"})  # fmt: skip


def category_style(category: object) -> str:
    """CSS of a table cell holding a loss category: the category's colour."""
    colour = CATEGORY_COLOURS.get(str(category))
    if colour is None:
        return ""
    text = "white" if category in DARK_CATEGORIES else "black"
    return f"background-color: {colour}; color: {text}"


def legend() -> None:
    """The state colours, as coloured labels."""
    st.markdown(
        "State colours: "
        + " ".join(
            f'<span style="{category_style(c)}; padding: 1px 6px; border-radius: 4px">{c}</span>'
            for c in CATEGORY_COLOURS
        ),
        unsafe_allow_html=True,
    )


CONVENTIONS: Final = ("iso22400", "oee.com")
CONVENTION_LABELS: Final = {"iso22400": "ISO 22400-2", "oee.com": "oee.com (Vorne / TPM)"}

DEFINITIONS: Final = {
    "OEE": (
        "**OEE** = fully productive time / planned time = good units × ideal cycle time / "
        "planned time = availability × performance × quality. "
        "ISO 22400-2: planned time is the planned busy time PBT (APT + AUST + ADET + ADOT); "
        "oee.com: the same planned production time."
    ),
    "Availability": (
        "**Availability** = run time / planned time. ISO 22400-2: APT / PBT -- setup (AUST), "
        "breakdowns and minor stops (ADET) and other stops (ADOT) are availability losses. "
        "oee.com: minor stops count as run time (they are a performance loss there)."
    ),
    "Performance": (
        "**Performance** = ideal time of the units made / run time = processed × ideal cycle "
        "time / run time. Above 100 % means the ideal cycle time is set too slow: it is flagged, "
        "never clipped."
    ),
    "Quality": "**Quality** = good units / processed units (good = processed − defective).",
    "Planned time": (
        "**Planned time** (PBT): the time the asset was scheduled to produce -- production, "
        "setup, breakdowns, minor stops and other stops; planned downtime (breaks, maintenance) "
        "and unscheduled time are outside it."
    ),
    "MTBF": (
        "**MTBF** = production time (APT) in the period / failures that started in it (stops "
        "with loss equipment_failure). **MTTR** = mean duration of those failures."
    ),
}


@dataclass(frozen=True)
class Config:
    dsn: str
    ack_dsn: str | None
    zone: ZoneInfo
    refresh_s: float
    reasons: dict[str, str]
    read_only_role: bool


@st.cache_resource(show_spinner=False)
def config() -> Config:
    """The dashboards' configuration, read once per process from the environment."""
    from asbuilt.services.stack import database_dsn
    from asbuilt.settings import Settings

    settings = Settings()
    plant = (
        load_plant(settings.plant_model) if settings.plant_model is not None else default_plant()
    )
    dsn = os.environ.get("ASBUILT_DASHBOARD_DSN")
    return Config(
        dsn=dsn or database_dsn(settings),
        ack_dsn=os.environ.get("ASBUILT_DASHBOARD_ACK_DSN") or None,
        zone=plant.calendar.zone,
        refresh_s=float(os.environ.get("ASBUILT_DASHBOARD_REFRESH_S", "15")),
        reasons=dict(plant.reasons),
        read_only_role=dsn is not None,
    )


def clock(dsn: str) -> timeutil.Clock:
    """The dashboards' now: the later of the database's clock and the latest data time."""
    row = queries.data_clock(dsn).iloc[0]
    return timeutil.clock(
        as_datetime(row["wall"]) or datetime.now(UTC),
        as_datetime(row["oee_until"]),
        as_datetime(row["latest_state"]),
        as_datetime(row["latest_downtime"]),
    )


def as_datetime(value: Any) -> datetime | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).to_pydatetime()


def required(value: Any) -> datetime:
    """A timestamp of a NOT NULL column."""
    ts = as_datetime(value)
    if ts is None:
        msg = "a NOT NULL timestamp column came back empty"
        raise ValueError(msg)
    return ts


def minute(ts: datetime) -> datetime:
    """``ts`` rounded down to the minute: time arguments of cached queries, so they hit."""
    return ts.replace(second=0, microsecond=0)


@contextmanager
def guarded() -> Iterator[None]:
    """Turn what the database can say into a clear message on the page, never a traceback."""
    try:
        yield
    except psycopg.errors.UndefinedTable as exc:
        st.error(
            f"The database has not been migrated to the schema the dashboards read ({exc}). "
            "Fix: run `asbuilt up` (it migrates) or `asbuilt migrate`."
        )
    except psycopg.errors.UndefinedFunction as exc:
        st.error(
            f"A documented SQL function is missing ({exc}). Fix: run `asbuilt up` or "
            "`asbuilt migrate` so the views and functions of sql/repeatable/ are re-applied."
        )
    except psycopg.errors.InsufficientPrivilege as exc:
        st.error(
            f"The dashboards' database role may not read this ({exc}). Fix: restart the "
            "dashboards with `asbuilt up`, which grants the read-only role SELECT again."
        )
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        st.error(
            f"Cannot reach the database: {first}. Fix: start the stack (`asbuilt up`) or check "
            "ASBUILT_DB_DSN; this page retries on its next refresh."
        )


def localize(df: pd.DataFrame, zone: ZoneInfo) -> pd.DataFrame:
    """Every timestamp column converted from UTC to the plant-local zone (for display)."""
    out = df.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.DatetimeTZDtype):
            out[column] = out[column].dt.tz_convert(zone)
        elif out[column].dtype == object and len(out) and isinstance(out[column].iloc[0], datetime):
            out[column] = pd.to_datetime(out[column], utc=True).dt.tz_convert(zone)
    return out


def table(
    df: pd.DataFrame, name: str, zone: ZoneInfo, colour_by: str | None = None, **kwargs: Any
) -> None:
    """A table in plant-local time with a CSV download button (UTC ISO times in the file);
    ``colour_by``: a column of loss categories, shown on the category's colour."""
    shown: Any = localize(df, zone)
    if colour_by is not None:
        shown = shown.style.map(category_style, subset=[colour_by])
    st.dataframe(shown, hide_index=True, **kwargs)
    st.download_button(
        f"Download {name} (CSV)",
        df.to_csv(index=False).encode(),
        file_name=f"{name.replace(' ', '_')}.csv",
        mime="text/csv",
        key=f"csv-{name}",
        icon=":material/download:",
    )


def definition(label: str) -> None:
    """The definition of a figure, one click away."""
    with st.popover(label, icon=":material/info:"):
        st.markdown(DEFINITIONS[label])


def kpi_tiles(row: pd.Series | None, prefix: str = "") -> None:
    """OEE, availability, performance and quality as metrics, each with its definition; a row
    whose ``trustworthy`` is false carries the low-coverage marker under every figure."""
    note = None if row is None else coverage_marker(row)
    cols = st.columns(4)
    for col, (label, field) in zip(
        cols,
        (
            ("OEE", "oee"),
            ("Availability", "availability"),
            ("Performance", "performance"),
            ("Quality", "quality"),
        ),
        strict=True,
    ):
        value = None if row is None else as_float(row.get(field))
        with col:
            st.metric(
                f"{prefix}{label}",
                timeutil.percent(value),
                delta=note,
                delta_color="off",
                delta_arrow="off",
                help=None if note is None else LOW_COVERAGE_HELP,
            )
            definition(label)
    if row is not None and bool(row.get("performance_over_1")):
        st.warning(
            "Performance is above 100 %: the ideal cycle time of an asset is slower than what "
            "it really does. The figure is shown as measured, not clipped; fix the ideal cycle "
            "time in the plant model."
        )


LOW_COVERAGE_HELP: Final = (
    "Not trustworthy: for part of this period the pipeline did not know the asset's state "
    "(no data, or state unknown). Coverage = known seconds / elapsed seconds of the period; "
    "below the configured threshold (ASBUILT_DQ_MIN_COVERAGE) a figure is marked. See the "
    "Data quality page."
)


def coverage_marker(row: Mapping[str, Any] | pd.Series) -> str | None:
    """``⚠ low data coverage 62 %`` for an OEE view row whose ``trustworthy`` is false; None
    for a trustworthy row or one without the column (NULL: nothing to judge)."""
    trusted = row.get("trustworthy")
    if trusted is None or pd.isna(trusted) or bool(trusted):
        return None
    coverage = as_float(row.get("coverage"))
    shown = "–" if coverage is None else f"{100 * coverage:.0f} %"
    return f"⚠ low data coverage {shown}"


def coverage_columns(df: pd.DataFrame) -> pd.DataFrame:
    """The two columns a table of OEE figures gets: ``coverage %`` and ``data`` (the marker,
    empty when the row is trustworthy)."""
    out = pd.DataFrame(index=df.index)
    if "coverage" in df.columns:
        out["coverage %"] = (100 * pd.to_numeric(df["coverage"], errors="coerce")).round(1)
    else:
        out["coverage %"] = pd.Series(float("nan"), index=df.index)
    if "trustworthy" in df.columns:
        out["data"] = [coverage_marker(r) or "" for _, r in df.iterrows()]
    else:
        out["data"] = ""
    return out


def as_float(value: Any) -> float | None:
    if value is None or pd.isna(value):
        return None
    return float(value)


def clock_caption(c: timeutil.Clock, zone: ZoneInfo) -> None:
    """Where "now" comes from, in plant-local time."""
    text = f"Now: {timeutil.local(c.now, zone)} (plant time, {zone.key})"
    if c.data_ahead:
        text += (
            f" -- the data runs {timeutil.duration(c.ahead_by.total_seconds())} ahead of the "
            "wall clock (accelerated demo time): now is the latest data time"
        )
    st.caption(text)


def live(refresh_s: float) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """``st.fragment(run_every=…)``: the decorated part of the page refreshes in place."""
    return st.fragment(run_every=refresh_s)


PERIODS: Final = ("Current shift", "Shift", "Day", "Week", "Last 24 hours", "Custom")


def period_picker(
    dsn: str, c: timeutil.Clock, zone: ZoneInfo, site: str | None, key: str, default: str
) -> timeutil.Period | None:
    """The period selector (current shift, a shift, a day, a week, the last 24 hours, custom
    days), resolved to a UTC range against the dashboards' now. None, with a message, when the
    choice cannot be resolved (no shift calendar yet)."""
    from datetime import timedelta

    at = minute(c.now) + timedelta(minutes=1)
    today = c.now.astimezone(zone).date()
    kind = (
        st.segmented_control(
            "Period", PERIODS, default=default, key=f"{key}-period", selection_mode="single"
        )
        or default
    )
    if kind == "Last 24 hours":
        return timeutil.Period(at - timedelta(hours=24), at, "last 24 hours")
    if kind == "Day":
        day = st.date_input("Day (plant time)", value=today, key=f"{key}-day")
        return timeutil.day_period(day, zone)
    if kind == "Week":
        day = st.date_input("A day of the week (plant time)", value=today, key=f"{key}-week")
        return timeutil.week_period(day, zone)
    if kind == "Custom":
        picked = st.date_input(
            "Days (plant time)", value=(today - timedelta(days=6), today), key=f"{key}-custom"
        )
        days = list(picked) if isinstance(picked, tuple | list) else [picked]
        if not days:
            st.info("Pick the first and the last day of the period.")
            return None
        return timeutil.custom_period(days[0], days[-1], zone)
    if site is None:
        st.info("No site selected: pick a site, line or asset first.")
        return None
    if kind == "Current shift":
        shift = queries.shift_at(dsn, site, at)
        if shift.empty:
            st.info(
                f"No shift of {site} has started yet: the shift calendar is written by the "
                "pipelines from the plant model. Showing the last 24 hours instead."
            )
            return timeutil.Period(at - timedelta(hours=24), at, "last 24 hours")
        row = shift.iloc[0]
        period = timeutil.shift_period(
            str(row["shift"]), required(row["start_ts"]), required(row["end_ts"]), zone
        )
        if not bool(row["running"]):
            st.caption(f"No shift is running now; showing the last one ({period.label}).")
        return period
    shifts = queries.recent_shifts(dsn, site, at)
    if shifts.empty:
        st.info(f"No shifts of {site} in the last 14 days.")
        return None
    options = [
        timeutil.shift_period(str(r.shift), required(r.start_ts), required(r.end_ts), zone)
        for r in shifts.itertuples()
    ]
    return st.selectbox("Shift", options, format_func=lambda p: p.label, key=f"{key}-shift")


def empty(message: str) -> None:
    """The empty state of a section: a clear message, never an error."""
    st.info(message, icon=":material/info:")


def chart_times(df: pd.DataFrame, zone: ZoneInfo, *columns: str) -> pd.DataFrame:
    """Timestamp columns as naive plant-local times, for charts (a browser would otherwise show
    them in its own time zone)."""
    out = df.copy()
    for column in columns:
        out[column] = pd.to_datetime(out[column], utc=True).dt.tz_convert(zone).dt.tz_localize(None)
    return out


def trend_chart(
    trend: pd.DataFrame, zone: ZoneInfo, x_title: str, x_format: str, height: int
) -> alt.LayerChart:
    """OEE and its factors over time (one line each); a period whose view row is not
    trustworthy (``trustworthy`` false: low data coverage) is drawn as a hollow point with the
    coverage in its tooltip, the trustworthy ones filled."""
    data = chart_times(trend, zone, "ts")
    if "trustworthy" in data.columns:
        marked = data["trustworthy"].map(lambda t: t is not None and not pd.isna(t) and not t)
    else:
        marked = pd.Series(False, index=data.index)
    data["data"] = ["⚠ low coverage" if m else "ok" for m in marked]
    if "coverage" not in data.columns:
        data["coverage"] = float("nan")
    long = data.melt(
        id_vars=["ts", "data", "coverage"],
        value_vars=["oee", "availability", "performance", "quality"],
        var_name="figure",
        value_name="value",
    )
    base = alt.Chart(long).encode(
        x=alt.X("ts:T", title=x_title, axis=alt.Axis(format=x_format)),
        y=alt.Y("value:Q", title=None, axis=alt.Axis(format="%")),
        color=alt.Color("figure:N", title=None),
        tooltip=[
            "ts:T",
            "figure:N",
            alt.Tooltip("value:Q", format=".1%"),
            alt.Tooltip("coverage:Q", format=".0%", title="data coverage"),
            alt.Tooltip("data:N", title="data"),
        ],
    )
    points = base.mark_point(size=50).encode(
        shape=alt.Shape(
            "data:N",
            title="data",
            scale=alt.Scale(domain=["ok", "⚠ low coverage"], range=["circle", "triangle"]),
            legend=(
                alt.Legend(symbolFillColor="white", symbolStrokeColor="#616161")
                if marked.any()
                else None  # all trustworthy: no legend to explain
            ),
        ),
        fill=alt.condition(alt.datum.data == "ok", alt.Color("figure:N"), alt.value("white")),
    )
    return alt.LayerChart(layer=[base.mark_line(), points], height=height)
