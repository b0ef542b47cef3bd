"""OEE by shift for every asset over 30 days: the documented view against raw states at query time.

Ours: ``SELECT … FROM oee_by_shift WHERE convention = … AND shift_start in 30 days`` — the view
reads the ``oee_shifts`` roll-up (summed minutes, kept current by ``refresh_oee_rollups``) and
applies the one KPI function. Peer: the same question answered from the raw tables at query time,
as the open-source anchor does: each state's duration from ``lead(ts)`` over ``equipment_states``,
clipped to the shifts it overlaps, time in Execute per shift → availability; processed and
defective counts per shift from the cumulative ``counter_samples`` → performance and quality.

Input (in a database of its own, filled once per run of ``make bench``): 50 assets × 30 days of
``oee_minutes`` (2.16 M rows) in three 8-hour shifts a day (Europe/Zurich), their roll-ups, one
state change every 4 minutes per asset (540 k rows) and a processed and a defective counter
sample every 5 minutes per asset (864 k rows). Also measured: one ``refresh_oee_rollups`` call
after a one-minute batch of all 50 assets at the end of a shift (what the OEE sink pays per batch).
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from asbuilt import migrations
from bench.harness import Context, Figure

REPEATS = 3  # each run is itself a median over many queries
DB_NAME = "bench_queries"
SITE = "acme/basel"
TZ = "Europe/Zurich"
T0 = datetime(2026, 1, 4, 23, 0, tzinfo=UTC)  # Monday 5 January 2026, 00:00 in Zurich (no DST)

VIEW_QUERY = """
SELECT asset, shift_start, shift, availability, performance, quality, oee
  FROM oee_by_shift
 WHERE convention = %(convention)s AND shift_start >= %(from)s AND shift_start < %(to)s
 ORDER BY asset, shift_start
"""

SITE_QUERY = """
SELECT site, shift_start, shift, availability, performance, quality, oee
  FROM site_oee_by_shift
 WHERE convention = %(convention)s AND shift_start >= %(from)s AND shift_start < %(to)s
 ORDER BY site, shift_start
"""

RAW_QUERY = """
WITH sh AS (
    SELECT shift, start_ts, end_ts FROM shifts
     WHERE site = %(site)s AND start_ts >= %(from)s AND start_ts < %(to)s
), states AS (
    SELECT asset, ts, state, lead(ts) OVER (PARTITION BY asset ORDER BY ts) AS next_ts
      FROM equipment_states
     WHERE ts >= %(from)s - interval '1 day' AND ts < %(to)s
), run AS (
    SELECT s.asset, sh.start_ts, sh.shift,
           extract(epoch FROM sh.end_ts - sh.start_ts) AS planned_s,
           coalesce(sum(extract(epoch FROM least(s.next_ts, sh.end_ts)
                                         - greatest(s.ts, sh.start_ts)))
                    FILTER (WHERE s.state = 'Execute'), 0) AS run_s
      FROM states s
      JOIN sh ON s.ts < sh.end_ts AND s.next_ts > sh.start_ts
     GROUP BY s.asset, sh.start_ts, sh.shift, sh.end_ts
), counts AS (
    SELECT c.asset, sh.start_ts,
           max(c.value) FILTER (WHERE c.counter = 'processed')
             - min(c.value) FILTER (WHERE c.counter = 'processed') AS processed,
           max(c.value) FILTER (WHERE c.counter = 'defective')
             - min(c.value) FILTER (WHERE c.counter = 'defective') AS defective
      FROM counter_samples c
      JOIN sh ON c.ts >= sh.start_ts AND c.ts < sh.end_ts
     WHERE c.ts >= %(from)s AND c.ts < %(to)s
     GROUP BY c.asset, sh.start_ts
)
SELECT r.asset, r.start_ts AS shift_start, r.shift,
       r.run_s / nullif(r.planned_s, 0) AS availability,
       a.ideal_cycle_s * c.processed / nullif(r.run_s, 0) AS performance,
       (c.processed - c.defective)::double precision / nullif(c.processed, 0) AS quality,
       a.ideal_cycle_s * (c.processed - c.defective) / nullif(r.planned_s, 0) AS oee
  FROM run r
  JOIN assets a ON a.asset = r.asset
  LEFT JOIN counts c ON c.asset = r.asset AND c.start_ts = r.start_ts
 ORDER BY r.asset, r.start_ts
"""

_FILL = """
INSERT INTO assets (asset, site, area, line, ideal_cycle_s, count_unit, timezone)
SELECT format('acme/basel/packaging/line%%s/m%%s', i / 5, i), 'acme/basel',
       'acme/basel/packaging', format('acme/basel/packaging/line%%s', i / 5), 1.0, 'unit',
       %(tz)s
  FROM generate_series(0, %(assets)s - 1) i;

INSERT INTO shifts (site, shift, start_ts, end_ts)
SELECT %(site)s, s.name,
       (d + s.start_h * interval '1 hour') AT TIME ZONE %(tz)s,
       (d + (s.start_h + 8) * interval '1 hour') AT TIME ZONE %(tz)s
  FROM generate_series(timestamp '2026-01-04', timestamp '2026-01-04'
                       + (%(days)s) * interval '1 day', interval '1 day') d,
       (VALUES ('early', 6), ('late', 14), ('night', 22)) s(name, start_h);

INSERT INTO oee_minutes (ts, asset, production_s, setup_s, breakdown_s, minor_stop_s,
                         external_s, idle_s, unknown_s, planned_downtime_s, not_scheduled_s,
                         processed, defective, rework, ideal_cycle_s, shift, shift_start,
                         mapping_version)
SELECT m.ts, a.asset,
       CASE WHEN k < 15 THEN 60 ELSE 0 END, CASE WHEN k = 15 THEN 60 ELSE 0 END,
       CASE WHEN k = 16 THEN 60 ELSE 0 END, CASE WHEN k = 17 THEN 60 ELSE 0 END,
       CASE WHEN k = 18 THEN 60 ELSE 0 END, CASE WHEN k = 19 THEN 60 ELSE 0 END, 0, 0, 0,
       CASE WHEN k < 15 THEN 50 + n %% 7 ELSE 0 END,
       CASE WHEN k < 15 AND n %% 13 = 0 THEN 1 ELSE 0 END, 0, 1.0,
       (ARRAY['night', 'early', 'late'])[1 + m.j %% 3],
       %(t0)s::timestamptz + (m.j * 480 - 120) * interval '1 minute', 'bench'
  FROM (SELECT asset, row_number() OVER (ORDER BY asset) AS i FROM assets) a
 CROSS JOIN generate_series(0, %(days)s * 1440 - 1) n
 CROSS JOIN LATERAL (SELECT %(t0)s::timestamptz + n * interval '1 minute' AS ts,
                            (n * 7 + a.i * 3) %% 20 AS k,
                            (n + 120) / 480 AS j) m;

INSERT INTO equipment_states (ts, asset, event_id, state, mode, stop_reason, ingest_ts,
                              schema_version)
SELECT s.ts, a.asset, gen_random_uuid(),
       CASE WHEN n %% 2 = 0 THEN 'Execute'
            ELSE (ARRAY['Held', 'Suspended', 'Stopped'])[1 + (n / 2) %% 3] END,
       'Produce', CASE WHEN n %% 2 = 1 THEN '100.20' END, s.ts, 1
  FROM (SELECT asset, row_number() OVER (ORDER BY asset) AS i FROM assets) a
 CROSS JOIN generate_series(0, %(days)s * 360 - 1) n
 CROSS JOIN LATERAL (SELECT %(t0)s::timestamptz + n * interval '4 minutes'
                            + ((a.i * 13 + n * 7) %% 120) * interval '1 second' AS ts) s;

INSERT INTO counter_samples (ts, asset, event_id, counter, value, resettable, ingest_ts,
                             schema_version)
SELECT %(t0)s::timestamptz + n * interval '5 minutes', a.asset, gen_random_uuid(), c.counter,
       n * c.per_sample, false, %(t0)s::timestamptz + n * interval '5 minutes', 1
  FROM assets a
 CROSS JOIN generate_series(0, %(days)s * 288 - 1) n
 CROSS JOIN (VALUES ('processed', 250), ('defective', 2)) c(counter, per_sample);
"""

_prepared: dict[str, tuple[str, int, int]] = {}


def _database(ctx: Context) -> tuple[str, int, int]:
    """The filled database (once per process): DSN, days, assets."""
    if ctx.dsn in _prepared:
        return _prepared[ctx.dsn]
    days, assets = (7, 10) if ctx.quick else (30, 50)
    dsn = make_conninfo(ctx.dsn, dbname=DB_NAME)
    admin = make_conninfo(ctx.dsn, dbname=conninfo_to_dict(ctx.dsn).get("dbname") or "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))
    migrations.migrate(dsn)
    params = {"tz": TZ, "site": SITE, "days": days, "assets": assets, "t0": T0}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in _FILL.split(";"):  # no ';' inside the statements
            if not statement.strip():
                continue
            conn.execute(statement, params)
        conn.execute("SELECT refresh_oee_rollups(NULL, %s, %s)", (T0, T0 + timedelta(days=days)))
        conn.execute("VACUUM ANALYZE")
    _prepared[ctx.dsn] = (dsn, days, assets)
    return _prepared[ctx.dsn]


def _p50_ms(
    conn: psycopg.Connection[tuple[object, ...]], query: str, params: dict[str, object], runs: int
) -> tuple[float, int]:
    conn.execute(query, params).fetchall()  # warm the cache and the plan
    times, rows = [], 0
    for _ in range(runs):
        began = time.perf_counter()
        rows = len(conn.execute(query, params).fetchall())
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), rows


def _plan(
    conn: psycopg.Connection[tuple[object, ...]], query: str, params: dict[str, object]
) -> str:
    lines = conn.execute("EXPLAIN " + query, params).fetchall()
    return "\n".join(str(line[0]) for line in lines)


def _refresh_ms(conn: psycopg.Connection[tuple[object, ...]], at: datetime, runs: int) -> float:
    """One sink batch: every asset's last minute of a shift, refreshed (a re-write: same rows)."""
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        with conn.transaction():
            conn.execute(
                "SELECT refresh_oee_rollups(NULL, %s, %s)", (at, at + timedelta(minutes=1))
            )
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def measure(ctx: Context) -> list[Figure]:
    dsn, days, assets = _database(ctx)
    params: dict[str, object] = {
        "convention": "iso22400",
        "site": SITE,
        "from": T0,
        "to": T0 + timedelta(days=days),
    }
    with psycopg.connect(dsn, autocommit=True) as conn:
        plan = _plan(conn, VIEW_QUERY, params)
        if "oee_shifts" not in plan or "oee_minutes" in plan:
            msg = f"oee_by_shift no longer reads the oee_shifts roll-up:\n{plan}"
            raise RuntimeError(msg)
        view_ms, view_rows = _p50_ms(conn, VIEW_QUERY, params, 21)
        site_ms, _ = _p50_ms(conn, SITE_QUERY, params, 21)
        raw_ms, raw_rows = _p50_ms(conn, RAW_QUERY, params, 3)
        last_minute = T0 + timedelta(days=days // 2, hours=6) - timedelta(minutes=1)
        refresh_ms = _refresh_ms(conn, last_minute, 11)
    shape = f"{assets} assets × {days} days, 3 shifts/day"
    return [
        Figure(
            bench="OEE by shift query",
            metric=f"ms, {shape} ({view_rows:,} rows)",
            unit="ms",
            ours_name="view oee_by_shift (oee_shifts roll-up)",
            ours=view_ms,
            peer_name="raw states + counters at query time (lead() windows)",
            peer=raw_ms,
            higher_is_better=False,
            note=(
                f"OEE by shift: p50 of 21 view queries and 3 raw queries ({raw_rows:,} rows) "
                "per run; target < 200 ms for 50 assets × 30 days"
            ),
        ),
        Figure(
            bench="OEE by shift query",
            metric=f"ms, site roll-up, {shape}",
            unit="ms",
            ours_name="view site_oee_by_shift (summed components)",
            ours=site_ms,
            higher_is_better=False,
        ),
        Figure(
            bench="OEE roll-up refresh",
            metric=f"ms per sink batch: 1 minute × {assets} assets, end of an 8 h shift",
            unit="ms",
            ours_name="refresh_oee_rollups (hour, shift, day recomputed)",
            ours=refresh_ms,
            higher_is_better=False,
        ),
    ]
