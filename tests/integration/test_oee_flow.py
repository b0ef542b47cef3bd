"""The OEE flow through the real process, broker and TimescaleDB, read back from the views.

- the oee.com worked example and the InfluxData Flux example, fed as events;
- a late event beyond the lateness corrects the minute rows (revision, corrected_at) and the
  roll-ups;
- a SIGKILLed flow restarted leaves oee_minutes identical to an uninterrupted run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from asbuilt.events import Event, new_counter_sample, new_process_value, new_state_change
from asbuilt.settings import Settings
from tests.conftest import Stack
from tests.flowkit import FlowProcess, flow_settings, produce, table_rows, wait_until

pytestmark = pytest.mark.integration

MON = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday: the oee.com shift 06:00-14:00
TUE = datetime(2026, 3, 3, tzinfo=UTC)  # a Tuesday: the Flux window 00:00-08:00
OEECOM = "golden/ex/area/cell/oeecom"
FLUX = "golden/ex/area/cell/flux"
LATENESS_S = 10 * 3600  # longer than any skew between the topics when all is produced at once

PLANT = """
enterprise: golden
site: ex
calendar:
  timezone: UTC
  shifts:
    - name: early
      days: [mon]
      start: '06:00'
      end: '14:00'
      breaks:
        - {start: '08:00', end: '08:15'}
        - {start: '10:00', end: '10:30'}
        - {start: '12:00', end: '12:15'}
    - {name: flux, days: [tue], start: '00:00', end: '08:00'}
reasons:
  '100': Mechanical failure
  '100.10': Bearing
  '100.20': Jam
  '500': Minor stop
  '500.10': Misfeed
  '800': Planned stop
  '800.10': Break
  '800.20': No shift
kinds:
  machine: {ideal_cycle_s: 1.0}
areas:
  - name: area
    process_cells:
      - name: cell
        units:
          - {name: oeecom, kind: machine, ideal_cycle_s: 1.0}
          - {name: flux, kind: machine, ideal_cycle_s: 21.0}
          - {name: m1, kind: machine}
          - {name: m2, kind: machine}
          - {name: m3, kind: machine}
"""


def settings_for(stack: Stack, dsn: str, prefix: str, home: Path, **overrides: Any) -> Settings:
    plant = home.parent / "plant.yaml"
    plant.parent.mkdir(parents=True, exist_ok=True)
    plant.write_text(PLANT)
    values: dict[str, Any] = {
        "plant_model": plant,
        "oee_lateness_s": LATENESS_S,
        "oee_correction_horizon_h": 48,
    }
    values.update(overrides)
    return flow_settings(stack, dsn, prefix, home, **values)


def state(
    asset: str, ts: datetime, name: str, reason: str | None = None, ingest: datetime | None = None
) -> Event:
    return new_state_change(
        asset=asset,
        ts=ts,
        state=name,
        mode="Produce",
        stop_reason=reason,  # type: ignore[arg-type]
        ingest_ts=ingest or ts,
    )


def counter(asset: str, ts: datetime, name: str, value: int) -> Event:
    return new_counter_sample(
        asset=asset, ts=ts, counter=name, value=value, resettable=False, ingest_ts=ts
    )


def tick(asset: str, ts: datetime) -> Event:
    return new_process_value(
        asset=asset, ts=ts, signal="temp", value=20.0, unit="Cel", status_code=0, ingest_ts=ts
    )


def push(asset: str, ts: datetime) -> Event:
    """Moves the asset's event clock (so its watermark) to ``ts``: a counter OEE ignores, on
    the counters topic, produced last -- it arrives after every count (one partition)."""
    return counter(asset, ts, "heartbeat", 0)


def oeecom_events() -> list[Event]:
    """Shift 480 min, breaks 60 min, 47 min down, ideal 1.0 s, 19,271 made, 423 rejects."""
    t0 = MON + timedelta(hours=6)
    at = lambda s: t0 + timedelta(seconds=s)  # noqa: E731
    events: list[Event] = [state(OEECOM, at(0), "Execute")]
    for s, name, reason in [
        (3600, "Held", "100.20"),
        (3600 + 47 * 60, "Execute", None),
        (7200, "Stopped", "800.10"),
        (7200 + 900, "Execute", None),
        (4 * 3600, "Stopped", "800.10"),
        (4 * 3600 + 1800, "Execute", None),
        (6 * 3600, "Stopped", "800.10"),
        (6 * 3600 + 900, "Execute", None),
        (8 * 3600, "Idle", "800.20"),
    ]:
        events.append(state(OEECOM, at(s), name, reason))
    events += [counter(OEECOM, at(0), "processed", 0), counter(OEECOM, at(0), "defective", 0)]
    for i in range(1, 481):
        events.append(counter(OEECOM, at(i * 60 - 1), "processed", 19_271 * i // 480))
        events.append(counter(OEECOM, at(i * 60 - 1), "defective", 423 * i // 480))
    return events


def flux_events() -> list[Event]:
    """Running 00:00:00, stopped 04:03:53, running 04:24:53; 1,298 parts, 13 bad; ideal 21 s."""
    at = lambda s: TUE + timedelta(seconds=s)  # noqa: E731
    return [
        state(FLUX, at(0), "Execute"),
        counter(FLUX, at(0), "processed", 0),
        counter(FLUX, at(0), "defective", 0),
        state(FLUX, at(4 * 3600 + 3 * 60 + 53), "Stopped", "100.10"),
        state(FLUX, at(4 * 3600 + 24 * 60 + 53), "Execute"),
        counter(FLUX, at(8 * 3600 - 1), "processed", 1298),
        counter(FLUX, at(8 * 3600 - 1), "defective", 13),
    ]


def pushes() -> list[Event]:
    """Move both golden assets' watermarks past their shifts."""
    return [
        push(OEECOM, MON + timedelta(hours=14, seconds=LATENESS_S + 300)),
        push(FLUX, TUE + timedelta(hours=8, seconds=LATENESS_S + 300)),
    ]


def feed(settings: Settings, flow: FlowProcess, events: list[Event], last: list[Event]) -> None:
    """Produce ``events``, wait until the flow has read them all, then produce ``last``.

    Kafka orders each topic, not the three topics between them: pushed all at once, a topic
    can be read hours of event time ahead of another, and whatever the lagging topic then
    brings is late (a correction, with revision > 0). Feeding as a live plant does -- the
    watermark-moving events after the rest -- keeps every row at revision 0.
    """
    produce(settings, events)
    wait_until(
        lambda: flow.metrics().get("items_in", 0) >= len(events),
        180, f"the flow read {len(events)} events", [flow],
    )  # fmt: skip
    produce(settings, last)


def query(dsn: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


def shift_kpis(dsn: str, asset: str, convention: str = "oee.com") -> dict[str, Any] | None:
    with psycopg.connect(dsn) as conn:
        cur = conn.execute(
            "SELECT * FROM oee_by_shift WHERE asset = %s AND convention = %s", (asset, convention)
        )
        row = cur.fetchone()
        if row is None:
            return None
        assert cur.description is not None
        return dict(zip([c.name for c in cur.description], row, strict=True))


def test_published_examples_through_the_flow(
    local_stack: Stack, db_dsn: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(local_stack, db_dsn, topic_prefix, tmp_path / ".asbuilt")
    with FlowProcess("oee", settings) as flow:
        feed(settings, flow, oeecom_events() + flux_events(), pushes())
        wait_until(
            lambda: (k := shift_kpis(db_dsn, OEECOM)) is not None and k["minutes"] == 480
            and (f := shift_kpis(db_dsn, FLUX)) is not None and f["minutes"] == 480,
            180, "both shifts complete in oee_by_shift", [flow],
        )  # fmt: skip
    k = shift_kpis(db_dsn, OEECOM)
    assert k is not None
    assert k["shift"] == "early"
    assert k["pbt_s"] == pytest.approx(420 * 60)
    assert k["availability"] == pytest.approx(0.888095, abs=1e-6)
    assert k["performance"] == pytest.approx(0.861081, abs=1e-6)
    assert k["quality"] == pytest.approx(0.978050, abs=1e-6)
    assert k["oee"] == pytest.approx(0.747937, abs=1e-6)
    assert k["pq"] == 19_271
    revisions = query(db_dsn, "SELECT DISTINCT revision FROM oee_minutes")
    assert revisions == [(0,)]  # fed in order: nothing was corrected
    # Flux: their run time runs to 08:00:01 (27,541 s); our 8 h of windows give 27,540 s, so
    # availability 0.95625 and performance 0.98976 differ from theirs in the 5th digit (see
    # tests/unit/test_accounting_timeline.py); quality and OEE match to the digit.
    f = shift_kpis(db_dsn, FLUX)
    assert f is not None
    assert f["pbt_s"] == pytest.approx(28_800)
    assert f["availability"] == pytest.approx(27_540 / 28_800)
    assert f["performance"] == pytest.approx(1298 * 21 / 27_540)
    assert f["quality"] == pytest.approx(0.98998, abs=1e-5)
    assert f["oee"] == pytest.approx(0.93698, abs=1e-5)
    # master data and shift instances written by the flow
    assets = dict(query(db_dsn, "SELECT asset, ideal_cycle_s FROM assets"))
    assert assets[OEECOM] == 1.0
    assert assets[FLUX] == 21.0
    line = query(db_dsn, "SELECT site, area, line FROM assets WHERE asset = %s", OEECOM)
    assert line == [("golden/ex", "golden/ex/area", "golden/ex/area/cell")]
    shifts = query(db_dsn, "SELECT shift, start_ts, end_ts FROM shifts ORDER BY start_ts")
    assert ("early", MON + timedelta(hours=6), MON + timedelta(hours=14)) in shifts
    assert ("flux", TUE, TUE + timedelta(hours=8)) in shifts
    # closure on every stored row
    bad = query(
        db_dsn,
        "SELECT count(*) FROM oee_minutes WHERE abs(production_s + setup_s + breakdown_s + "
        "minor_stop_s + external_s + idle_s + unknown_s + planned_downtime_s + not_scheduled_s"
        " - 60) > 1e-9",
    )
    assert bad == [(0,)]


def test_late_event_corrects_rows_and_rollups(
    local_stack: Stack, db_dsn: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(local_stack, db_dsn, topic_prefix, tmp_path / ".asbuilt")
    with FlowProcess("oee", settings) as flow:
        feed(settings, flow, oeecom_events(), pushes()[:1])
        wait_until(
            lambda: (k := shift_kpis(db_dsn, OEECOM)) is not None and k["minutes"] == 480,
            180, "the shift in oee_by_shift", [flow],
        )  # fmt: skip
        before = shift_kpis(db_dsn, OEECOM)
        assert before is not None
        # a stop at 07:50-07:52 reported 17 h late (beyond the 10 h lateness, within 48 h)
        ingest = MON + timedelta(days=1, hours=1)
        late = [
            state(OEECOM, MON + timedelta(hours=7, minutes=50), "Held", "100.20", ingest),
            state(OEECOM, MON + timedelta(hours=7, minutes=52), "Execute", None, ingest),
        ]
        produce(settings, late)
        # read in one poll, the two late events are one correction of 07:50 and 07:51; read
        # in two, the Held alone first changes 07:50-07:59 (up to the next state change, the
        # break at 08:00) and the Execute then puts 07:52-07:59 back (revision 2, same values)
        wait_until(
            lambda: query(
                db_dsn,
                "SELECT revision, corrected_at FROM oee_minutes WHERE asset = %s AND ts = %s",
                OEECOM, MON + timedelta(hours=7, minutes=51),
            ) == [(1, ingest)],
            120, "the corrected minutes", [flow],
        )  # fmt: skip
        wait_until(
            lambda: (k := shift_kpis(db_dsn, OEECOM)) is not None
            and k["adet_s"] == pytest.approx(before["adet_s"] + 120),
            120, "the shift roll-up corrected", [flow],
        )  # fmt: skip
    rows = query(
        db_dsn,
        "SELECT ts, breakdown_s, production_s, revision, corrected_at FROM oee_minutes "
        "WHERE asset = %s AND revision > 0 ORDER BY ts",
        OEECOM,
    )
    minute = lambda m: MON + timedelta(hours=7, minutes=m)  # noqa: E731
    assert rows[:2] == [(minute(50), 60.0, 0.0, 1, ingest), (minute(51), 60.0, 0.0, 1, ingest)]
    assert rows[2:] in ([], [(minute(m), 0.0, 60.0, 2, ingest) for m in range(52, 60)])
    # an event older than the correction horizon (48 h) cannot correct: a dead letter says so
    with FlowProcess("oee", settings) as flow:
        ancient = state(OEECOM, MON - timedelta(days=3), "Held", "100.20", ingest)
        produce(settings, [ancient])
        wait_until(
            lambda: query(db_dsn, "SELECT count(*) FROM dead_letters") == [(1,)],
            120, "the too-late event as a dead letter", [flow],
        )  # fmt: skip
    ((reason, origin),) = query(db_dsn, "SELECT reason, origin FROM dead_letters")
    assert "correction horizon" in reason
    assert origin == f"oee/{OEECOM}/{ancient.event_id}"
    after = shift_kpis(db_dsn, OEECOM)
    assert after is not None
    assert after["availability"] == pytest.approx((373 - 2) / 420, abs=1e-9)
    assert after["pq"] == before["pq"]
    hourly = query(
        db_dsn,
        "SELECT breakdown_s FROM oee_hourly WHERE asset = %s AND ts = %s",
        OEECOM,
        MON + timedelta(hours=7),
    )
    assert hourly == [(47 * 60 + 120.0,)]


KILL_LATENESS_S = 3600
CHUNK_S = 180


def many_events(assets: list[str], hours: int) -> list[Event]:
    """A few machines for ``hours`` from Monday 06:00: stops every 40 min, counts every 10 s."""
    t0 = MON + timedelta(hours=6)
    events: list[Event] = []
    for n, asset in enumerate(assets):
        value = 1000 * n  # a baseline that is not production
        for s in range(0, hours * 3600, 10):
            ts = t0 + timedelta(seconds=s)
            phase = (s + 300 * n) % 2400
            if phase == 0 or s == 0:
                events.append(state(asset, ts, "Execute"))
            elif phase == 1800:
                events.append(state(asset, ts, "Held", "100.20"))
            if phase < 1800:
                value += 7 + n
            events.append(counter(asset, ts, "processed", value))
            if s % 60 == 0:
                events.append(tick(asset, ts))
    events.sort(key=lambda e: e.ts)
    return events


COLUMNS = (
    "ts", "asset", "production_s", "breakdown_s", "planned_downtime_s", "not_scheduled_s",
    "unknown_s", "processed", "defective", "shift", "shift_start", "mapping_version",
    "revision", "corrected_at",
)  # fmt: skip


def live_run(
    settings: Settings,
    dsn: str,
    events: list[Event],
    end: datetime,
    assets: list[str],
    kill_at: set[int],
) -> None:
    """Feed ``events`` as a live plant would (a chunk of CHUNK_S event time, then wait until
    the flow wrote the rows up to its watermark), SIGKILL the flow after the chunks in
    ``kill_at`` and start it again (it resumes from its last snapshot), then move the
    watermark past ``end`` and wait for every row."""
    t0 = events[0].ts
    chunks: dict[int, list[Event]] = {}
    for e in events:
        chunks.setdefault(int((e.ts - t0).total_seconds()) // CHUNK_S, []).append(e)
    expected = len(assets) * (int((end - t0).total_seconds()) // 60 + 2)
    flow = FlowProcess("oee", settings).start()
    try:
        for k in sorted(chunks):
            chunk = chunks[k]
            produce(settings, chunk)
            watermark = max(e.ts for e in chunk) - timedelta(seconds=KILL_LATENESS_S)
            need = len(assets) * max(0, int((watermark - t0).total_seconds()) // 60)
            wait_until(
                lambda need=need: query(dsn, "SELECT count(*) FROM oee_minutes")[0][0] >= need,
                120, f"{need} rows after chunk {k}", [flow],
            )  # fmt: skip
            if k in kill_at:
                flow.kill()
                flow.start()
        produce(settings, [push(a, end + timedelta(seconds=KILL_LATENESS_S + 120)) for a in assets])
        wait_until(
            lambda: query(dsn, "SELECT count(*) FROM oee_minutes") == [(expected,)],
            180, f"all {expected} rows", [flow],
        )  # fmt: skip
    finally:
        if flow.alive():
            flow.stop()


def test_sigkill_restart_gives_identical_minutes(
    local_stack: Stack, db_dsn: str, topic_prefix: str, tmp_path: Path
) -> None:
    assets = [f"golden/ex/area/cell/m{i}" for i in (1, 2, 3)]
    hours = 3
    events = many_events(assets, hours)
    end = MON + timedelta(hours=6 + hours)

    # 1. uninterrupted
    plain = settings_for(
        local_stack, db_dsn, topic_prefix, tmp_path / "a" / ".asbuilt",
        oee_lateness_s=KILL_LATENESS_S,
    )  # fmt: skip
    live_run(plain, db_dsn, events, end, assets, set())
    want = table_rows(db_dsn, "oee_minutes", ["asset", "ts"], COLUMNS)
    shifts_want = table_rows(db_dsn, "oee_shifts", ["asset", "shift_start"])
    assert {r[COLUMNS.index("revision")] for r in want} == {0}
    assert sum(r[COLUMNS.index("processed")] for r in want) > 0
    assert sum(r[COLUMNS.index("breakdown_s")] for r in want) > 0

    # 2. the same input on fresh topics into emptied tables, SIGKILLed twice along the way
    with psycopg.connect(db_dsn) as conn:
        conn.execute("TRUNCATE oee_minutes, oee_hourly, oee_shifts, oee_daily")
    killed = settings_for(
        local_stack, db_dsn, topic_prefix + "k", tmp_path / "b" / ".asbuilt",
        oee_lateness_s=KILL_LATENESS_S,
    )  # fmt: skip
    n = len({int((e.ts - events[0].ts).total_seconds()) // CHUNK_S for e in events})
    live_run(killed, db_dsn, events, end, assets, {n // 3, 2 * n // 3})
    got = table_rows(db_dsn, "oee_minutes", ["asset", "ts"], COLUMNS)
    assert got == want
    shifts_got = table_rows(db_dsn, "oee_shifts", ["asset", "shift_start"])
    strip = lambda rows: [r[:-1] for r in rows]  # noqa: E731 - updated_at differs
    assert strip(shifts_got) == strip(shifts_want)


def test_a_backlog_is_read_in_step_across_topics(
    local_stack: Stack, db_dsn: str, topic_prefix: str, tmp_path: Path
) -> None:
    """Three hours of three machines already in Kafka when the flow starts (record times = the
    ingest times, as a connector's live records carry them), read with the default lateness
    (120 s): the sparse states topic and the dense counters topic are read in step (the source
    aligns its partitions), so every minute is written once -- revision 0 everywhere -- with
    the values the pure core computes from the events in order. (Read at each topic's own
    pace, the states of three hours arrive first and every count after them is late.)"""
    from pipelines.accounting.model import MinuteRow
    from pipelines.accounting.timeline import AssetTimeline
    from pipelines.oee.flow import OEE_COLUMNS, minute_row, plant_of, timeline_config

    assets = [f"golden/ex/area/cell/m{i}" for i in (1, 2, 3)]
    events = many_events(assets, 3)
    settings = settings_for(
        local_stack, db_dsn, topic_prefix, tmp_path / ".asbuilt", oee_lateness_s=120.0
    )
    cfg = timeline_config(settings, plant_of(settings))
    timelines = {a: AssetTimeline(a) for a in assets}
    want = sorted(
        (
            minute_row(o)
            for e in events
            for o in timelines[e.asset].push(e, cfg)
            if isinstance(o, MinuteRow)
        ),
        key=lambda r: (r[1], r[0]),
    )
    assert {r[OEE_COLUMNS.index("revision")] for r in want} == {0}
    produce(settings, events, record_time=True)
    with FlowProcess("oee", settings) as flow:
        wait_until(
            lambda: query(db_dsn, "SELECT count(*) FROM oee_minutes")[0][0] >= len(want),
            180, f"{len(want)} rows", [flow],
        )  # fmt: skip
    got = table_rows(db_dsn, "oee_minutes", ["asset", "ts"], OEE_COLUMNS)
    assert got == want
