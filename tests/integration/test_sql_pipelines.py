"""The database side of issue 4 against the real TimescaleDB: the tables refuse bad data, the
OEE views give the published worked example, roll-ups are sums and equal a recomputation, and the
downtime, alert and dead-letter objects answer hand-computed questions (sql/002, sql/repeatable).
"""

from __future__ import annotations

import math
import random
import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from pipelines.oee.flow import OEE_COLUMNS

pytestmark = pytest.mark.integration

SECONDS = OEE_COLUMNS[2:11]  # the nine category seconds, in table order
COPY_COLUMNS = OEE_COLUMNS  # what the OEE flow writes
SUMS = (*SECONDS, "processed", "defective", "rework", "ideal_s", "good_ideal_s", "minutes")
SITE = "acme/basel"
LINE = "acme/basel/packaging/line1"
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # a Monday, 06:00 UTC
VIEWS = (
    "oee_by_minute",
    "oee_by_hour",
    "oee_by_shift",
    "oee_by_day",
    "line_oee_by_hour",
    "line_oee_by_shift",
    "line_oee_by_day",
    "site_oee_by_hour",
    "site_oee_by_shift",
    "site_oee_by_day",
)
Conn = psycopg.Connection[Any]


def minute(
    asset: str,
    ts: datetime,
    category: str = "production",
    *,
    processed: int = 0,
    defective: int = 0,
    rework: int = 0,
    ideal_cycle_s: float | None = 1.0,
    shift: tuple[str, datetime] | None = None,
    split: dict[str, float] | None = None,
) -> tuple[object, ...]:
    """One oee_minutes row in COPY order: 60 s of `category`, or the seconds of `split`."""
    seconds = split if split is not None else {category: 60.0}
    return (
        ts,
        asset,
        *(float(seconds.get(c.removesuffix("_s"), 0.0)) for c in SECONDS),
        processed,
        defective,
        rework,
        ideal_cycle_s,
        shift[0] if shift else None,
        shift[1] if shift else None,
        "test-1",
        0,
        None,
    )


def write_minutes(conn: Conn, rows: Iterable[Sequence[object]]) -> None:
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY oee_minutes ({', '.join(COPY_COLUMNS)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)


def add_asset(conn: Conn, asset: str, timezone: str = "UTC", line: str = LINE) -> None:
    conn.execute(
        "INSERT INTO assets (asset, site, area, line, ideal_cycle_s, count_unit, timezone) "
        "VALUES (%s, %s, %s, %s, 1.0, 'unit', %s)",
        (asset, "/".join(line.split("/")[:2]), "/".join(line.split("/")[:3]), line, timezone),
    )


def refresh(conn: Conn, assets: list[str] | None, start: datetime, end: datetime) -> None:
    conn.execute("SELECT refresh_oee_rollups(%s, %s, %s)", (assets, start, end))


def worked_example(asset: str, start: datetime = T0) -> list[tuple[object, ...]]:
    """oee.com's example as 480 minute rows: a 480 min shift with 2 × 15 + 30 min of breaks
    (planned downtime, outside planned production time), 47 min of breakdown, 373 min of
    production; 19,271 units (248 minutes of 52 and 125 of 51) of which 423 rejects (50
    minutes of 2 and 323 of 1); ideal cycle time 1.0 s. Integer counts: the sums are exact."""
    breaks = {*range(180, 195), *range(240, 270), *range(360, 375)}
    breakdown = set(range(100, 147))
    shift = ("early", start)
    rows, produced = [], 0
    for i in range(480):
        ts = start + timedelta(minutes=i)
        if i in breaks:
            rows.append(minute(asset, ts, "planned_downtime", shift=shift))
        elif i in breakdown:
            rows.append(minute(asset, ts, "breakdown", shift=shift))
        else:
            processed = 52 if produced < 248 else 51
            defective = 2 if produced < 50 else 1
            rows.append(minute(asset, ts, processed=processed, defective=defective, shift=shift))
            produced += 1
    assert len(breaks) == 60
    assert produced == 373
    assert sum(r[11] for r in rows) == 19_271
    assert sum(r[12] for r in rows) == 423
    return rows


def kpis(conn: Conn, view: str, where: str, params: Sequence[object]) -> dict[str, Any]:
    cur = conn.execute(f"SELECT * FROM {view} WHERE {where}", params)
    names = [d.name for d in cur.description or ()]
    rows = cur.fetchall()
    assert len(rows) == 1, rows
    return dict(zip(names, rows[0], strict=True))


# --- OEE -----------------------------------------------------------------------------------------


def test_oee_com_worked_example_read_back_from_oee_by_shift(db_dsn: str) -> None:
    asset = f"{LINE}/blister"
    with psycopg.connect(db_dsn) as conn:
        add_asset(conn, asset)
        write_minutes(conn, worked_example(asset))
        refresh(conn, [asset], T0, T0 + timedelta(hours=8))
        for convention in ("oee.com", "iso22400"):  # no setup, no minor stop: they agree
            row = kpis(conn, "oee_by_shift", "asset = %s AND convention = %s", (asset, convention))
            assert (row["shift"], row["shift_start"], row["minutes"]) == ("early", T0, 480)
            assert row["pbt_s"] == 420 * 60
            assert row["base_s"] == 420 * 60
            assert row["run_s"] == 373 * 60
            assert row["planned_downtime_s"] == 60 * 60
            assert (row["pq"], row["gq"], row["sq"]) == (19_271, 18_848, 423)
            assert round(row["availability"], 6) == 0.888095
            assert round(row["performance"], 6) == 0.861081
            assert round(row["quality"], 6) == 0.978050
            assert round(row["oee"], 6) == 0.747937
            assert row["oee"] == pytest.approx(18_848 / 25_200, abs=1e-12)
            assert row["performance_over_1"] is False
        # The same day, read from the day view, and the sum of the hours: the same figures.
        day = kpis(conn, "oee_by_day", "asset = %s AND convention = 'oee.com'", (asset,))
        assert round(day["oee"], 6) == 0.747937
        assert day["day"] == T0.date()
        hours = conn.execute(
            "SELECT count(*), sum(good_ideal_s), sum(base_s) FROM oee_by_hour "
            "WHERE asset = %s AND convention = 'oee.com'",
            (asset,),
        ).fetchone()
        assert hours == (8, 18_848.0, 25_200.0)


def test_conventions_differ_on_setup_and_minor_stops_as_documented(db_dsn: str) -> None:
    # 10 minutes: 6 production, 1 setup, 1 minor stop, 1 breakdown, 1 planned downtime;
    # 300 units (ideal 1 s), 30 defective, 12 reworked.
    asset = f"{LINE}/cartoner"
    cats = ["production"] * 6 + ["setup", "minor_stop", "breakdown", "planned_downtime"]
    rows = [
        minute(
            asset,
            T0 + timedelta(minutes=i),
            cat,
            processed=50 if cat == "production" else 0,
            defective=5 if cat == "production" else 0,
            rework=2 if cat == "production" else 0,
            shift=("early", T0),
        )
        for i, cat in enumerate(cats)
    ]
    with psycopg.connect(db_dsn) as conn:
        add_asset(conn, asset)
        write_minutes(conn, rows)
        refresh(conn, [asset], T0, T0 + timedelta(minutes=10))
        iso = kpis(conn, "oee_by_shift", "convention = 'iso22400'", ())
        com = kpis(conn, "oee_by_shift", "convention = 'oee.com'", ())
    assert (iso["apt_s"], iso["aust_s"], iso["adet_s"], iso["adot_s"]) == (360, 60, 120, 0)
    assert iso["pbt_s"] == com["pbt_s"] == iso["base_s"] == com["base_s"] == 540
    assert iso["availability"] == pytest.approx(360 / 540)
    assert iso["performance"] == pytest.approx(300 / 360)
    assert com["availability"] == pytest.approx(420 / 540)  # minor stops are in run time
    assert com["performance"] == pytest.approx(300 / 420)
    assert iso["quality"] == com["quality"] == pytest.approx(0.9)
    assert iso["oee"] == com["oee"] == pytest.approx(270 / 540)  # the identity holds in both
    assert iso["nee"] == pytest.approx(420 / 540 * 300 / 360 * 0.9)
    assert iso["technical_efficiency"] == pytest.approx(360 / 480)
    assert iso["setup_rate"] == pytest.approx(60 / 420)
    assert iso["allocation_efficiency"] == pytest.approx(1.0)  # AUBT = PBT: no ADOT
    assert iso["utilization_efficiency"] == pytest.approx(360 / 540)
    assert (iso["scrap_ratio"], iso["rework_ratio"]) == (pytest.approx(0.1), pytest.approx(0.04))


def _plant(conn: Conn, seed: int = 7) -> tuple[list[str], datetime, datetime]:
    """Three assets on two lines of one site over two days of shifts, random categories and
    counts, one asset with an unknown ideal cycle time in places; in Europe/Zurich."""
    rng = random.Random(seed)
    lines = [LINE, "acme/basel/packaging/line2"]
    assets = [f"{lines[0]}/blister", f"{lines[0]}/cartoner", f"{lines[1]}/blister"]
    for asset in assets:
        add_asset(conn, asset, "Europe/Zurich", asset.rsplit("/", 1)[0])
    start = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)
    end = start + timedelta(hours=36)
    rows = []
    for asset in assets:
        ts = start
        while ts < end:
            local_h = (ts.hour + 1) % 24  # Zurich is UTC+1 in March
            shift = None
            if 6 <= local_h < 14:
                shift = ("early", ts.replace(hour=5, minute=0))
            elif 14 <= local_h < 22:
                shift = ("late", ts.replace(hour=13, minute=0))
            if shift is None:
                rows.append(minute(asset, ts, "not_scheduled"))
            else:
                weights = [rng.random() for _ in SECONDS[:8]]
                split = {
                    c.removesuffix("_s"): 60 * w / sum(weights)
                    for c, w in zip(SECONDS[:8], weights, strict=True)
                }
                split["production"] += 60 - sum(split.values())  # closure exactly
                processed = rng.randint(0, 40)
                rows.append(
                    minute(
                        asset,
                        ts,
                        split=split,
                        processed=processed,
                        defective=rng.randint(0, processed),
                        rework=rng.randint(0, 3),
                        ideal_cycle_s=None if rng.random() < 0.02 else rng.choice([0.8, 1.0]),
                        shift=shift,
                    )
                )
            ts += timedelta(minutes=1)
    write_minutes(conn, rows)
    return assets, start, end


def _table(conn: Conn, sql: str) -> list[tuple[Any, ...]]:
    return sorted(conn.execute(sql).fetchall(), key=repr)


def _close(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert len(x) == len(y)
        for u, v in zip(x, y, strict=True):
            if isinstance(u, float) and isinstance(v, float):
                assert math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-6), (x, y)
            else:
                assert u == v, (x, y)


_SUM_SQL = ", ".join(f"sum({c})" if c != "minutes" else "count(*)" for c in SUMS)
RECOMPUTE = {
    "oee_hourly": f"SELECT asset, time_bucket('1 hour', ts), {_SUM_SQL} FROM oee_minutes "
    "GROUP BY 1, 2",
    "oee_shifts": f"SELECT asset, shift_start, max(shift), {_SUM_SQL} FROM oee_minutes "
    "WHERE shift_start IS NOT NULL GROUP BY 1, 2",
    "oee_daily": f"SELECT m.asset, (m.ts AT TIME ZONE coalesce(a.timezone, 'UTC'))::date, "
    f"{_SUM_SQL.replace('sum(', 'sum(m.')} FROM oee_minutes m "
    "LEFT JOIN assets a ON a.asset = m.asset GROUP BY 1, 2",
}
STORED = {
    "oee_hourly": f"SELECT asset, ts, {', '.join(SUMS)} FROM oee_hourly",
    "oee_shifts": f"SELECT asset, shift_start, shift, {', '.join(SUMS)} FROM oee_shifts",
    "oee_daily": f"SELECT asset, day, {', '.join(SUMS)} FROM oee_daily",
}


def _numbers(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(
        float(v) if isinstance(v, int | Decimal) and not isinstance(v, bool) else v for v in row
    )


def _rollups_equal_recomputation(conn: Conn) -> dict[str, list[tuple[Any, ...]]]:
    stored = {t: _table(conn, q) for t, q in STORED.items()}
    for table, query in RECOMPUTE.items():
        _close(stored[table], _table(conn, query))
    return stored


def test_refresh_is_idempotent_and_equals_recomputation_after_batches_and_corrections(
    db_dsn: str,
) -> None:
    with psycopg.connect(db_dsn) as conn:
        assets, start, end = _plant(conn)
        # The sink's way: many small overlapping batches, each refreshed for what it wrote.
        ts = start
        rng = random.Random(3)
        while ts < end:
            step = timedelta(minutes=rng.choice([1, 7, 59, 61, 180]))
            refresh(conn, rng.sample(assets, rng.randint(1, 3)), ts, min(ts + step, end))
            ts += step
        refresh(conn, None, start, end)  # and everything once more (NULL = every asset)
        once = _rollups_equal_recomputation(conn)
        # shifts: the end of 1 March late, 2 March early and late, the start of 3 March early
        assert len(once["oee_shifts"]) == 3 * 4
        assert len(once["oee_daily"]) == 3 * 3
        refresh(conn, None, start, end)
        assert _rollups_equal_recomputation(conn) == once  # twice = once
        # Late corrections: a minute rewritten, a minute moved out of its shift, one deleted.
        late = start + timedelta(hours=12, minutes=5)
        conn.execute(
            "UPDATE oee_minutes SET processed = processed + 1000 WHERE asset = %s AND ts = %s",
            (assets[0], late),
        )
        conn.execute(
            "UPDATE oee_minutes SET shift = NULL, shift_start = NULL WHERE asset = %s AND ts = %s",
            (assets[1], late),
        )
        conn.execute("DELETE FROM oee_minutes WHERE asset = %s AND ts = %s", (assets[2], late))
        refresh(conn, assets, late, late + timedelta(minutes=1))
        after = _rollups_equal_recomputation(conn)
        assert after != once
        # Every minute of an hour gone: its roll-up row goes too.
        hour = start + timedelta(hours=2)
        conn.execute(
            "DELETE FROM oee_minutes WHERE asset = %s AND ts >= %s AND ts < %s",
            (assets[0], hour, hour + timedelta(hours=1)),
        )
        refresh(conn, [assets[0]], hour, hour + timedelta(hours=1))
        _rollups_equal_recomputation(conn)
        assert not conn.execute(
            "SELECT 1 FROM oee_hourly WHERE asset = %s AND ts = %s", (assets[0], hour)
        ).fetchall()


@given(
    data=st.data(),
    seconds=st.lists(
        st.tuples(st.sampled_from(SECONDS[:8]), st.sampled_from(SECONDS), st.floats(0, 60)),
        min_size=1,
        max_size=8,
    ),
)
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_rollups_equal_recomputation_whatever_the_batches_property(
    db_dsn: str, data: st.DataObject, seconds: list[tuple[str, str, float]]
) -> None:
    """Any minutes, written and refreshed in any batches in any order (a sink's replays and
    late corrections included): the roll-ups equal the sums of the minutes."""
    assets = ["p/a", "p/b"]
    start = datetime(2026, 3, 2, 20, 30, tzinfo=UTC)
    n = data.draw(st.integers(1, 240), label="minutes")
    rows = []
    for asset in assets:
        for i in range(n):
            a, b, x = seconds[i % len(seconds)]
            split = {a.removesuffix("_s"): 60.0 - x}
            split[b.removesuffix("_s")] = split.get(b.removesuffix("_s"), 0.0) + x
            ts = start + timedelta(minutes=i)
            shift_start = ts.replace(hour=ts.hour - ts.hour % 2, minute=0)  # 2 h shifts
            rows.append(
                minute(
                    asset,
                    ts,
                    split=split,
                    processed=i % 9,
                    defective=i % 2,
                    shift=("s", shift_start),
                )
            )
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=6), label="cuts"))
    spans = list(zip([0, *cuts], [*cuts, n], strict=True))
    order = data.draw(st.permutations(spans), label="arrival order")
    corrected = data.draw(st.sampled_from(spans), label="corrected batch")
    with psycopg.connect(db_dsn) as conn:
        conn.execute("TRUNCATE oee_minutes, oee_hourly, oee_shifts, oee_daily")
        for a, b in order:  # the sink: write a batch, refresh exactly what it wrote
            write_minutes(conn, [r for r in rows if a <= (r[0] - start).seconds // 60 < b])
            refresh(conn, assets, start + timedelta(minutes=a), start + timedelta(minutes=b))
        a, b = corrected  # a late correction of one batch, for one asset
        span = (start + timedelta(minutes=a), start + timedelta(minutes=b))
        conn.execute(
            "UPDATE oee_minutes SET processed = processed + 5, revision = revision + 1 "
            "WHERE asset = 'p/a' AND ts >= %s AND ts < %s",
            span,
        )
        refresh(conn, ["p/a"], *span)
        _rollups_equal_recomputation(conn)
        conn.rollback()


def _rows(conn: Conn, query: str, a: datetime, b: datetime) -> list[tuple[Any, ...]]:
    rows = conn.execute(query, {"a": a, "b": b}).fetchall()
    return sorted((_numbers(r) for r in rows), key=repr)


def test_oee_totals_equal_the_minute_sums_on_partial_whole_and_empty_ranges(
    db_dsn: str,
) -> None:
    """oee_totals() reads whole hours from oee_hourly and only the partial head and tail hours
    from oee_minutes: on any range it equals summing the minutes of the range directly."""
    minute_sums = (
        f"SELECT asset, {_SUM_SQL} FROM oee_minutes WHERE ts >= %(a)s AND ts < %(b)s GROUP BY asset"
    )
    totals = f"SELECT asset, {', '.join(SUMS)} FROM oee_totals(%(a)s, %(b)s)"
    with psycopg.connect(db_dsn) as conn:
        assets, start, end = _plant(conn)
        refresh(conn, None, start, end)
        m = timedelta(minutes=1)
        h = timedelta(hours=1)
        ranges = [
            (start + 17 * m, end - 23 * m),  # partial head and tail, many whole hours between
            (start + 17 * m, start + 5 * h),  # partial head, whole hours, no tail
            (start + 2 * h, end - 23 * m),  # no head, whole hours, partial tail
            (start + 3 * h, start + 9 * h),  # whole hours only
            (start, end),  # all of it
            (start - 7 * h, end + 5 * h),  # wider than the data
            (start + 3 * h + 5 * m, start + 3 * h + 50 * m),  # inside one hour
            (start + 3 * h + 50 * m, start + 4 * h + 10 * m),  # across one hour boundary only
            (start + 3 * h + 50 * m, start + 4 * h),  # the end of one hour
            (start + 5 * h + 30 * m + timedelta(seconds=30), start + 7 * h + timedelta(seconds=1)),
            (start + 4 * h, start + 4 * h),  # empty
            (start + 4 * h + 10 * m, start + 4 * h + 10 * m),  # empty, inside an hour
            (start + 6 * h, start + 2 * h),  # ends before it starts: empty
            (end + 2 * h, end + 30 * h),  # no data
        ]
        rng = random.Random(11)
        for _ in range(6):
            a = start + rng.randint(-90, 36 * 60) * m
            ranges.append((a, a + rng.randint(0, 20 * 60) * m))
        for a, b in ranges:
            got = _rows(conn, totals, a, b)
            want = _rows(conn, minute_sums, a, b)
            _close(got, want)
            assert bool(got) == (a < b and a < end and b > start), (a, b, got)
        # the whole hours really come from the roll-up: a roll-up row changed shows through
        conn.execute(
            "UPDATE oee_hourly SET processed = processed + 1000 WHERE asset = %s AND ts = %s",
            (assets[0], start + 3 * h),
        )
        (processed,) = conn.execute(
            "SELECT processed FROM oee_totals(%s, %s) WHERE asset = %s",
            (start + 3 * h, start + 4 * h, assets[0]),
        ).fetchone() or (None,)
        (direct,) = conn.execute(
            "SELECT sum(processed) FROM oee_minutes WHERE asset = %s AND ts >= %s AND ts < %s",
            (assets[0], start + 3 * h, start + 4 * h),
        ).fetchone() or (None,)
        assert processed == direct + 1000
        conn.rollback()


def test_every_view_row_satisfies_the_oee_identity_and_lines_and_sites_are_sums(
    db_dsn: str,
) -> None:
    with psycopg.connect(db_dsn) as conn:
        _assets, start, end = _plant(conn, seed=11)
        refresh(conn, None, start, end)
        for view in VIEWS:
            rows = conn.execute(
                f"SELECT oee, good_ideal_s, base_s, availability, run_s FROM {view}"
            ).fetchall()
            assert rows, view
            for oee, good_ideal_s, base_s, availability, run_s in rows:
                if base_s == 0:
                    assert oee is None, view
                    assert availability is None, view
                elif good_ideal_s is not None:
                    assert oee * base_s == pytest.approx(good_ideal_s, abs=1e-6), view
                    assert availability == pytest.approx(run_s / base_s), view
        cols = "pbt_s, base_s, run_s, ideal_s, good_ideal_s, pq, gq, sq, rq, minutes"
        for level in ("line", "site"):
            for period, key in (("hour", "ts"), ("shift", "shift_start"), ("day", "day")):
                summed = _table(
                    conn,
                    f"SELECT {level}, {key}, convention, "
                    + ", ".join(f"sum({c})" for c in cols.split(", "))
                    + f" FROM oee_by_{period} GROUP BY 1, 2, 3",
                )
                direct = _table(
                    conn, f"SELECT {level}, {key}, convention, {cols} FROM {level}_oee_by_{period}"
                )
                _close([_numbers(r) for r in direct], [_numbers(r) for r in summed])
        # A line's OEE is the ratio of its sums, not the mean of its assets' OEE.
        line = kpis(
            conn,
            "line_oee_by_shift",
            "line = %s AND convention = 'oee.com' AND shift_start = %s",
            (LINE, datetime(2026, 3, 2, 5, tzinfo=UTC)),
        )
        parts = conn.execute(
            "SELECT sum(good_ideal_s), sum(base_s) FROM oee_by_shift "
            "WHERE line = %s AND convention = 'oee.com' AND shift_start = %s",
            (LINE, datetime(2026, 3, 2, 5, tzinfo=UTC)),
        ).fetchone()
        assert parts is not None
        assert line["assets"] == 2
        assert line["oee"] == pytest.approx(parts[0] / parts[1])


def test_zero_denominators_give_null_ratios_not_zero_or_one(db_dsn: str) -> None:
    asset = f"{LINE}/weekend"
    with psycopg.connect(db_dsn) as conn:
        add_asset(conn, asset)
        rows = [minute(asset, T0 + timedelta(minutes=i), "not_scheduled") for i in range(3)]
        rows.append(minute(asset, T0 + timedelta(minutes=3), "breakdown", ideal_cycle_s=None))
        write_minutes(conn, rows)
        refresh(conn, [asset], T0, T0 + timedelta(minutes=4))
        nothing = kpis(conn, "oee_by_minute", "ts = %s AND convention = 'iso22400'", (T0,))
        assert nothing["pbt_s"] == 0
        assert nothing["not_scheduled_s"] == 60
        for ratio in ("availability", "performance", "quality", "oee", "nee", "setup_rate"):
            assert nothing[ratio] is None, ratio
        assert nothing["performance_over_1"] is None
        down = kpis(
            conn,
            "oee_by_minute",
            "ts = %s AND convention = 'iso22400'",
            (T0 + timedelta(minutes=3),),
        )
        assert down["availability"] == 0.0  # planned and lost: a real 0
        assert down["performance"] is None
        assert down["quality"] is None
        assert down["oee"] is None  # no ideal cycle time, no OEE
        hour = kpis(conn, "oee_by_hour", "convention = 'oee.com'", ())
        assert hour["availability"] == 0.0
        assert hour["minutes"] == 4


def test_day_is_the_plant_local_day_and_utc_without_an_asset_row(db_dsn: str) -> None:
    zurich, kolkata, unknown = (f"{LINE}/zurich", f"{LINE}/kolkata", f"{LINE}/unknown")
    at = datetime(2026, 3, 1, 23, 10, tzinfo=UTC)  # Zurich 00:10 on 2 March, Kolkata 04:40
    late = datetime(2026, 3, 2, 18, 45, tzinfo=UTC)  # Kolkata 00:15 on 3 March
    with psycopg.connect(db_dsn) as conn:
        add_asset(conn, zurich, "Europe/Zurich")
        add_asset(conn, kolkata, "Asia/Kolkata")  # UTC+5:30: days are not whole UTC hours
        write_minutes(
            conn,
            [minute(a, t, processed=10) for a in (zurich, kolkata, unknown) for t in (at, late)],
        )
        refresh(conn, None, at, late + timedelta(minutes=1))
        days = _table(conn, "SELECT asset, day, timezone, processed, minutes FROM oee_daily")
    d1, d2, d3 = (datetime(2026, 3, d, tzinfo=UTC).date() for d in (1, 2, 3))
    assert days == sorted(
        [
            (zurich, d2, "Europe/Zurich", 20, 2),
            (kolkata, d2, "Asia/Kolkata", 10, 1),
            (kolkata, d3, "Asia/Kolkata", 10, 1),
            (unknown, d1, "UTC", 10, 1),
            (unknown, d2, "UTC", 10, 1),
        ],
        key=repr,
    )


# --- the database refuses bad data -------------------------------------------------------------


def test_overlapping_shifts_are_refused_adjacent_ones_and_other_sites_are_not(
    db_dsn: str,
) -> None:
    insert = (
        "INSERT INTO shifts (site, shift, start_ts, end_ts, breaks) VALUES (%s, %s, %s, %s, %s)"
    )
    h = timedelta(hours=1)
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute(insert, (SITE, "early", T0, T0 + 8 * h, "{}"))
        conn.execute(insert, (SITE, "late", T0 + 8 * h, T0 + 16 * h, "{}"))  # adjacent: fine
        conn.execute(insert, ("acme/zug", "early", T0, T0 + 8 * h, "{}"))  # other site: fine
        with pytest.raises(psycopg.errors.ExclusionViolation, match="shifts_no_overlap"):
            conn.execute(insert, (SITE, "overtime", T0 + 7 * h, T0 + 9 * h, "{}"))
        with pytest.raises(psycopg.errors.CheckViolation):  # a break outside its shift
            conn.execute(
                insert,
                (SITE, "night", T0 + 16 * h, T0 + 24 * h, f'{{["{T0 + 23 * h}","{T0 + 25 * h}")}}'),
            )
        with pytest.raises(psycopg.errors.CheckViolation):  # ends before it starts
            conn.execute(insert, (SITE, "night", T0 + 24 * h, T0 + 16 * h, "{}"))
        count = conn.execute("SELECT count(*) FROM shifts").fetchone()
    assert count == (3,)


@pytest.mark.parametrize(
    ("change", "constraint"),
    [
        ({"production": 59.0}, "oee_minutes_closure"),  # 59 s: a second is in no category
        ({"production": 61.0, "idle": -1.0}, "idle_s"),  # closes, but negative
        ({"processed": -1}, "processed"),
        ({"ideal_cycle_s": 0.0}, "ideal_cycle_s"),
        ({"ts_offset_s": 30}, "ts"),  # not minute-aligned
    ],
)
def test_oee_minutes_refuse_bad_rows(
    db_dsn: str, change: dict[str, float], constraint: str
) -> None:
    split = {"production": 60.0, **{k: v for k, v in change.items() if k in ("production", "idle")}}
    row = list(
        minute(
            "a/b",
            T0 + timedelta(seconds=change.get("ts_offset_s", 0)),
            split=split,
            processed=int(change.get("processed", 1)),
            ideal_cycle_s=change.get("ideal_cycle_s", 1.0),
        )
    )
    with psycopg.connect(db_dsn) as conn, pytest.raises(psycopg.errors.CheckViolation) as err:
        write_minutes(conn, [row])
    assert constraint in str(err.value)


def test_downtime_events_refuse_unknown_losses_and_categories(db_dsn: str) -> None:
    insert = (
        "INSERT INTO downtime_events (asset, start_ts, end_ts, state, mode, stop_reason, "
        "category, loss, shift, updated_ts) VALUES ('a/b', %s, %s, 'Held', 'Produce', '100', "
        "%s, %s, NULL, %s)"
    )
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute(insert, (T0, T0 + timedelta(minutes=5), "breakdown", "equipment_failure", T0))
        for category, loss in (
            ("production", "equipment_failure"),  # production is not downtime
            ("breakdown", "reduced_speed"),  # not a downtime loss
            ("breakdown", None),
        ):
            with pytest.raises((psycopg.errors.CheckViolation, psycopg.errors.NotNullViolation)):
                conn.execute(insert, (T0 + timedelta(hours=1), None, category, loss, T0))
        with pytest.raises(psycopg.errors.CheckViolation):  # ends before it starts
            conn.execute(insert, (T0 + timedelta(hours=2), T0, "breakdown", "unknown", T0))
        duration = conn.execute("SELECT duration_s FROM downtime_events").fetchone()
    assert duration == (300.0,)


# --- downtime ----------------------------------------------------------------------------------

STOPS = [
    # asset, start (min after T0), end (min) or None, category, loss, reason
    ("m1", 10, 20, "breakdown", "equipment_failure", "100.20"),
    ("m1", 60, 65, "breakdown", "equipment_failure", "100.20"),
    ("m1", 100, 130, "breakdown", "equipment_failure", "200.10"),
    ("m1", 200, 230, "setup", "setup_adjustment", "300.10"),
    ("m1", 300, 302, "minor_stop", "idling_minor_stops", "500.10"),
    ("m2", 30, 50, "breakdown", "equipment_failure", "100.20"),
    ("m2", 400, None, "breakdown", "equipment_failure", "100.20"),  # still open
    ("m2", 470, 475, "minor_stop", "idling_minor_stops", None),
]


def _stops(conn: Conn) -> None:
    for asset, start, end, category, loss, reason in STOPS:
        conn.execute(
            "INSERT INTO downtime_events (asset, start_ts, end_ts, state, mode, stop_reason, "
            "category, loss, shift, updated_ts) VALUES (%s, %s, %s, 'Held', 'Produce', %s, %s, "
            "%s, 'early', %s)",
            (
                asset,
                T0 + timedelta(minutes=start),
                None if end is None else T0 + timedelta(minutes=end),
                reason,
                category,
                loss,
                T0 + timedelta(minutes=start),
            ),
        )


def test_downtime_pareto_by_reason_and_loss_by_hand(db_dsn: str) -> None:
    until = T0 + timedelta(minutes=480)
    with psycopg.connect(db_dsn) as conn:
        _stops(conn)
        by_reason = conn.execute(
            "SELECT * FROM downtime_pareto(%s, %s, 'reason')", (T0, until)
        ).fetchall()
        by_loss = conn.execute(
            "SELECT key, stops, duration_s FROM downtime_pareto(%s, %s, 'loss')", (T0, until)
        ).fetchall()
        one_asset = conn.execute(
            "SELECT key, stops, duration_s FROM downtime_pareto(%s, %s, 'loss', 'm1')",
            (T0 + timedelta(minutes=15), T0 + timedelta(minutes=110)),
        ).fetchall()
        with pytest.raises(psycopg.errors.RaiseException, match="use reason, loss"):
            conn.execute("SELECT * FROM downtime_pareto(%s, %s, 'colour')", (T0, until))
    # 100.20: 10 + 5 + 20 + 80 (open, clipped at the range end) = 115 min in 4 stops
    total = 115 + 30 + 30 + 2 + 5
    assert [(k, n, s / 60) for k, n, s, _, _ in by_reason] == [
        ("100.20", 4, 115),
        ("200.10", 1, 30),
        ("300.10", 1, 30),
        ("(none)", 1, 5),
        ("500.10", 1, 2),
    ]
    assert by_reason[0][3] == pytest.approx(115 / total)
    assert by_reason[-1][4] == pytest.approx(1.0)
    assert by_reason[2][4] == pytest.approx((115 + 30 + 30) / total)
    assert by_loss == [
        ("equipment_failure", 5, 145 * 60.0),
        ("setup_adjustment", 1, 30 * 60.0),
        ("idling_minor_stops", 2, 7 * 60.0),
    ]
    # clipped to [15, 110): 5 of the first, 5 of the second, 10 of the third
    assert one_asset == [("equipment_failure", 3, 20 * 60.0)]


def test_downtime_pareto_measures_open_stops_to_the_callers_now(db_dsn: str) -> None:
    """p_now: the dashboards' clock (accelerated demo data runs ahead of the database's now());
    without it an open stop runs until now(), and the four-argument calls keep working."""
    until = T0 + timedelta(minutes=480)
    query = "SELECT key, stops, duration_s FROM downtime_pareto(%s, %s, 'reason', 'm2'{})"
    with psycopg.connect(db_dsn) as conn:
        _stops(conn)
        default = conn.execute(query.format(""), (T0, until)).fetchall()
        db_now = conn.execute(query.format(", now()"), (T0, until)).fetchall()
        named = conn.execute(
            "SELECT key, stops, duration_s FROM downtime_pareto(%s, %s, p_asset_like => 'm2', "
            "p_now => %s)",
            (T0, until, T0 + timedelta(minutes=420)),
        ).fetchall()
        at_420 = conn.execute(query.format(", %s"), (T0, until, T0 + timedelta(minutes=420)))
        before_start = conn.execute(  # "now" before the open stop began: it counts 0 s
            query.format(", %s"), (T0, until, T0 + timedelta(minutes=390))
        ).fetchall()
        by_loss = conn.execute(
            "SELECT key, stops, duration_s FROM downtime_pareto(%s, %s, 'loss', '%%', %s)",
            (T0, until, T0 + timedelta(minutes=420)),
        ).fetchall()
        at_420_rows = at_420.fetchall()
    # m2: 100.20 closed 30..50 (20 min) + open since 400; (none) 470..475 (5 min)
    assert default == db_now == [("100.20", 2, (20 + 80) * 60.0), ("(none)", 1, 5 * 60.0)]
    assert at_420_rows == named == [("100.20", 2, (20 + 20) * 60.0), ("(none)", 1, 5 * 60.0)]
    assert before_start == [("100.20", 2, 20 * 60.0), ("(none)", 1, 5 * 60.0)]
    # every asset: the closed equipment failures (10 + 5 + 30 + 20 min) + 20 min of the open one
    assert by_loss[0] == ("equipment_failure", 5, (10 + 5 + 30 + 20 + 20) * 60.0)


def test_mtbf_mttr_by_hand(db_dsn: str) -> None:
    until = T0 + timedelta(minutes=480)
    with psycopg.connect(db_dsn) as conn:
        _stops(conn)
        # m1 produced 400 minutes, m2 300 minutes in the shift (the rest: other categories)
        write_minutes(
            conn,
            [
                minute(a, T0 + timedelta(minutes=i), "production" if i < n else "idle")
                for a, n in (("m1", 400), ("m2", 300))
                for i in range(480)
            ],
        )
        refresh(conn, None, T0, until)
        rows = conn.execute(
            "SELECT asset, stop_reason, all_reasons, failures, open_failures, mttr_s, mtbf_s "
            "FROM mtbf_mttr(%s, %s)",
            (T0, until),
        ).fetchall()
        open_now = conn.execute("SELECT asset, running_s FROM downtime_open").fetchall()
    assert rows == [
        ("m1", None, True, 3, 0, pytest.approx(15 * 60), pytest.approx(400 * 60 / 3)),
        ("m1", "100.20", False, 2, 0, pytest.approx(7.5 * 60), pytest.approx(400 * 60 / 2)),
        ("m1", "200.10", False, 1, 0, pytest.approx(30 * 60), pytest.approx(400 * 60)),
        ("m2", None, True, 2, 1, pytest.approx(20 * 60), pytest.approx(300 * 60 / 2)),
        ("m2", "100.20", False, 2, 1, pytest.approx(20 * 60), pytest.approx(300 * 60 / 2)),
    ]
    assert [a for a, _ in open_now] == ["m2"]
    assert open_now[0][1] > 0


def test_six_big_losses_of_the_worked_example_add_up_to_planned_time(db_dsn: str) -> None:
    asset = f"{LINE}/blister"
    with psycopg.connect(db_dsn) as conn:
        write_minutes(conn, worked_example(asset))
        refresh(conn, [asset], T0, T0 + timedelta(hours=8))
        # a range that is not whole hours: edges from the minutes, the middle from the hours
        losses = dict(
            conn.execute(
                "SELECT loss, seconds FROM six_big_losses(%s, %s)",
                (T0 - timedelta(minutes=30), T0 + timedelta(hours=8, minutes=30)),
            ).fetchall()
        )
    assert losses == {
        "equipment_failure": 47 * 60,
        "setup_adjustment": 0,
        "idling_minor_stops": 0,
        "reduced_speed": 373 * 60 - 19_271,
        "process_defects": 423,
        "reduced_yield": None,
        "unknown": 0,
    }
    assert sum(v for v in losses.values() if v) + 18_848 == 420 * 60


# --- alerts and dead letters -------------------------------------------------------------------

FLOW_UPSERT = """
INSERT INTO alerts (alert_id, rule, asset, raised_ts, updated_ts, cleared_ts, status, severity,
                    message, evidence, revision)
VALUES (%(alert_id)s, %(rule)s, %(asset)s, %(raised_ts)s, %(updated_ts)s, %(cleared_ts)s,
        %(status)s, %(severity)s, %(message)s, %(evidence)s, %(revision)s)
ON CONFLICT (alert_id) DO UPDATE SET
    updated_ts = EXCLUDED.updated_ts, cleared_ts = EXCLUDED.cleared_ts, status = EXCLUDED.status,
    severity = EXCLUDED.severity, message = EXCLUDED.message, evidence = EXCLUDED.evidence,
    revision = EXCLUDED.revision
"""


def test_an_acknowledgement_survives_the_flows_upserts(db_dsn: str) -> None:
    now = datetime.now(UTC)
    alert: dict[str, Any] = {
        "alert_id": uuid.uuid5(uuid.NAMESPACE_URL, "long_stop|m1|t"),
        "rule": "long_stop",
        "asset": "m1",
        "raised_ts": now - timedelta(minutes=20),
        "updated_ts": now - timedelta(minutes=20),
        "cleared_ts": None,
        "status": "active",
        "severity": "warning",
        "message": "stopped for 15 min",
        "evidence": Jsonb({"stop_s": 900}),
        "revision": 0,
    }
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute(FLOW_UPSERT, alert)
        assert conn.execute("SELECT ack_alert(%s, 'jane')", (alert["alert_id"],)).fetchone() == (
            True,
        )
        assert conn.execute("SELECT ack_alert(%s, 'joe')", (alert["alert_id"],)).fetchone() == (
            False,
        )
        assert conn.execute("SELECT ack_alert(%s, 'joe')", (uuid.uuid4(),)).fetchone() == (False,)
        conn.execute(
            FLOW_UPSERT,
            alert | {"severity": "critical", "revision": 1, "evidence": Jsonb({"stop_s": 1500})},
        )
        active = conn.execute(
            "SELECT severity, acked, acked_by, revision FROM alerts_active"
        ).fetchall()
        assert active == [("critical", True, "jane", 1)]
        conn.execute(FLOW_UPSERT, alert | {"status": "cleared", "cleared_ts": now, "revision": 2})
        assert conn.execute("SELECT count(*) FROM alerts_active").fetchone() == (0,)
        recent = conn.execute("SELECT status, acked_by, duration_s FROM alerts_recent").fetchone()
        assert recent == ("cleared", "jane", pytest.approx(20 * 60, abs=1))
        with pytest.raises(psycopg.errors.CheckViolation):  # cleared without a cleared_ts
            conn.execute(FLOW_UPSERT, alert | {"cleared_ts": None, "status": "cleared"})
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                FLOW_UPSERT,
                alert | {"alert_id": uuid.uuid4(), "severity": "high", "raised_ts": now},
            )


def test_dead_letters_keep_their_kafka_source_and_are_counted_by_reason(db_dsn: str) -> None:
    insert = (
        "INSERT INTO dead_letters (received_ts, event_id, origin, reason, payload, payload_size, "
        "schema_version, topic, partition, \"offset\") VALUES (%s, %s, %s, %s, 'x', 1, 1, %s, "
        "%s, %s)"
    )
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        for i, (reason, topic) in enumerate(
            [
                ("invalid JSON: expected value", "asbuilt.v1.states"),
                ("invalid JSON: trailing data", "asbuilt.v1.states"),
                ("does not match the contract: x", "asbuilt.v1.counters"),
                ("bad node value: y", None),
            ]
        ):
            conn.execute(
                insert,
                (
                    T0 + timedelta(minutes=i),
                    uuid.uuid4(),
                    f"{topic}[0]@{i}" if topic else "ns=2;s=x",
                    reason,
                    topic,
                    0 if topic else None,
                    i if topic else None,
                ),
            )
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(insert, (T0, uuid.uuid4(), "t", "r", "t", -1, 0))
        by_reason = _table(
            conn, "SELECT hour, reason, topic, dead_letters FROM dead_letters_by_reason"
        )
        source = conn.execute(
            "SELECT topic, partition, \"offset\" FROM dead_letters WHERE reason LIKE 'does%'"
        ).fetchone()
    assert source == ("asbuilt.v1.counters", 0, 2)
    assert by_reason == sorted(
        [
            (T0, "invalid JSON", "asbuilt.v1.states", 2),
            (T0, "does not match the contract", "asbuilt.v1.counters", 1),
            (T0, "bad node value", None, 1),
        ],
        key=repr,
    )


# --- the documentation -------------------------------------------------------------------------


def test_every_sql_example_in_the_engineers_guide_is_valid_against_the_schema(
    db_dsn: str,
) -> None:
    """docs/sql.md is an API description: each example must at least plan (EXPLAIN)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "sql.md").read_text()
    statements = [
        statement.strip()
        for block in re.findall(r"```sql\n(.*?)```", text, re.DOTALL)
        for statement in re.sub(r"--[^\n]*", "", block).split(";")
        if statement.strip() and not statement.strip().upper().startswith("SHOW")
    ]
    assert len(statements) > 25
    failures = []
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        for statement in statements:
            try:
                conn.execute("EXPLAIN " + statement)
            except psycopg.Error as exc:
                failures.append(f"{statement[:60]}…: {exc}")
    assert not failures
