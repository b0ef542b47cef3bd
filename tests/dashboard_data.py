"""Realistic rows for the dashboards' tests and benchmark, written through the SQL tables of the
pipelines' contract (sql/002_pipelines.sql), then rolled up by ``refresh_oee_rollups()`` as the
OEE sink does.

Until the OEE and downtime flows run end to end in a test, this is how the dashboards get data:
the plant model's assets and shift calendar, one OEE minute per asset and minute (production,
stops, breaks, no-shift time; counts at a speed below ideal with some defects), the downtime
events those stops are (one still open at the end), the raw events the freshness page reads
(one asset silent for the last two hours), alerts (two active) and dead letters. Deterministic
for a seed. The minutes and the downtime events agree (a stop's minutes carry its category).
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.multirange import Multirange
from psycopg.types.range import Range

from asbuilt.plant import PlantModel, default_plant

NS = uuid.UUID("6f1d7c1e-7a7e-4d43-9a43-5d0a1b3c2e10")
MINUTE = timedelta(minutes=1)
LOSS = {
    "breakdown": "equipment_failure",
    "setup": "setup_adjustment",
    "minor_stop": "idling_minor_stops",
    "external": "idling_minor_stops",
    "idle": "idling_minor_stops",
    "unknown": "unknown",
    "planned_downtime": "planned_downtime",
    "not_scheduled": "not_scheduled",
}
STATE = {"breakdown": "Held", "setup": "Suspended", "minor_stop": "Suspended",
         "external": "Suspended", "unknown": "Stopped"}  # fmt: skip
REASONS = {
    "breakdown": ("100.10", "100.20", "100.30", "200.10", "200.20"),
    "setup": ("300.10", "300.20"),
    "minor_stop": ("500.10", "500.20", "500.30"),
    "external": ("600.10", "600.20"),
}
CATEGORIES = ("production", "setup", "breakdown", "minor_stop", "external", "idle", "unknown",
              "planned_downtime", "not_scheduled")  # fmt: skip
SPEED = 0.9  # units made at 90 % of the ideal rate
DEFECT_RATE = 0.02


@dataclass
class Filled:
    """What was written (for assertions)."""

    start: datetime
    end: datetime
    assets: list[str]
    open_stop_asset: str
    silent_asset: str
    minutes: int = 0
    stops: int = 0
    alerts_active: int = 0
    dead_letters: int = 0
    lines: list[str] = field(default_factory=list)


def plant_end(plant: PlantModel, after: datetime) -> datetime:
    """A data end inside an early shift (10:00 plant time, after the 09:00 break), on the first
    weekday after ``after``: "now" in the middle of a shift, ahead of the wall clock."""
    zone = plant.calendar.zone
    day = after.astimezone(zone).date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, 10, 0, tzinfo=zone).astimezone(UTC)


def fill(
    dsn: str,
    *,
    end: datetime,
    days: float = 2.0,
    plant: PlantModel | None = None,
    max_assets: int | None = None,
    seed: int = 7,
) -> Filled:
    """Write ``days`` of data ending at ``end`` (minute-aligned UTC) for the plant's assets."""
    plant = plant or default_plant()
    rng = random.Random(seed)
    end = end.replace(second=0, microsecond=0)
    start = end - timedelta(days=days)
    start = start.replace(second=0, microsecond=0)
    zone = plant.calendar.zone
    paths = list(plant.assets)[: max_assets or None]
    site = f"{plant.enterprise}/{plant.site}"
    open_asset, silent_asset = paths[-1], paths[1]
    filled = Filled(start, end, paths, open_asset, silent_asset)

    # shift instances overlapping [start, end)
    shifts: list[tuple[str, datetime, datetime, list[tuple[datetime, datetime]]]] = []
    day = start.astimezone(zone).date() - timedelta(days=1)
    while day <= end.astimezone(zone).date():
        for name, s, e, breaks in plant.calendar.shift_instances(day):
            if s < end and e > start:
                shifts.append((name, s, e, breaks))
        day += timedelta(days=1)

    n_min = int((end - start) / MINUTE)
    minute_rows: list[tuple[Any, ...]] = []
    stops: list[tuple[Any, ...]] = []
    states: list[tuple[Any, ...]] = []
    counters: list[tuple[Any, ...]] = []
    values: list[tuple[Any, ...]] = []
    shift_of = [None] * n_min  # (name, start) per minute index
    planned = [False] * n_min
    for name, s, e, breaks in shifts:
        for i in range(max(0, _idx(start, s)), min(n_min, _idx(start, e))):
            shift_of[i] = (name, s)  # type: ignore[call-overload]
        for b0, b1 in breaks:
            for i in range(max(0, _idx(start, b0)), min(n_min, _idx(start, b1))):
                planned[i] = True

    for a_index, path in enumerate(paths):
        asset = plant.assets[path]
        cycle = asset.ideal_cycle_s
        cat: dict[int, tuple[str, float]] = {}  # minute index -> (stop category, seconds)
        events: list[tuple[int, int, str, str]] = []  # (first minute, end minute, category, reason)
        for _name, s, e, _breaks in shifts:
            i0, i1 = max(0, _idx(start, s)), min(n_min, _idx(start, e))
            if i1 - i0 < 60:
                continue
            plan = [("breakdown", rng.randint(8, 40)) for _ in range(rng.randint(0, 2))]
            plan += [("setup", rng.randint(15, 30)) for _ in range(rng.randint(0, 1))]
            plan += [("external", rng.randint(3, 10)) for _ in range(rng.randint(0, 2))]
            plan += [("minor_stop", 1) for _ in range(rng.randint(1, 4))]
            for category, length in plan:
                first = rng.randrange(i0, i1 - length)
                span = range(first, first + length)
                if any(i in cat or planned[i] for i in span):
                    continue
                reason = rng.choice(REASONS[category])
                seconds = 30.0 if category == "minor_stop" else 60.0
                for i in span:
                    cat[i] = (category, seconds)
                events.append((first, first + length, category, reason))
        # the open stop: a breakdown running for the last 25 minutes
        if path == open_asset and shift_of[n_min - 1] is not None:
            first = n_min - 25
            for i in range(first, n_min):
                cat[i] = ("breakdown", 60.0)
            events = [ev for ev in events if ev[1] <= first]
            events.append((first, -1, "breakdown", "100.20"))

        carry = 0.0
        for i in range(n_min):
            ts = start + i * MINUTE
            secs = dict.fromkeys(CATEGORIES, 0.0)
            sh = shift_of[i]
            if sh is None:
                secs["not_scheduled"] = 60.0
            elif planned[i]:
                secs["planned_downtime"] = 60.0
            elif i in cat:
                c, stopped = cat[i]
                secs[c] = stopped
                secs["production"] = 60.0 - stopped
            else:
                secs["production"] = 60.0
            carry += secs["production"] / cycle * SPEED
            processed = int(carry)
            carry -= processed
            defective = min(processed, int(processed * DEFECT_RATE + rng.random() * 0.6))
            minute_rows.append(
                (ts, path, *(secs[c] for c in CATEGORIES), processed, defective, 0, cycle,
                 sh[0] if sh else None, sh[1] if sh else None, "test-1", 0, None)
            )  # fmt: skip
        filled.minutes += n_min

        silent_from = end - timedelta(hours=2) if path == silent_asset else end
        for first, last, category, reason in events:
            s_ts = start + first * MINUTE
            e_ts = None if last < 0 else start + last * MINUTE
            if category == "minor_stop":
                e_ts = s_ts + timedelta(seconds=30)
            sh = shift_of[first]
            stops.append(
                (path, s_ts, e_ts, STATE[category], "Produce", reason, category, LOSS[category],
                 sh[0] if sh else None, e_ts or s_ts)
            )  # fmt: skip
            if s_ts < silent_from:
                states.append(_state(path, s_ts, STATE[category], reason))
            if e_ts is not None and e_ts < silent_from:
                states.append(_state(path, e_ts, "Execute", None))
        for _name, s, e, _breaks in shifts:
            for t, state, reason in ((s, "Execute", None), (e, "Stopped", "800.20")):
                if start <= t < min(end, silent_from):
                    states.append(_state(path, t, state, reason))
        total = 0
        for h in range(int(days * 24)):
            t = start + timedelta(hours=h)
            if t >= silent_from:
                break
            total += rng.randint(0, 500)
            counters.append((t, path, _id(path, "c", t), "processed", total, False, None, t, 1))
            recent = t >= end - timedelta(hours=1)  # devices sample often: every minute lately
            for q in range(60 if recent else 4):
                tq = t + timedelta(minutes=(1 if recent else 15) * q)
                if tq >= silent_from:
                    break
                values.append(
                    (tq, path, _id(path, "v", tq), "temperature", 20 + rng.random(), "Cel",
                     "good", 0, tq, 1)
                )  # fmt: skip
        filled.stops += len(events)
        del a_index

    alerts = [
        (open_asset, "long_stop", "critical", "active", end - timedelta(minutes=20), None,
         "Breakdown running for more than 15 min"),
        (paths[0], "oee_low", "warning", "active", end - timedelta(hours=1), None,
         "OEE below 60 % for one hour"),
        (paths[2], "long_stop", "critical", "cleared", end - timedelta(hours=5),
         end - timedelta(hours=4), "Breakdown running for more than 15 min"),
        (paths[3], "silent_asset", "warning", "cleared", end - timedelta(hours=8),
         end - timedelta(hours=7, minutes=30), "No data for 10 min"),
    ]  # fmt: skip
    filled.alerts_active = sum(1 for a in alerts if a[3] == "active")
    dead = [
        (end - timedelta(hours=h), f"invalid JSON: expecting value at byte {h}", "asbuilt.v1.state")
        for h in (1, 2, 3)
    ] + [
        (end - timedelta(hours=h), "does not match the contract: state 'Running' is unknown",
         "asbuilt.v1.counter")
        for h in (2, 5)
    ]  # fmt: skip
    filled.dead_letters = len(dead)
    filled.lines = sorted({p.rsplit("/", 1)[0] for p in paths})

    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO assets (asset, site, area, line, ideal_cycle_s, count_unit, timezone) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [
                (p, site, p.rsplit("/", 2)[0], p.rsplit("/", 1)[0],
                 plant.assets[p].ideal_cycle_s, plant.assets[p].count_unit, zone.key)
                for p in paths
            ],
        )  # fmt: skip
        cur.executemany(
            "INSERT INTO shifts (site, shift, start_ts, end_ts, breaks) "
            "VALUES (%s, %s, %s, %s, %s)",
            [
                (site, name, s, e, Multirange([Range(b0, b1) for b0, b1 in breaks]))
                for name, s, e, breaks in shifts
            ],
        )
        _copy(cur, "oee_minutes", (
            "ts", "asset", *(f"{c}_s" for c in CATEGORIES), "processed", "defective", "rework",
            "ideal_cycle_s", "shift", "shift_start", "mapping_version", "revision",
            "corrected_at"), minute_rows)  # fmt: skip
        _copy(cur, "downtime_events", (
            "asset", "start_ts", "end_ts", "state", "mode", "stop_reason", "category", "loss",
            "shift", "updated_ts"), stops)  # fmt: skip
        states = list({row[2]: row for row in states}.values())  # one event per id
        _copy(cur, "equipment_states", (
            "ts", "asset", "event_id", "state", "mode", "stop_reason", "blocked", "starved",
            "ingest_ts", "schema_version"), states)  # fmt: skip
        _copy(cur, "counter_samples", (
            "ts", "asset", "event_id", "counter", "value", "resettable", "rollover", "ingest_ts",
            "schema_version"), counters)  # fmt: skip
        _copy(cur, "process_values", (
            "ts", "asset", "event_id", "signal", "value", "unit", "quality", "status_code",
            "ingest_ts", "schema_version"), values)  # fmt: skip
        cur.executemany(
            "INSERT INTO alerts (alert_id, rule, asset, raised_ts, updated_ts, cleared_ts, "
            "status, severity, message, evidence) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (uuid.uuid5(NS, f"{rule}|{asset}|{raised.isoformat()}"), rule, asset, raised,
                 cleared or raised, cleared, status, severity, message,
                 json.dumps({"asset": asset}))
                for asset, rule, severity, status, raised, cleared, message in alerts
            ],
        )  # fmt: skip
        cur.executemany(
            "INSERT INTO dead_letters (received_ts, event_id, origin, reason, payload, "
            'payload_size, schema_version, topic, partition, "offset") '
            "VALUES (%s, %s, %s, %s, %s, %s, 1, %s, 0, %s)",
            [
                (ts, uuid.uuid5(NS, f"dl|{i}"), f"{topic}[0]@{i}", reason, "{", 1, topic, i)
                for i, (ts, reason, topic) in enumerate(dead)
            ],
        )
        cur.execute("SELECT refresh_oee_rollups(NULL, %s, %s)", (start, end))
        conn.commit()
    return filled


def _idx(start: datetime, t: datetime) -> int:
    return int((t - start) / MINUTE)


def _id(path: str, kind: str, t: datetime) -> uuid.UUID:
    return uuid.uuid5(NS, f"{kind}|{path}|{t.isoformat()}")


def _state(path: str, t: datetime, state: str, reason: str | None) -> tuple[Any, ...]:
    return (t, path, _id(path, f"s{state}", t), state, "Produce", reason, False, False, t, 1)


def _copy(cur: psycopg.Cursor[Any], table: str, columns: tuple[str, ...], rows: list[Any]) -> None:
    cols = ", ".join(f'"{c}"' for c in columns)
    with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:  # type: ignore[arg-type]
        for row in rows:
            copy.write_row(row)


# --- data quality (issue 6) ----------------------------------------------------------------------

DQ_CHECKS: dict[str, tuple[tuple[str, str, dict[str, Any]], ...]] = {
    "events.states": (
        ("event_id_unique", "expect_column_values_to_be_unique", {"column": "event_id"}),
        ("state_in_packml_set", "expect_column_values_to_be_in_set",
         {"column": "state", "value_set": ["Idle", "Execute", "Held", "Stopped"]}),
        ("ts_plausible", "expect_column_values_to_be_between",
         {"column": "ts", "min_value": "2020-01-01T00:00:00Z"}),
    ),
    "events.counters": (
        ("event_id_unique", "expect_column_values_to_be_unique", {"column": "event_id"}),
        ("value_not_negative", "expect_column_values_to_be_between",
         {"column": "value", "min_value": 0}),
    ),
    "events.process_values": (
        ("value_within_instrument_range", "expect_column_values_to_be_between",
         {"column": "value", "min_value": -50, "max_value": 250}),
        ("quality_in_set", "expect_column_values_to_be_in_set",
         {"column": "quality", "value_set": ["good", "uncertain", "bad"]}),
    ),
}  # fmt: skip
"""The event suites the synthetic plant's results come from (a subset of the real suites)."""
TABLE_CHECKS = (
    ("factors_within_0_1", "expect_column_values_to_be_between",
     {"column": "availability", "min_value": 0, "max_value": 1}),
    ("time_closure_60s", "expect_column_values_to_be_between",
     {"column": "total_s", "min_value": 60, "max_value": 60}),
)  # fmt: skip


@dataclass
class DqFilled:
    """The data-quality rows written (for assertions): the failures, newest first, as
    (window_start, suite, expectation, asset, example value)."""

    failures: list[tuple[datetime, str, str, str, object]]
    windows: int = 0
    asset_minutes: int = 0


def fill_quality(
    dsn: str, filled: Filled, *, failures_every: int | None = None, seed: int = 11
) -> DqFilled:
    """Write what the quality flow writes for the plant of :func:`fill`: a passing result per
    event suite, check and minute of [start, end), per table check and hour; the KPI raw
    material per asset and minute (the silent asset sends nothing in its last two hours, the
    asset after it runs a source clock 30 s ahead, some process values are uncertain or bad,
    a few messages are rejected). Failures, each with its per-asset row and example: an unknown
    state 'Running' 2 h before the end, a negative count 30 min before the end, a temperature
    out of range 30 h before the end (outside the last 24 hours) -- and, with
    ``failures_every`` (the benchmark), one more every that many minutes."""
    rng = random.Random(seed)
    start, end = filled.start, filled.end
    n_min = int((end - start) / MINUTE)
    paths = filled.assets
    skewed = paths[2 % len(paths)]
    planned = [
        (end - timedelta(hours=2), "events.states", "state_in_packml_set", paths[0], "Running"),
        (end - timedelta(minutes=30), "events.counters", "value_not_negative", paths[-1], -5),
        (end - timedelta(hours=30), "events.process_values", "value_within_instrument_range",
         paths[1], 912.5),
    ]  # fmt: skip
    if failures_every:
        checks = [(s, c[0]) for s, cs in DQ_CHECKS.items() for c in cs]
        for i in range(failures_every, n_min, failures_every):
            suite, check = rng.choice(checks)
            planned.append((start + i * MINUTE, suite, check, rng.choice(paths), -1))
    failing = {(ts, suite, check): (asset, value) for ts, suite, check, asset, value in planned
               if start <= ts < end}  # fmt: skip
    results: list[tuple[Any, ...]] = []
    for i in range(n_min):
        ts = start + i * MINUTE
        done = ts + MINUTE + timedelta(seconds=12)
        for suite, checks in DQ_CHECKS.items():
            elements = rng.randint(20, 400)
            for check, gx_type, kwargs in checks:
                fail = failing.get((ts, suite, check))
                row = [ts, ts + MINUTE, suite, check, "", fail is None, elements, 0, None,
                       "[]", gx_type, json.dumps(kwargs), done]  # fmt: skip
                if fail is not None:
                    asset, value = fail
                    example = {"event_id": str(_id(asset, "dq", ts)), "asset": asset,
                               "ts": (ts + timedelta(seconds=7)).isoformat(), "value": value,
                               "origin": f"asbuilt.v1.{suite.split('.')[1]}[0]@{i}"}  # fmt: skip
                    row[7], row[9] = 1, json.dumps([example])
                    results.append(tuple(row))
                    row[4], row[6] = asset, elements // len(paths) + 1
                results.append(tuple(row))
    for h in range(int((end - start).total_seconds() // 3600)):
        ts = start + timedelta(hours=h)
        for check, gx_type, kwargs in TABLE_CHECKS:
            results.append((ts, ts + timedelta(hours=1), "table.oee_minutes", check, "", True,
                            60 * len(paths), 0, None, "[]", gx_type, json.dumps(kwargs),
                            ts + timedelta(hours=1, seconds=30)))  # fmt: skip
    minutes: list[tuple[Any, ...]] = []
    for path in paths:
        silent_from = end - timedelta(hours=2) if path == filled.silent_asset else end
        for i in range(n_min):
            ts = start + i * MINUTE
            if ts >= silent_from:
                break
            pv = rng.randint(8, 12)
            bad = 1 if rng.random() < 0.02 else 0
            uncertain = 1 if rng.random() < 0.05 else 0
            skew = (-30.0 if path == skewed else 0.0) + rng.uniform(0.05, 0.4)
            last_ingest = ts + timedelta(seconds=59)
            minutes.append(
                (ts, path, pv + rng.randint(0, 4), 1 if rng.random() < 0.01 else 0,
                 pv - bad - uncertain, uncertain, bad, skew - 0.05, skew, skew + 0.3,
                 last_ingest - timedelta(seconds=skew), last_ingest)
            )  # fmt: skip
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        _copy(cur, "dq_results", (
            "window_start", "window_end", "suite", "expectation", "asset", "success",
            "element_count", "unexpected_count", "observed_value", "examples",
            "expectation_type", "kwargs", "validated_at"), results)  # fmt: skip
        _copy(cur, "dq_asset_minutes", (
            "ts", "asset", "events", "rejected", "pv_good", "pv_uncertain", "pv_bad",
            "skew_s_min", "skew_s_p50", "skew_s_max", "last_ts", "last_ingest_ts",
        ), minutes)  # fmt: skip
        conn.commit()
    shown = sorted(((ts, s, c, a, v) for (ts, s, c), (a, v) in failing.items()), reverse=True)
    return DqFilled(failures=shown, windows=n_min * len(DQ_CHECKS), asset_minutes=len(minutes))
