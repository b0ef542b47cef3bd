"""The quality flow as a process: Kafka in, dq_results, dq_asset_minutes and dq alerts out.

(a) a minute of good events of every kind: every expectation of every suite passes, the KPI
    counts per asset are those of the events;
(b) deliberately bad events through the real stack -- a counter going backwards without a
    reset, a negative count and an unknown state (raw JSON the contract refuses), a duplicate
    event id, a source time from 2000-01-01, a process value out of range -- each fails the
    expectation meant for it with the example, and raises the dq alert of its asset, cleared by
    the next (good) minute;
(c) a flow SIGKILLed mid-stream and restarted writes the same dq_results (but validated_at),
    dq_asset_minutes and alerts as an uninterrupted run;
(d) the table suites over oee_minutes the real OEE flow wrote (the oee.com example).

Events carry ingest times a few minutes in the past, so every window is due at once: the data
closes all but the last window of each kind, a tick after the input went quiet closes the last.
Refused messages are produced with explicit Kafka timestamps (their ingest time).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer

from asbuilt import events as ev
from asbuilt import kafka, topics
from asbuilt.settings import Settings
from pipelines.quality.suites import event_suite, table_suite
from tests.conftest import Stack
from tests.flowkit import FlowProcess, produce, table_rows, wait_until
from tests.flowkit import flow_settings as _flow_settings
from tests.unit.test_quality_suites import BLISTER, PRESS, good_events, raw

pytestmark = pytest.mark.integration

KINDS = ("states", "counters", "process_values", "alarms", "batch", "materials")


def flow_settings(*args: Any, **overrides: Any) -> Settings:
    """tests.flowkit.flow_settings at simulator speed 1: the full ingest-time policy (a faster
    simulator lets source times run ahead of ingest)."""
    return _flow_settings(*args, **({"sim_speed": 1.0} | overrides))


def minute_ago(minutes: int) -> datetime:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now - timedelta(minutes=minutes)


def produce_raw(settings: Settings, messages: Sequence[tuple[str, str, bytes, datetime]]) -> None:
    """``(kind, key, value, kafka timestamp)`` messages, acknowledged."""
    producer = Producer(kafka.producer_config(settings.kafka))
    for kind, key, value, ts in messages:
        producer.produce(
            topics.topic_name(kind, settings.topic_prefix),  # type: ignore[arg-type]
            value,
            key=key.encode(),
            timestamp=int(ts.timestamp() * 1000),
        )
    assert producer.flush(30) == 0


def results(dsn: str) -> list[tuple[Any, ...]]:
    return table_rows(
        dsn, "dq_results", ("suite", "window_start", "expectation", "asset"),
        ("suite", "window_start", "window_end", "expectation", "asset", "success",
         "element_count", "unexpected_count", "observed_value", "examples", "expectation_type",
         "kwargs"),
    )  # fmt: skip


def windows(dsn: str) -> set[tuple[str, datetime]]:
    return {(r[0], r[1]) for r in results(dsn)}


def query(dsn: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


def by_kind(events: Sequence[ev.Event]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in events:
        out[topics.topic_kind_for(e)] = out.get(topics.topic_kind_for(e), 0) + 1
    return out


def test_good_events_pass_every_expectation(
    local_stack: Stack, db_dsn: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = flow_settings(local_stack, db_dsn, topic_prefix, tmp_path)
    t0 = minute_ago(5)
    events = good_events(t0)
    produce(settings, events)
    expected = {(f"events.{k}", t0) for k in KINDS}
    with FlowProcess("quality", settings) as flow:
        wait_until(lambda: windows(db_dsn) >= expected, 120, "a window per kind", [flow])
    rows = results(db_dsn)
    assert {(r[0], r[1]) for r in rows} == expected
    assert [r for r in rows if not r[5]] == []
    for kind, n in by_kind(events).items():
        mine = [r for r in rows if r[0] == f"events.{kind}"]
        assert {r[2] for r in mine} == {t0 + timedelta(minutes=1)}
        assert sorted(r[3] for r in mine) == sorted(c.name for c in event_suite(kind).checks)
        assert {(r[4], r[6], r[7]) for r in mine} == {("", n, 0)}
    # the KPI raw material: per asset and minute
    kpis = query(
        db_dsn,
        "SELECT asset, events, rejected, pv_good, pv_uncertain, pv_bad, skew_s_min, skew_s_p50,"
        " skew_s_max, last_ts, last_ingest_ts FROM dq_asset_minutes WHERE ts = %s ORDER BY asset",
        t0,
    )
    for row in kpis:
        asset = row[0]
        mine = [e for e in events if e.asset == asset]
        pv = [e for e in mine if isinstance(e, ev.ProcessValue)]
        assert row[1:6] == (
            len(mine), 0,
            sum(e.quality == "good" for e in pv), sum(e.quality == "uncertain" for e in pv),
            sum(e.quality == "bad" for e in pv),
        )  # fmt: skip
        assert row[6:9] == (1.0, 1.0, 1.0)
        assert row[9] == max(e.ts for e in mine)
        assert row[10] == max(e.ingest_ts for e in mine)
    assert [r[0] for r in kpis] == sorted([BLISTER, PRESS])
    assert dict(query(db_dsn, "SELECT name, value FROM dq_settings")) == {"oee_min_coverage": 0.9}
    assert query(db_dsn, "SELECT count(*) FROM alerts") == [(0,)]


def bad_events(t0: datetime) -> tuple[list[ev.Event], list[tuple[str, str, bytes, datetime]]]:
    """Good events of minute t0 plus each fault (events, raw messages)."""
    good = good_events(t0)
    counters = [e for e in good if isinstance(e, ev.CounterSample) and e.asset == PRESS
                and e.counter == "processed"]  # fmt: skip
    states = [e for e in good if isinstance(e, ev.StateChange)]
    s = timedelta(seconds=1)
    back = ev.new_counter_sample(asset=PRESS, ts=t0 + 50 * s, counter="processed",
                                 value=counters[-1].value - 40, resettable=False,
                                 ingest_ts=t0 + 51 * s)  # fmt: skip
    old = ev.new_state_change(asset=PRESS, ts=datetime(2000, 1, 1, tzinfo=UTC), state="Execute",
                              mode="Produce", ingest_ts=t0 + 52 * s)  # fmt: skip
    hot = ev.new_process_value(asset=PRESS, ts=t0 + 53 * s, signal="compression_force", value=1e6,
                               unit="kN", status_code=0, ingest_ts=t0 + 54 * s)  # fmt: skip
    dup = states[1]
    negative = raw(counters[0], value=-5, ts=(t0 + 55 * s).isoformat())
    unknown = raw(next(e for e in states if e.asset == BLISTER), state="Exploding")
    rawmsgs = [
        ("counters", PRESS, negative, t0 + 56 * s),
        ("states", BLISTER, unknown, t0 + 57 * s),
    ]
    return [*good, back, old, hot, dup], rawmsgs


BAD_EXPECTED = {
    # (suite, expectation, asset): (unexpected, example value)
    ("events.counters", "counter_never_decreases", PRESS): (1, -40),
    ("events.counters", "value_non_negative", PRESS): (1, -5),
    ("events.counters", "schema_valid", PRESS): (1, False),
    ("events.states", "state_in_packml_set", BLISTER): (1, "Exploding"),
    ("events.states", "schema_valid", BLISTER): (1, False),
    ("events.states", "event_id_unique", PRESS): (2, None),
    ("events.states", "ts_within_ingest_policy", PRESS): (1, None),
    ("events.process_values", "value_below_range_high", PRESS): (1, None),
}


def test_bad_events_fail_their_expectation_and_raise_alerts(
    local_stack: Stack, db_dsn: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = flow_settings(local_stack, db_dsn, topic_prefix, tmp_path)
    t0, t1 = minute_ago(6), minute_ago(5)
    events, rawmsgs = bad_events(t0)
    produce(settings, events)
    produce_raw(settings, rawmsgs)
    produce(settings, good_events(t1, base=1000))  # the next minute: good again
    expected = {(f"events.{k}", w) for k in KINDS for w in (t0, t1)}
    with FlowProcess("quality", settings) as flow:
        wait_until(lambda: windows(db_dsn) >= expected, 120, "two windows per kind", [flow])
        wait_until(
            lambda: query(db_dsn, "SELECT count(*) FROM alerts WHERE status = 'cleared'")
            == [(4,)], 60, "four dq alerts cleared", [flow],
        )  # fmt: skip
    rows = results(db_dsn)
    failed = {(r[0], r[3], r[4]): r for r in rows if not r[5] and r[4]}
    assert set(failed) == set(BAD_EXPECTED)
    assert all(r[1] == t0 for r in failed.values())
    for key, (count, value) in BAD_EXPECTED.items():
        row = failed[key]
        assert row[7] == count, key
        examples = row[9]
        assert examples, key
        assert all(e["asset"] == key[2] for e in examples)
        assert all(e["origin"].startswith(f"{topic_prefix}asbuilt.v1.") for e in examples)
        if value is not None:
            assert examples[0]["value"] == value, key
    assert failed[("events.states", "ts_within_ingest_policy", PRESS)][9][0]["ts"].startswith(
        "2000-01-01"
    )
    assert (
        failed[("events.process_values", "value_below_range_high", PRESS)][9][0]["value"]["value"]
        == 1e6
    )
    # the window rows: exactly those expectations failed, and nothing in the good minute
    assert {(r[0], r[3]) for r in rows if not r[5] and not r[4]} == {
        (s, e) for s, e, _ in BAD_EXPECTED
    }
    assert [r for r in rows if r[1] == t1 and not r[5]] == []
    # refused messages counted per asset
    rejected = dict(query(db_dsn, "SELECT asset, rejected FROM dq_asset_minutes WHERE ts = %s", t0))
    assert rejected == {PRESS: 1, BLISTER: 1}
    # one alert per (suite, asset): raised by the bad minute, cleared by the good one
    alerts = query(
        db_dsn,
        "SELECT rule, asset, raised_ts, cleared_ts, status, severity, revision, evidence "
        "FROM alerts ORDER BY rule, asset",
    )
    assert [(a[0], a[1]) for a in alerts] == sorted(
        {(f"dq.{s}", asset) for s, _, asset in BAD_EXPECTED}
    )
    for a in alerts:
        assert (a[2], a[3], a[4], a[5], a[6]) == (t0, t1, "cleared", "warning", 1)
        failing = {f["expectation"] for f in a[7]["failures"]}
        assert failing == {e for s, e, asset in BAD_EXPECTED if f"dq.{s}" == a[0] and asset == a[1]}


def truncate(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("TRUNCATE dq_results, dq_asset_minutes, dq_asset_kind_minutes, alerts")


def snapshot(dsn: str) -> tuple[Any, ...]:
    return (
        results(dsn),
        table_rows(dsn, "dq_asset_minutes", ("asset", "ts")),
        table_rows(dsn, "alerts", "alert_id", ("alert_id", "rule", "asset", "raised_ts",
                   "updated_ts", "cleared_ts", "status", "revision", "evidence")),
    )  # fmt: skip


def minutes_of(start: datetime, minutes: range) -> tuple[list[ev.Event], list[Any]]:
    """Good minutes, every third with the faults of :func:`bad_events` (not its counters)."""
    events: list[ev.Event] = []
    rawmsgs: list[tuple[str, str, bytes, datetime]] = []
    for m in minutes:
        t = start + timedelta(minutes=m)
        counters = [e for e in good_events(t, base=1000 * m) if isinstance(e, ev.CounterSample)]
        if m % 3 == 1:
            bad, more = bad_events(t)
            events += [e for e in bad if not isinstance(e, ev.CounterSample)] + counters
            rawmsgs += more
        else:
            events += good_events(t, base=1000 * m)
    return events, rawmsgs


def test_sigkill_and_restart_neither_loses_nor_repeats(
    local_stack: Stack, db_dsn: str, topic_prefix: str, tmp_path: Path
) -> None:
    """The killed run first: half the minutes, a snapshot, the other half, SIGKILL while it
    validates them, restart. Then the reference: the same topics read by an uninterrupted run."""
    start, half, total = minute_ago(10), 3, 6
    all_windows = {
        (f"events.{k}", start + timedelta(minutes=m)) for k in KINDS for m in range(total)
    }
    first_half = {w for w in all_windows if w[1] < start + timedelta(minutes=half)}
    settings = flow_settings(local_stack, db_dsn, topic_prefix, tmp_path / "killed")
    events, rawmsgs = minutes_of(start, range(half))
    produce(settings, events)
    produce_raw(settings, rawmsgs)
    flow = FlowProcess("quality", settings).start()
    try:
        wait_until(lambda: windows(db_dsn) >= first_half, 180, "the first half", [flow])
        time.sleep(3 * settings.snapshot_interval_s)  # a snapshot after the first half
        events, rawmsgs = minutes_of(start, range(half, total))
        produce(settings, events)
        produce_raw(settings, rawmsgs)
        wait_until(lambda: len(windows(db_dsn)) > len(first_half), 180, "a window more", [flow])
        flow.kill()
        assert len(windows(db_dsn)) < len(all_windows), "killed too late to test anything"
        flow.start()
        wait_until(lambda: windows(db_dsn) >= all_windows, 180, "every window", [flow])
        time.sleep(2.0)  # the metrics file is rewritten every second
        resumed = flow.metrics().get("dq_validations", 0)
        assert 0 < resumed < len(all_windows), "the restart resumed from the snapshot"
    finally:
        if flow.alive():
            flow.stop()
    killed = snapshot(db_dsn)
    assert killed[2], "the bad minutes raised alerts"
    truncate(db_dsn)

    settings = flow_settings(local_stack, db_dsn, topic_prefix, tmp_path / "reference")
    with FlowProcess("quality", settings) as flow:
        wait_until(lambda: windows(db_dsn) >= all_windows, 180, "every window", [flow])
    assert snapshot(db_dsn) == killed


def test_table_suites_on_the_oee_flow_output(
    local_stack: Stack, db_dsn: str, topic_prefix: str, tmp_path: Path
) -> None:
    from tests.integration.test_oee_flow import (
        MON,
        OEECOM,
        feed,
        oeecom_events,
        pushes,
        settings_for,
        shift_kpis,
    )

    settings = settings_for(local_stack, db_dsn, topic_prefix, tmp_path / ".asbuilt",
                            dq_table_interval_s=1.0)  # fmt: skip
    with FlowProcess("oee", settings) as oee:
        feed(settings, oee, oeecom_events(), pushes()[:1])
        wait_until(
            lambda: (k := shift_kpis(db_dsn, OEECOM)) is not None and k["minutes"] == 480,
            180, "the shift complete", [oee],
        )  # fmt: skip
    hours = [MON + timedelta(hours=h) for h in range(6, 14)]
    with FlowProcess("quality", settings) as flow:
        wait_until(
            lambda: {r[1] for r in results(db_dsn) if r[0] == "table.oee_minutes"} >= set(hours),
            120, "table.oee_minutes validated for the shift's hours", [flow],
        )  # fmt: skip
    rows = [r for r in results(db_dsn) if r[0] == "table.oee_minutes" and r[1] in hours]
    # the example counts at a steady rate through its stops, so an hour with a long stop has
    # more ideal time than run time: the hourly performance check fails exactly there
    over = query(
        db_dsn,
        "SELECT time_bucket('1 hour', ts) FROM oee_minutes WHERE asset = %s GROUP BY 1 "
        "HAVING sum(production_s) >= 600 AND sum(ideal_s) / sum(production_s) > 1.05",
        OEECOM,
    )
    assert over, "the example has such hours"
    assert {(r[1], r[3], r[4]) for r in rows if not r[5]} == {
        (h, "hourly_performance_at_most_1", a) for (h,) in over for a in ("", OEECOM)
    }
    alerts = query(db_dsn, "SELECT rule, asset, raised_ts FROM alerts WHERE rule LIKE 'dq.%%'")
    assert ("dq.table.oee_minutes", OEECOM, min(h for (h,) in over)) in alerts
    names = sorted(c.name for c in table_suite("oee_minutes").checks)
    for h in hours:
        mine = [r for r in rows if r[1] == h and not r[4]]
        assert sorted(r[3] for r in mine) == names
        assert {(r[2], r[6]) for r in mine} == {(h + timedelta(hours=1), 60)}
    perf = next(r for r in rows if r[3] == "hourly_performance_at_most_1" and not r[4])
    assert perf[11] == {"column": "hour_performance", "min_value": 0.0, "max_value": 1.05}


def test_nul_characters_and_contract_extremes_are_validated_not_fatal(
    local_stack: Stack, db_dsn: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = flow_settings(local_stack, db_dsn, topic_prefix, tmp_path)
    t0, t1 = minute_ago(6), minute_ago(5)
    good = good_events(t0)
    state = next(e for e in good if isinstance(e, ev.StateChange) and e.asset == PRESS)
    counter = next(e for e in good if isinstance(e, ev.CounterSample) and e.asset == PRESS)
    at = t0 + timedelta(seconds=30)
    poison = [
        ("states", PRESS, raw(state, asset="A\u0000"), at),
        ("states", PRESS, raw(state, state="Run\u0000"), at),
        ("states", PRESS, raw(state, ts="0001-01-01T00:00:00+01:00"), at),
        ("counters", PRESS, raw(counter, value=2**63), at),
    ]
    produce(settings, good)
    produce_raw(settings, poison)
    produce(settings, good_events(t1, base=1000))
    expected = {(f"events.{k}", w) for k in ("states", "counters") for w in (t0, t1)}
    with FlowProcess("quality", settings) as flow:
        wait_until(lambda: windows(db_dsn) >= expected, 120, "two windows of two kinds", [flow])
    rows = results(db_dsn)
    failed = {(r[0], r[3]) for r in rows if not r[5] and r[1] == t0 and not r[4]}
    assert {("events.states", "schema_valid"), ("events.counters", "schema_valid")} <= failed
    assert ("events.counters", "fields_well_typed") in failed
    assert "A\\x00" in {r[4] for r in rows}
    assert "A\\x00" in {a for (a,) in query(db_dsn, "SELECT asset FROM dq_asset_minutes")}
