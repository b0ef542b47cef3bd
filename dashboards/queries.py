"""Every SQL statement the dashboards run: parameterised, reading the documented views and
functions of ``sql/repeatable/`` (docs/sql.md), each cached with ``st.cache_data(ttl=…)``.

- Reads go through the read-only role (``asbuilt_reader``, see :mod:`dashboards.service`); every
  connection also runs read-only transactions and has a statement timeout, whoever it logs in as.
- The one write is :func:`acknowledge_alert` (``ack_alert()``, i.e. ``UPDATE alerts SET
  acked_by, acked_at``), through its own connection as ``asbuilt_acker``, a role that may update
  exactly those two columns and nothing else.
- Results are pandas DataFrames with UTC timestamps; the pages convert them to plant-local time.
- A cache entry lives ``TTL_S`` seconds: a page's fragment refreshing every few seconds, or many
  people looking at once, costs the database one query per TTL. Time arguments are rounded to
  the second (or minute) by the caller so that they hit the cache.
- :data:`QUERY_LOG` records each query that really ran (name, milliseconds): the benchmark reads
  it to report the queries each page issues.

The data-quality queries read ``sql/repeatable/050_quality.sql`` (``dq_suite_status``,
``dq_failures``, ``dq_kpis``, ``line_dq_kpis``, ``dead_letter_reasons``,
``dq_coverage_threshold``); every OEE view row carries ``coverage`` and ``trustworthy``.

A level (``site``, ``line``, ``asset``) picks the view family: ``site_oee_by_hour``,
``line_oee_by_hour``, ``oee_by_hour`` and their ``_shift`` twins. Levels, views and columns are
chosen from fixed tables below, never from user text.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Literal

import pandas as pd
import psycopg
import streamlit as st
from psycopg import sql

logger = logging.getLogger(__name__)

TTL_S: Final = 10.0
"""How long a cached result is served (the pages refresh every ``refresh_s`` >= this)."""
STATEMENT_TIMEOUT_MS: Final = 15_000
ROW_LIMIT: Final = 5_000  # the most rows a table or timeline query returns

Level = Literal["site", "line", "asset"]
LEVELS: Final[tuple[Level, ...]] = ("site", "line", "asset")
_HOUR_VIEWS: Final = {
    "site": "site_oee_by_hour",
    "line": "line_oee_by_hour",
    "asset": "oee_by_hour",
}
_SHIFT_VIEWS: Final = {
    "site": "site_oee_by_shift",
    "line": "line_oee_by_shift",
    "asset": "oee_by_shift",
}
KPI_COLUMNS: Final = (
    "availability",
    "performance",
    "quality",
    "oee",
    "performance_over_1",
    "base_s",
    "run_s",
    "ideal_s",
    "good_ideal_s",
    "apt_s",
    "aust_s",
    "adet_s",
    "adot_s",
    "pbt_s",
    "planned_downtime_s",
    "not_scheduled_s",
    "pq",
    "gq",
    "sq",
    "rq",
    "coverage",
    "trustworthy",
)
_KPIS = sql.SQL(", ").join(sql.Identifier(c) for c in KPI_COLUMNS)

QUERY_LOG: list[tuple[str, float]] = []
"""(query name, milliseconds) of every query run (not served from the cache), oldest first."""
_LOG_LOCK = threading.Lock()


# --- connections ---------------------------------------------------------------------------------


def _options() -> str:
    return (
        "-c TimeZone=UTC -c default_transaction_read_only=on "
        f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c application_name=asbuilt-dashboards"
    )


@st.cache_resource(validate=lambda c: not c.closed and not c.broken, show_spinner=False)
def _connection(dsn: str) -> psycopg.Connection[Any]:
    """One autocommit connection per DSN, shared by every session (psycopg serialises its use)."""
    return psycopg.connect(dsn, autocommit=True, connect_timeout=5, options=_options())


def _frame(
    name: str, dsn: str, query: sql.Composable | str, params: Mapping[str, Any]
) -> pd.DataFrame:
    start = time.perf_counter()
    conn = _connection(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(query, params)
            columns = [d.name for d in cur.description or ()]
            rows = cur.fetchall()
    except psycopg.OperationalError:
        _connection.clear()  # a dropped connection: the next call reconnects
        raise
    elapsed = 1000 * (time.perf_counter() - start)
    with _LOG_LOCK:
        QUERY_LOG.append((name, elapsed))
    logger.debug("query %s: %d rows in %.1f ms", name, len(rows), elapsed)
    return pd.DataFrame.from_records(rows, columns=columns)


def _level_filter(level: Level, alias: str = "a") -> sql.Composable:
    """``alias.<level> = %(key)s`` for a level from LEVELS (never user text)."""
    if level not in LEVELS:
        msg = f"level must be one of {LEVELS}, not {level!r}"
        raise ValueError(msg)
    return sql.SQL("{} = %(key)s").format(sql.Identifier(alias, level))


# --- clock, master data, shifts ------------------------------------------------------------------


@st.cache_data(ttl=2.0, show_spinner=False)
def data_clock(dsn: str) -> pd.DataFrame:
    """The database's wall clock and the latest data times (OEE minute end, raw state event,
    downtime update): the dashboards' "now" is the later of the wall clock and these."""
    return _frame(
        "data_clock",
        dsn,
        """
        SELECT now() AS wall,
               (SELECT max(ts) + interval '1 minute' FROM oee_minutes) AS oee_until,
               (SELECT max(ts) FROM equipment_states) AS latest_state,
               (SELECT max(updated_ts) FROM downtime_events) AS latest_downtime
        """,
        {},
    )


@st.cache_data(ttl=60.0, show_spinner=False)
def assets(dsn: str) -> pd.DataFrame:
    """The master data the flows write from the plant model: one row per asset."""
    return _frame(
        "assets",
        dsn,
        "SELECT asset, site, area, line, ideal_cycle_s, count_unit, timezone "
        "FROM assets ORDER BY site, line NULLS LAST, asset",
        {},
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def shift_at(dsn: str, site: str, at: datetime) -> pd.DataFrame:
    """The shift instance of ``site`` running at ``at``, else the latest one that started
    before (``running`` false): the "current shift", or the last one outside shift hours."""
    return _frame(
        "shift_at",
        dsn,
        "SELECT shift, start_ts, end_ts, end_ts > %(at)s AS running FROM shifts "
        "WHERE site = %(site)s AND start_ts <= %(at)s ORDER BY start_ts DESC LIMIT 1",
        {"site": site, "at": at},
    )


@st.cache_data(ttl=60.0, show_spinner=False)
def recent_shifts(dsn: str, site: str, at: datetime, days: int = 14) -> pd.DataFrame:
    """Shift instances of ``site`` that started in the ``days`` before ``at``, newest first."""
    return _frame(
        "recent_shifts",
        dsn,
        "SELECT shift, start_ts, end_ts FROM shifts WHERE site = %(site)s "
        "AND start_ts <= %(at)s AND start_ts > %(at)s - make_interval(days => %(days)s) "
        "ORDER BY start_ts DESC",
        {"site": site, "at": at, "days": days},
    )


# --- plant overview ------------------------------------------------------------------------------


@st.cache_data(ttl=TTL_S, show_spinner=False)
def current_states(dsn: str, at: datetime) -> pd.DataFrame:
    """Per asset: its open stop (downtime_open: category, loss, reason, since) and its latest
    PackML state at or before ``at`` (equipment_states). No open stop and state Execute means
    producing."""
    return _frame(
        "current_states",
        dsn,
        """
        SELECT a.asset, a.line, a.site, d.category, d.loss, d.stop_reason,
               d.start_ts AS stopped_since, s.state, s.ts AS state_ts
          FROM assets a
          LEFT JOIN downtime_open d ON d.asset = a.asset
          LEFT JOIN LATERAL (
                SELECT e.state, e.ts FROM equipment_states e
                 WHERE e.asset = a.asset AND e.ts <= %(at)s
                 ORDER BY e.ts DESC LIMIT 1) s ON true
         ORDER BY a.site, a.line NULLS LAST, a.asset
        """,
        {"at": at},
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def shift_oee(dsn: str, level: Level, shift_start: datetime, convention: str) -> pd.DataFrame:
    """OEE with A/P/Q of one shift instance for every site, line or asset (the *_by_shift
    views: summed components, never averaged ratios)."""
    key = sql.Identifier(level)
    query = sql.SQL(
        "SELECT {key}, shift, minutes, {kpis} FROM {view} "
        "WHERE shift_start = %(start)s AND convention = %(convention)s ORDER BY {key}"
    ).format(key=key, kpis=_KPIS, view=sql.Identifier(_SHIFT_VIEWS[level]))
    return _frame(
        f"shift_oee[{level}]", dsn, query, {"start": shift_start, "convention": convention}
    )


# --- trends and KPIs of a period -----------------------------------------------------------------


@st.cache_data(ttl=TTL_S, show_spinner=False)
def trend(
    dsn: str,
    level: Level,
    key: str,
    start: datetime,
    end: datetime,
    convention: str,
    by: Literal["hour", "shift"],
) -> pd.DataFrame:
    """OEE and its factors per hour (``ts``) or per shift (``shift_start``) in [start, end)."""
    if by == "hour":
        view, ts = _HOUR_VIEWS[level], sql.Identifier("ts")
    else:
        view, ts = _SHIFT_VIEWS[level], sql.Identifier("shift_start")
    query = sql.SQL(
        "SELECT {ts} AS ts, {kpis} FROM {view} WHERE {level} = %(key)s "
        "AND {ts} >= %(start)s AND {ts} < %(end)s AND convention = %(convention)s ORDER BY {ts}"
    ).format(ts=ts, kpis=_KPIS, view=sql.Identifier(view), level=sql.Identifier(level))
    params = {"key": key, "start": start, "end": end, "convention": convention}
    return _frame(f"trend[{level},{by}]", dsn, query, params)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def period_kpis(dsn: str, level: Level, key: str, start: datetime, end: datetime) -> pd.DataFrame:
    """The KPIs of [start, end) for a site, line or asset, one row per convention: the summed
    time elements of ``oee_totals()`` through the one formula function ``oee_kpi()``; with the
    ``coverage`` and ``trustworthy`` of the OEE views, judged as they judge a period
    (``oee_coverage()`` over ``oee_coverage_basis``: a period in progress on its elapsed part)."""
    query = sql.SQL(
        """
        SELECT c.name AS convention, g.minutes, g.assets, k.*, v.coverage,
               v.coverage >= b.coverage_threshold AS trustworthy
          FROM (SELECT sum(t.production_s) AS production_s, sum(t.setup_s) AS setup_s,
                       sum(t.breakdown_s) AS breakdown_s, sum(t.minor_stop_s) AS minor_stop_s,
                       sum(t.external_s) AS external_s, sum(t.idle_s) AS idle_s,
                       sum(t.unknown_s) AS unknown_s,
                       sum(t.planned_downtime_s) AS planned_downtime_s,
                       sum(t.not_scheduled_s) AS not_scheduled_s,
                       sum(t.processed)::bigint AS processed,
                       sum(t.defective)::bigint AS defective, sum(t.rework)::bigint AS rework,
                       sum(t.ideal_s) AS ideal_s, sum(t.good_ideal_s) AS good_ideal_s,
                       sum(t.minutes)::bigint AS minutes, count(*) AS assets,
                       count(*) FILTER (WHERE t.asset = ANY(w.newest_assets)) AS assets_newest
                  FROM oee_totals(%(start)s, %(end)s) t
                  JOIN assets a ON a.asset = t.asset
                 CROSS JOIN oee_coverage_basis w
                 WHERE {filter}) g
         CROSS JOIN oee_coverage_basis b
         CROSS JOIN LATERAL (SELECT oee_coverage(
                g.minutes, g.unknown_s, g.assets, g.assets_newest, %(start)s, %(end)s,
                b.newest_minute) AS coverage) v
         CROSS JOIN oee_conventions c
         CROSS JOIN LATERAL oee_kpi(
                c.setup_is_availability_loss, c.planned_downtime_in_base,
                c.minor_stops_in_performance, g.production_s, g.setup_s, g.breakdown_s,
                g.minor_stop_s, g.external_s, g.idle_s, g.unknown_s, g.planned_downtime_s,
                g.not_scheduled_s, g.processed, g.defective, g.rework, g.ideal_s,
                g.good_ideal_s) k
         WHERE g.minutes IS NOT NULL
         ORDER BY c.name
        """
    ).format(filter=_level_filter(level))
    return _frame(f"period_kpis[{level}]", dsn, query, {"key": key, "start": start, "end": end})


@st.cache_data(ttl=TTL_S, show_spinner=False)
def six_big_losses(
    dsn: str, level: Level, key: str, start: datetime, end: datetime
) -> pd.DataFrame:
    """The six big losses of [start, end) summed over the site's, line's or asset's assets."""
    query = sql.SQL(
        "SELECT l.loss, l.factor, sum(l.seconds) AS seconds "
        "FROM six_big_losses(%(start)s, %(end)s) l JOIN assets a ON a.asset = l.asset "
        "WHERE {filter} GROUP BY l.loss, l.factor"
    ).format(filter=_level_filter(level))
    return _frame(f"six_big_losses[{level}]", dsn, query, {"key": key, "start": start, "end": end})


@st.cache_data(ttl=TTL_S, show_spinner=False)
def counts_vs_target(
    dsn: str, level: Level, key: str, start: datetime, end: datetime, convention: str
) -> pd.DataFrame:
    """Per asset: units processed and good against the target, the units the planned time
    (``base_s``) allows at the ideal cycle time."""
    query = sql.SQL(
        "SELECT b.asset, a.count_unit, b.pq AS processed, b.gq AS good, "
        "       floor(b.base_s / a.ideal_cycle_s)::bigint AS target, b.base_s, a.ideal_cycle_s "
        "  FROM oee_between(%(start)s, %(end)s) b JOIN assets a ON a.asset = b.asset "
        " WHERE b.convention = %(convention)s AND {filter} ORDER BY b.asset"
    ).format(filter=_level_filter(level))
    params = {"key": key, "start": start, "end": end, "convention": convention}
    return _frame(f"counts_vs_target[{level}]", dsn, query, params)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def stops_timeline(
    dsn: str, level: Level, key: str, start: datetime, end: datetime, at: datetime
) -> pd.DataFrame:
    """The stops (downtime_events) overlapping [start, end), clipped to it; an open stop runs
    until ``at`` (the dashboards' now). The time between stops is running time."""
    query = sql.SQL(
        "SELECT d.asset, greatest(d.start_ts, %(start)s) AS start_ts, "
        "       least(coalesce(d.end_ts, %(at)s), %(end)s) AS end_ts, d.category, d.loss, "
        "       d.stop_reason, d.state, d.end_ts IS NULL AS open "
        "  FROM downtime_events d JOIN assets a ON a.asset = d.asset "
        " WHERE d.start_ts < %(end)s AND (d.end_ts IS NULL OR d.end_ts > %(start)s) AND {filter} "
        " ORDER BY d.asset, d.start_ts LIMIT %(limit)s"
    ).format(filter=_level_filter(level))
    params = {"key": key, "start": start, "end": end, "at": at, "limit": ROW_LIMIT}
    return _frame(f"stops_timeline[{level}]", dsn, query, params)


# --- downtime and alerts -------------------------------------------------------------------------


@st.cache_data(ttl=TTL_S, show_spinner=False)
def pareto(
    dsn: str, start: datetime, end: datetime, by: str, asset_like: str, at: datetime
) -> pd.DataFrame:
    """downtime_pareto(): stops and duration per key (reason, loss, category, ...); an open
    stop runs until ``at`` (the dashboards' now, not the database's: accelerated demo data runs
    ahead of the wall clock, and its open stops would count 0 s)."""
    return _frame(
        f"pareto[{by}]",
        dsn,
        "SELECT key, stops, duration_s, share, cumulative_share "
        "FROM downtime_pareto(%(start)s, %(end)s, %(by)s, %(like)s, %(at)s)",
        {"start": start, "end": end, "by": by, "like": asset_like, "at": at},
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def mtbf_mttr(dsn: str, start: datetime, end: datetime, asset_like: str) -> pd.DataFrame:
    """mtbf_mttr(): per asset (all_reasons) and per asset and stop reason."""
    return _frame(
        "mtbf_mttr",
        dsn,
        "SELECT asset, stop_reason, all_reasons, failures, open_failures, mttr_s, apt_s, mtbf_s "
        "FROM mtbf_mttr(%(start)s, %(end)s) WHERE asset LIKE %(like)s",
        {"start": start, "end": end, "like": asset_like},
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def open_downtimes(dsn: str, at: datetime) -> pd.DataFrame:
    """downtime_open, with the running time measured to the dashboards' now."""
    return _frame(
        "open_downtimes",
        dsn,
        "SELECT asset, line, start_ts, category, loss, stop_reason, state, mode, "
        "       extract(epoch FROM greatest(%(at)s, start_ts) - start_ts)::double precision "
        "       AS running_s "
        "FROM downtime_open ORDER BY start_ts LIMIT %(limit)s",
        {"at": at, "limit": ROW_LIMIT},
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def alerts_active(dsn: str) -> pd.DataFrame:
    """alerts_active: most severe and oldest first."""
    return _frame(
        "alerts_active",
        dsn,
        "SELECT alert_id::text AS alert_id, severity, rule, asset, message, raised_ts, "
        "acked_by, acked_at FROM alerts_active LIMIT %(limit)s",
        {"limit": ROW_LIMIT},
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def alerts_recent(dsn: str) -> pd.DataFrame:
    """alerts_recent: raised, updated or cleared in the last 7 days (and every active one)."""
    return _frame(
        "alerts_recent",
        dsn,
        "SELECT alert_id::text AS alert_id, severity, status, rule, asset, message, raised_ts, "
        "cleared_ts, duration_s, acked_by, acked_at FROM alerts_recent LIMIT %(limit)s",
        {"limit": ROW_LIMIT},
    )


def acknowledge_alert(ack_dsn: str, alert_id: str, by: str) -> bool:
    """Record who acknowledged an alert and when (the database's now). The only write of the
    dashboards, as the narrowly-granted ``asbuilt_acker`` role; the first acknowledgement
    stands. True when this call acknowledged it."""
    start = time.perf_counter()
    with psycopg.connect(
        ack_dsn, autocommit=True, connect_timeout=5, options="-c TimeZone=UTC"
    ) as conn:
        row = conn.execute("SELECT ack_alert(%s::uuid, %s)", (alert_id, by)).fetchone()
    with _LOG_LOCK:
        QUERY_LOG.append(("acknowledge_alert", 1000 * (time.perf_counter() - start)))
    alerts_active.clear()
    alerts_recent.clear()
    return bool(row and row[0])


# --- data freshness ------------------------------------------------------------------------------

RAW_TABLES: Final[Sequence[str]] = (
    "equipment_states",
    "counter_samples",
    "process_values",
    "alarms",
    "batch_events",
    "material_movements",
)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def last_events(dsn: str) -> pd.DataFrame:
    """Per asset the last event time in each raw table (one index probe per asset and table,
    on the primary key (asset, ts, …)) and the last OEE minute written for it."""
    probes = sql.SQL(", ").join(
        sql.SQL("(SELECT max(r.ts) FROM {table} r WHERE r.asset = a.asset) AS {column}").format(
            table=sql.Identifier(t), column=sql.Identifier(t)
        )
        for t in RAW_TABLES
    )
    query = sql.SQL(
        "SELECT a.asset, a.line, {probes}, "
        "(SELECT max(m.ts) + interval '1 minute' FROM oee_minutes m WHERE m.asset = a.asset) "
        "AS oee_until FROM assets a ORDER BY a.asset"
    ).format(probes=probes)
    return _frame("last_events", dsn, query, {})


@st.cache_data(ttl=TTL_S, show_spinner=False)
def dead_letters(dsn: str, start: datetime) -> pd.DataFrame:
    """dead_letters_by_reason since ``start``: per reason and topic, hourly."""
    return _frame(
        "dead_letters",
        dsn,
        "SELECT hour, reason, coalesce(topic, '(not from Kafka)') AS topic, dead_letters, "
        "last_ts FROM dead_letters_by_reason "
        "WHERE hour >= time_bucket('1 hour', %(start)s::timestamptz) ORDER BY hour",
        {"start": start},
    )


# --- data quality --------------------------------------------------------------------------------


@st.cache_data(ttl=2.0, show_spinner=False)
def dq_clock(dsn: str) -> pd.DataFrame:
    """The database's wall clock and the latest INGEST-time data the data-quality page reads:
    the newest validated window (``dq_results``), KPI minute (``dq_asset_minutes``) and dead
    letter. Each is the newest row of a hypertable's time index, not a scan."""
    return _frame(
        "dq_clock",
        dsn,
        """
        SELECT now() AS wall,
               (SELECT max(window_start) + interval '1 minute' FROM dq_results) AS dq_until,
               (SELECT max(ts) + interval '1 minute' FROM dq_asset_minutes) AS kpi_until,
               (SELECT max(received_ts) FROM dead_letters) AS latest_dead_letter
        """,
        {},
    )


@st.cache_data(ttl=60.0, show_spinner=False)
def dq_threshold(dsn: str) -> pd.DataFrame:
    """``dq_coverage_threshold()``: an OEE figure whose coverage is below it is not trustworthy."""
    return _frame("dq_threshold", dsn, "SELECT dq_coverage_threshold() AS threshold", {})


@st.cache_data(ttl=TTL_S, show_spinner=False)
def dq_suite_status(dsn: str, start: datetime, end: datetime, bucket_s: int) -> pd.DataFrame:
    """Per suite and time bucket of [start, end): validated windows and the failed ones."""
    return _frame(
        "dq_suite_status",
        dsn,
        "SELECT suite, bucket, windows, failed_windows "
        "FROM dq_suite_status(%(start)s, %(end)s, make_interval(secs => %(bucket)s)) "
        "ORDER BY suite, bucket",
        {"start": start, "end": end, "bucket": bucket_s},
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def dq_failures(dsn: str, start: datetime, end: datetime) -> pd.DataFrame:
    """The failed expectations of [start, end), newest first, with their examples (at most
    ``ROW_LIMIT``)."""
    return _frame(
        "dq_failures",
        dsn,
        "SELECT * FROM dq_failures(%(start)s, %(end)s, %(limit)s)",
        {"start": start, "end": end, "limit": ROW_LIMIT},
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def dq_kpis(dsn: str, start: datetime, end: datetime) -> pd.DataFrame:
    """The data-quality KPIs of every asset over [start, end) (``dq_kpis``)."""
    return _frame(
        "dq_kpis",
        dsn,
        "SELECT * FROM dq_kpis(%(start)s, %(end)s) ORDER BY line NULLS LAST, asset",
        {"start": start, "end": end},
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def line_dq_kpis(dsn: str, start: datetime, end: datetime) -> pd.DataFrame:
    """The data-quality KPIs of every line over [start, end) (``line_dq_kpis``)."""
    return _frame(
        "line_dq_kpis",
        dsn,
        "SELECT * FROM line_dq_kpis(%(start)s, %(end)s) ORDER BY line",
        {"start": start, "end": end},
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def dead_letter_reasons(dsn: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Dead letters received in [start, end) by reason class, with the latest example."""
    return _frame(
        "dead_letter_reasons",
        dsn,
        "SELECT * FROM dead_letter_reasons(%(start)s, %(end)s)",
        {"start": start, "end": end},
    )
