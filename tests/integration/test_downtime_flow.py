"""The downtime flow as a process: Kafka in, downtime_events and alerts (table and topic) out.

A scripted sequence of state changes of one asset (tests/unit/test_downtime.py, SCENARIO_*)
is played in two phases: while the last stop is still running, then its end. The rows, the
alert lifecycle and the downtime functions (downtime_pareto, mtbf_mttr) are compared with
values computed by hand.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Consumer

from asbuilt import kafka, topics
from tests.conftest import Stack
from tests.flowkit import FlowProcess, flow_settings, produce, table_rows, wait_until
from tests.unit.test_downtime import (
    SCENARIO_ASSET,
    SCENARIO_EXPECTED,
    SCENARIO_EXPECTED_AFTER_LATE,
    SCENARIO_RULES,
    late_event,
    scenario_events,
    utc,
)

pytestmark = pytest.mark.integration

A = SCENARIO_ASSET


def downtime_rows(dsn: str) -> list[tuple[Any, ...]]:
    return table_rows(
        dsn,
        "downtime_events",
        "start_ts",
        ("start_ts", "end_ts", "category", "stop_reason", "loss", "shift", "duration_s"),
    )


def alert_rows(dsn: str) -> list[tuple[Any, ...]]:
    return table_rows(
        dsn,
        "alerts",
        "raised_ts",
        ("rule", "asset", "raised_ts", "cleared_ts", "status", "severity", "revision", "evidence"),
    )


def live_lag() -> timedelta:
    """Ingest times as if the scenario ran live: its 13:50 is now (the stop at 13:40 has run
    for ten minutes of wall-clock time when the test starts)."""
    return datetime.now(UTC) - utc("13:50")


def raised(message: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(message["raised_ts"])


class AlertsTopic:
    """Everything on the test's alerts topic, read with a consumer group of its own."""

    def __init__(self, settings: Any) -> None:
        self.consumer = Consumer(
            kafka.consumer_config(settings.kafka, f"t-{uuid.uuid4().hex[:8]}")
            | {"auto.offset.reset": "earliest"}
        )
        self.consumer.subscribe([topics.topic_name("alerts", settings.topic_prefix)])
        self.messages: list[tuple[bytes, dict[str, Any]]] = []

    def poll(self) -> list[tuple[bytes, dict[str, Any]]]:
        for msg in self.consumer.consume(500, 0.2):
            if msg.error() is None:
                self.messages.append((msg.key(), json.loads(msg.value())))
        return self.messages

    def close(self) -> None:
        self.consumer.close()


def test_scripted_stops_give_downtime_rows_alerts_and_reliability_figures(
    local_stack: Stack, db_dsn: str, topic_prefix: str, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(SCENARIO_RULES)
    settings = flow_settings(local_stack, db_dsn, topic_prefix, tmp_path, alert_rules=rules)
    lag = live_lag()
    topic = AlertsTopic(settings)
    try:
        with FlowProcess("downtime", settings) as flow:
            # states first, then the process values that move event time on: as it happens live
            # (topics read unevenly from a backlog could raise, then withdraw, an alert for a
            # stop whose end is not read yet; see pipelines/downtime/alerts.py, Clocks)
            produce(settings, scenario_events("states", lag=lag))
            wait_until(lambda: len(downtime_rows(db_dsn)) == 4, 120, "4 downtime rows", [flow])
            produce(settings, scenario_events("heartbeat", lag=lag))

            # the long stop is open: visible while it runs, and its alert is active
            def open_stop_and_active_alert() -> bool:
                rows = downtime_rows(db_dsn)
                alerts = alert_rows(db_dsn)
                return (
                    len(rows) == 4
                    and rows[-1][1] is None
                    and any(a[2] == utc("13:45") and a[4] == "active" for a in alerts)
                )

            wait_until(open_stop_and_active_alert, 120, "the open stop and its alert", [flow])
            rows = downtime_rows(db_dsn)
            assert rows[:3] == SCENARIO_EXPECTED[:3]
            assert rows[3] == (
                utc("13:40"),
                None,
                "breakdown",
                "200.10",
                "equipment_failure",
                "late",
                None,
            )
            with psycopg.connect(db_dsn) as conn:
                open_view = conn.execute(
                    "SELECT asset, start_ts, stop_reason FROM downtime_open"
                ).fetchall()
            assert open_view == [(A, utc("13:40"), "200.10")]

            end = scenario_events("end", lag=lag)
            produce(settings, end)

            def all_closed_and_cleared() -> bool:
                alerts = alert_rows(db_dsn)
                return downtime_rows(db_dsn) == SCENARIO_EXPECTED and any(
                    a[2] == utc("13:45") and a[4] == "cleared" for a in alerts
                )

            wait_until(all_closed_and_cleared, 120, "the stop closed and its alert cleared", [flow])
            updated = table_rows(db_dsn, "downtime_events", "start_ts", ("updated_ts",))
            assert updated[-1][0] == end[0].ingest_ts  # the ingest time of the event that ended it

        alerts = alert_rows(db_dsn)
        assert [(a[0], a[1], a[2], a[3], a[4], a[5]) for a in alerts] == [
            ("long_stop_5", A, utc("13:00"), utc("13:10"), "cleared", "critical"),
            ("long_stop_5", A, utc("13:45"), utc("13:52"), "cleared", "critical"),
        ]
        last = alerts[1]
        assert last[6] >= 1  # raised (0), then at least the clearing revision
        assert last[7]["downtime_start"] == utc("13:40").isoformat()
        assert last[7]["duration_s"] == 720.0
        assert last[7]["stop_reason"] == "200.10"

        # the alerts topic: every revision the table went through, keyed by asset
        wait_until(
            lambda: any(
                m["status"] == "cleared" and raised(m) == utc("13:45") for _, m in topic.poll()
            ),
            60,
            "the cleared alert on the alerts topic",
        )
        messages = topic.messages
        assert {k for k, _ in messages} == {A.encode()}
        by_id: dict[str, list[dict[str, Any]]] = {}
        for _, m in messages:
            by_id.setdefault(m["alert_id"], []).append(m)
        assert len(by_id) == 2
        running = next(ms for ms in by_id.values() if raised(ms[0]) == utc("13:45"))
        revisions = sorted({m["revision"] for m in running})  # consumers dedupe on (id, revision)
        assert revisions == list(range(len(revisions)))
        first = min(running, key=lambda m: m["revision"])
        final = max(running, key=lambda m: m["revision"])
        assert (first["status"], final["status"]) == ("active", "cleared")
        assert final["revision"] == last[6]
    finally:
        topic.close()

    # reliability figures from the documented functions, by hand:
    # failures (loss equipment_failure): 12:55 for 900 s (100.20), 13:40 for 720 s (200.10);
    # the 60 s breakdown at 13:30 is shorter than 120 s: a minor stop, not a failure.
    lo, hi = utc("12:00"), utc("14:00")
    with psycopg.connect(db_dsn) as conn:
        pareto = conn.execute(
            "SELECT key, stops, duration_s FROM downtime_pareto(%s, %s, 'loss')", (lo, hi)
        ).fetchall()
        by_reason = conn.execute(
            "SELECT key, stops, duration_s FROM downtime_pareto(%s, %s, 'reason')", (lo, hi)
        ).fetchall()
        # production time as the OEE flow writes it: whole production minutes of the scenario
        # (12:50-12:55, 13:10-13:20, 13:21-13:30, 13:31-13:40 = 5 + 10 + 9 + 9 = 33 min)
        minutes = [
            utc("12:50") + timedelta(minutes=i)
            for i in range(100)
            if any(
                s <= utc("12:50") + timedelta(minutes=i) < e
                for s, e in [
                    (utc("12:50"), utc("12:55")),
                    (utc("13:10"), utc("13:20")),
                    (utc("13:21"), utc("13:30")),
                    (utc("13:31"), utc("13:40")),
                ]
            )
        ]
        assert len(minutes) == 33
        with conn.cursor() as cur:
            cur.executemany(
                """INSERT INTO oee_minutes (ts, asset, production_s, setup_s, breakdown_s,
                       minor_stop_s, external_s, idle_s, unknown_s, planned_downtime_s,
                       not_scheduled_s, processed, defective, rework, ideal_cycle_s, shift,
                       mapping_version)
                   VALUES (%s, %s, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1.0, NULL, '1')""",
                [(m, A) for m in minutes],
            )
        conn.execute("SELECT refresh_oee_rollups(ARRAY[%s], %s, %s)", (A, lo, hi))
        mtbf = conn.execute(
            "SELECT stop_reason, all_reasons, failures, open_failures, mttr_s, apt_s, mtbf_s "
            "FROM mtbf_mttr(%s, %s) WHERE asset = %s",
            (lo, hi, A),
        ).fetchall()
    assert pareto == [("equipment_failure", 2, 1620.0), ("idling_minor_stops", 2, 120.0)]
    assert by_reason == [
        ("100.20", 1, 900.0),
        ("200.10", 1, 720.0),
        ("100.10", 1, 60.0),
        ("500", 1, 60.0),
    ]
    assert mtbf == [
        (None, True, 2, 0, 810.0, 1980.0, 990.0),
        ("100.20", False, 1, 0, 900.0, 1980.0, 1980.0),
        ("200.10", False, 1, 0, 720.0, 1980.0, 1980.0),
    ]


def test_a_silent_asset_raises_on_the_clock_tick_and_clears_when_it_speaks_again(
    local_stack: Stack, db_dsn: str, topic_prefix: str, tmp_path: Path
) -> None:
    from asbuilt.events import new_process_value

    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {name: quiet, kind: silent, severity: critical, seconds: 2}\n")
    settings = flow_settings(local_stack, db_dsn, topic_prefix, tmp_path, alert_rules=rules)

    def speak() -> Any:
        event = new_process_value(
            asset=A, ts=datetime.now(UTC), signal="speed", value=1.0, unit="1/min", status_code=0
        )
        produce(settings, [event])
        return event

    def statuses() -> list[tuple[Any, ...]]:
        return table_rows(
            db_dsn, "alerts", "raised_ts", ("rule", "status", "raised_ts", "cleared_ts")
        )

    with FlowProcess("downtime", settings) as flow:
        first = speak()
        # nothing more arrives: only the tick input can notice
        wait_until(lambda: [s[1] for s in statuses()] == ["active"], 120, "a silent alert", [flow])
        [(rule, _, raised_ts, _)] = statuses()
        assert rule == "quiet"
        assert raised_ts == first.ingest_ts + timedelta(seconds=2)
        second = speak()
        wait_until(lambda: [s[1] for s in statuses()] == ["cleared"], 120, "cleared", [flow])
        assert statuses()[0][3] == second.ingest_ts


def test_a_crash_and_restart_leave_the_same_downtime_rows_and_alerts(
    local_stack: Stack, db_dsn: str, topic_prefix: str, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(SCENARIO_RULES)
    settings = flow_settings(local_stack, db_dsn, topic_prefix, tmp_path, alert_rules=rules)
    lag = live_lag()
    produce(settings, scenario_events("states", lag=lag))
    flow = FlowProcess("downtime", settings).start()
    try:
        wait_until(lambda: len(downtime_rows(db_dsn)) == 4, 120, "4 downtime rows", [flow])
        flow.kill()  # SIGKILL: no final snapshot; the restart replays from the last one
        produce(settings, scenario_events("heartbeat", lag=lag) + scenario_events("end", lag=lag))
        flow.start()
        wait_until(
            lambda: (
                downtime_rows(db_dsn) == SCENARIO_EXPECTED
                and len([a for a in alert_rows(db_dsn) if a[4] == "cleared"]) == 2
            ),
            120,
            "the scenario's rows after the restart",
            [flow],
        )
        # a late state change corrects: the asset's rows of its range are replaced
        late = late_event()
        produce(settings, [late])
        wait_until(
            lambda: downtime_rows(db_dsn) == SCENARIO_EXPECTED_AFTER_LATE,
            120,
            "the rows corrected by the late event",
            [flow],
        )
        updated = dict(
            table_rows(db_dsn, "downtime_events", "start_ts", ("start_ts", "updated_ts"))
        )
        assert updated[utc("13:25")] == late.ingest_ts
        assert flow.stop() == 0
    finally:
        if flow.alive():
            flow.kill()
    alerts = alert_rows(db_dsn)
    assert [(a[2], a[3], a[4]) for a in alerts] == [
        (utc("13:00"), utc("13:10"), "cleared"),
        (utc("13:45"), utc("13:52"), "cleared"),
    ]


FREQUENT_OEE_STALE_RULES = """
rules:
  - {name: frequent, kind: frequent_stops, severity: warning, count: 3, minutes: 30,
     categories: [breakdown, minor_stop]}
  - {name: oee_low, kind: oee_below, severity: info, threshold: 0.5, minutes: 30}
  - {name: lagging, kind: stale, severity: warning, seconds: 60}
"""


def test_frequent_stops_low_oee_and_stale_data_raise_their_alerts_through_the_flow(
    local_stack: Stack, db_dsn: str, topic_prefix: str, tmp_path: Path
) -> None:
    """An hour of the blister machine, every event ingested 5 min after its source time (the
    source clock or a buffer lags): four short breakdowns 13:05-13:20, one blister every 10 s
    (far below its ideal rate). The running flow raises ``frequent`` (4 stops > 3 in 30 min),
    ``oee_low`` (OEE over 30 min < 0.5, evidence = good ideal time ÷ PBT) and ``lagging``
    (source time 300 s behind ingest > 60 s)."""
    from asbuilt.events import new_counter_sample, new_state_change

    rules = tmp_path / "rules.yaml"
    rules.write_text(FREQUENT_OEE_STALE_RULES)
    settings = flow_settings(local_stack, db_dsn, topic_prefix, tmp_path, alert_rules=rules)
    lag = timedelta(minutes=5)
    stops = [utc(f"13:{m:02d}") for m in (5, 10, 15, 20)]
    events: list[Any] = [
        new_state_change(asset=A, ts=utc("13:00"), state="Execute", mode="Produce",
                         ingest_ts=utc("13:00") + lag),
    ]  # fmt: skip
    for start in stops:
        end = start + timedelta(minutes=1)
        events += [
            new_state_change(asset=A, ts=start, state="Held", mode="Produce",
                             stop_reason="100.10", ingest_ts=start + lag),
            new_state_change(asset=A, ts=end, state="Execute", mode="Produce",
                             ingest_ts=end + lag),
        ]  # fmt: skip
    for n, s in enumerate(range(0, 3600, 10)):
        ts = utc("13:00") + timedelta(seconds=s)
        events.append(
            new_counter_sample(asset=A, ts=ts, counter="processed", value=1000 + n,
                               resettable=False, ingest_ts=ts + lag)
        )  # fmt: skip
    produce(settings, sorted(events, key=lambda e: e.ts))

    def by_rule() -> dict[str, tuple[Any, ...]]:
        return {r[0]: r for r in alert_rows(db_dsn)}

    with FlowProcess("downtime", settings) as flow:
        wait_until(lambda: {"frequent", "oee_low", "lagging"} <= set(by_rule()), 120,
                   "the three alerts", [flow])  # fmt: skip
    alerts = by_rule()
    frequent = alerts["frequent"][-1]
    assert alerts["frequent"][2] == utc("13:20")  # raised by the fourth stop
    assert frequent["stops"] == 4
    assert frequent["stop_starts"] == [s.isoformat() for s in stops]
    assert frequent["limit"] == 3
    oee = alerts["oee_low"][-1]
    assert oee["oee"] < 0.5
    assert oee["oee"] == pytest.approx(oee["good_ideal_s"] / oee["pbt_s"], rel=1e-4)
    lagging = alerts["lagging"][-1]
    assert lagging["max_lag_s"] == pytest.approx(300, abs=1)
    assert lagging["limit_s"] == 60
    assert {r[4] for r in alerts.values()} <= {"active", "cleared"}
    assert all(r[1] == A for r in alerts.values())
