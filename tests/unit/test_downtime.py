"""Downtime events from classified segments: merging, open/close, losses, corrections."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.accounting.model import CATEGORIES, Category, Segment
from pipelines.downtime.downtime import (
    LOSSES,
    Downtime,
    DowntimeTracker,
    Replacement,
    downtimes,
    loss_of,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
A = "osd/site1/packaging/line1/blister"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def seg(
    start: float,
    end: float | None,
    category: Category,
    reason: str | None = None,
    shift: str | None = "early",
    state: str = "Held",
    mode: str = "Produce",
) -> Segment:
    return Segment(
        asset=A,
        start=at(start),
        end=None if end is None else at(end),
        category=category,
        state="Execute" if category == "production" else state,
        mode=mode,
        stop_reason=reason,
        shift=shift,
    )


NOW = at(1000)


def test_a_stop_spanning_a_shift_change_is_one_event_in_the_shift_it_started_in() -> None:
    segs = [
        seg(0, 10, "production"),
        seg(10, 20, "breakdown", "100.20", shift="early"),  # split at the shift boundary
        seg(20, 35, "breakdown", "100.20", shift="late"),
        seg(35, 50, "production", shift="late"),
    ]
    [d] = downtimes(segs, NOW)
    assert (d.start, d.end, d.duration_s) == (at(10), at(35), 25 * 60.0)
    assert d.shift == "early"
    assert (d.category, d.loss, d.stop_reason, d.state) == (
        "breakdown",
        "equipment_failure",
        "100.20",
        "Held",
    )
    assert d.updated_ts == NOW


def test_a_different_reason_or_category_or_a_gap_starts_a_new_event() -> None:
    segs = [
        seg(0, 5, "breakdown", "100"),
        seg(5, 10, "breakdown", "200"),  # other reason
        seg(10, 15, "setup", "200"),  # other category
        seg(16, 20, "setup", "200"),  # gap of one minute (no data)
    ]
    got = [(d.start, d.end, d.category, d.stop_reason) for d in downtimes(segs, NOW)]
    assert got == [
        (at(0), at(5), "breakdown", "100"),
        (at(5), at(10), "breakdown", "200"),
        (at(10), at(15), "setup", "200"),
        (at(16), at(20), "setup", "200"),
    ]


def test_a_break_inside_a_breakdown_splits_it_around_the_planned_time() -> None:
    segs = [
        seg(0, 10, "breakdown", "100"),
        seg(10, 25, "planned_downtime", None),
        seg(25, 30, "breakdown", "100"),
    ]
    got = [(d.start, d.end, d.loss) for d in downtimes(segs, NOW)]
    assert got == [
        (at(0), at(10), "equipment_failure"),
        (at(10), at(25), "planned_downtime"),
        (at(25), at(30), "equipment_failure"),
    ]


def test_open_while_the_last_segment_is_open() -> None:
    [d] = downtimes(
        [seg(0, 10, "production"), seg(10, 12, "breakdown"), seg(12, None, "breakdown")], NOW
    )
    assert d.is_open
    assert d.end is None
    assert d.duration_s is None
    assert d.start == at(10)
    assert d.loss == "equipment_failure"  # not yet known to be short


@pytest.mark.parametrize(
    ("minutes", "threshold_s", "loss"),
    [
        (1.9, 120.0, "idling_minor_stops"),
        (2.0, 120.0, "equipment_failure"),  # exactly the threshold is not shorter than it
        (2.5, 120.0, "equipment_failure"),
        (2.5, 300.0, "idling_minor_stops"),  # the threshold is a parameter
    ],
)
def test_a_short_breakdown_is_a_minor_stop_once_ended(
    minutes: float, threshold_s: float, loss: str
) -> None:
    [d] = downtimes([seg(0, minutes, "breakdown")], NOW, minor_stop_s=threshold_s)
    assert d.loss == loss
    assert d.category == "breakdown"


@pytest.mark.parametrize(
    ("category", "loss"),
    [
        ("breakdown", "equipment_failure"),
        ("setup", "setup_adjustment"),
        ("minor_stop", "idling_minor_stops"),
        ("external", "idling_minor_stops"),
        ("idle", "idling_minor_stops"),
        ("planned_downtime", "planned_downtime"),
        ("not_scheduled", "not_scheduled"),
        ("unknown", "unknown"),
    ],
)
def test_loss_of_each_category(category: Category, loss: str) -> None:
    assert loss_of(category, 3600.0, 120.0) == loss
    assert loss_of(category, None, 120.0) == loss


def test_production_has_no_loss() -> None:
    with pytest.raises(ValueError, match="production is not a downtime"):
        loss_of("production", 10.0, 120.0)
    assert downtimes([seg(0, 10, "production"), seg(10, None, "production")], NOW) == []


# --- the tracker: open, close, corrections -----------------------------------------------------


def test_tracker_writes_an_open_downtime_then_closes_it() -> None:
    tr = DowntimeTracker()
    assert tr.apply([seg(0, None, "production")], at(0)) is None
    r1 = tr.apply([seg(0, 10, "production"), seg(10, None, "breakdown", "100")], at(10.1))
    assert r1 is not None
    assert (r1.first, r1.last) == (at(10), at(10))
    [open_row] = r1.rows
    assert open_row.end is None
    assert open_row.updated_ts == at(10.1)
    # the timeline splits the open stop at the shift change: nothing to write
    assert (
        tr.apply(
            [seg(10, 20, "breakdown", "100"), seg(20, None, "breakdown", "100", shift="late")],
            at(20),
        )
        is None
    )
    r2 = tr.apply(
        [seg(20, 30, "breakdown", "100", shift="late"), seg(30, None, "production", shift="late")],
        at(30.2),
    )
    assert r2 is not None
    [closed] = r2.rows
    assert (closed.start, closed.end, closed.shift, closed.updated_ts) == (
        at(10),
        at(30),
        "early",
        at(30.2),
    )


def test_tracker_closes_an_open_segment_when_only_the_next_one_is_sent() -> None:
    tr = DowntimeTracker()
    tr.apply([seg(0, None, "breakdown")], at(0))
    r = tr.apply([seg(5, None, "production")], at(5))
    assert r is not None
    assert [(d.start, d.end) for d in r.rows] == [(at(0), at(5))]


def test_repeating_an_emission_changes_nothing() -> None:
    tr = DowntimeTracker()
    batch = [seg(0, 10, "production"), seg(10, 15, "setup", "300"), seg(15, None, "production")]
    assert tr.apply(batch, at(15)) is not None
    assert tr.apply(batch, at(16)) is None  # at-least-once redelivery: idempotent


def test_a_late_event_replaces_the_downtimes_of_its_range() -> None:
    tr = DowntimeTracker()
    tr.apply(
        [
            seg(0, 10, "production"),
            seg(10, 30, "breakdown", "100"),
            seg(30, 40, "production"),
            seg(40, 45, "setup", "300"),
            seg(45, None, "production"),
        ],
        at(45),
    )
    # a late event: the machine was producing 15..20 in the middle of the breakdown
    r = tr.apply(
        [
            seg(10, 15, "breakdown", "100"),
            seg(15, 20, "production"),
            seg(20, 30, "breakdown", "100"),
        ],
        at(50),
    )
    assert r is not None
    assert (r.first, r.last) == (at(10), at(20))
    assert [(d.start, d.end, d.updated_ts) for d in r.rows] == [
        (at(10), at(15), at(50)),
        (at(20), at(30), at(50)),
    ]
    # the setup after it is unchanged and outside the replaced range
    assert tr.emitted[at(40)].updated_ts == at(45)


def test_a_correction_that_removes_a_downtime_replaces_it_with_nothing() -> None:
    tr = DowntimeTracker()
    tr.apply(
        [seg(0, 10, "production"), seg(10, 12, "breakdown"), seg(12, None, "production")], at(12)
    )
    r = tr.apply([seg(10, 12, "production")], at(20))
    assert r is not None
    assert (r.first, r.last, r.rows) == (at(10), at(10), ())


def test_a_correction_that_merges_two_downtimes_moves_no_start() -> None:
    tr = DowntimeTracker()
    tr.apply(
        [
            seg(0, 5, "breakdown", "1"),
            seg(5, 6, "production"),
            seg(6, 10, "breakdown", "1"),
            seg(10, None, "production"),
        ],
        at(10),
    )
    r = tr.apply([seg(5, 6, "breakdown", "1")], at(11))
    assert r is not None
    assert (r.first, r.last) == (at(0), at(6))  # the row at 6 is deleted, the one at 0 grows
    assert [(d.start, d.end) for d in r.rows] == [(at(0), at(10))]


def test_pruning_keeps_whole_runs_and_bounds_memory() -> None:
    tr = DowntimeTracker(keep=timedelta(minutes=30))
    tr.apply(
        [seg(0, 20, "breakdown", "1"), seg(20, 50, "breakdown", "1"), seg(50, 60, "production")],
        at(60),
    )
    tr.apply([seg(60, 100, "setup"), seg(100, None, "production")], at(100))
    # 100 - 30 = 70: the breakdown (ended at 50) and the production before 60 are gone
    assert tr.segments[0].start == at(60)
    assert sorted(tr.emitted) == [at(60)]
    tr2 = DowntimeTracker(keep=timedelta(minutes=30))
    tr2.apply(
        [
            seg(0, 60, "breakdown", "1"),
            seg(60, 90, "breakdown", "1"),
            seg(90, None, "breakdown", "1"),
        ],
        at(90),
    )
    # the run started at 0 is still going: nothing of it may be dropped
    assert tr2.segments[0].start == at(0)


def test_segments_of_two_assets_are_refused() -> None:
    other = Segment("x/y", at(0), None, "idle", "Idle", "Produce", None, None)
    with pytest.raises(ValueError, match="several assets"):
        DowntimeTracker().apply([seg(0, None, "idle"), other], at(0))


# --- invariants --------------------------------------------------------------------------------

cats = st.sampled_from(CATEGORIES)
reasons = st.sampled_from([None, "100", "200"])
steps = st.lists(st.tuples(st.integers(1, 30), cats, reasons), min_size=1, max_size=25)


def chain(parts: list[tuple[int, Category, str | None]], open_last: bool) -> list[Segment]:
    out, t = [], 0.0
    for i, (minutes, cat, reason) in enumerate(parts):
        last = i == len(parts) - 1
        out.append(seg(t, None if (last and open_last) else t + minutes, cat, reason))
        t += minutes
    return out


@settings(max_examples=60, deadline=None)
@given(steps, st.booleans())
def test_downtimes_cover_exactly_the_non_production_time(
    parts: list[tuple[int, Category, str | None]], open_last: bool
) -> None:
    segs = chain(parts, open_last)
    rows = downtimes(segs, NOW)

    # every non-production minute is in exactly one downtime, and no production minute is
    def minutes_of(start: datetime, end: datetime | None) -> set[datetime]:
        stop = end or at(1000)
        return {
            start + timedelta(minutes=m) for m in range(int((stop - start).total_seconds() // 60))
        }

    down = set().union(*(minutes_of(s.start, s.end) for s in segs if s.category != "production"))
    covered = [minutes_of(d.start, d.end) for d in rows]
    assert set().union(*covered) == down
    assert sum(map(len, covered)) == len(down)
    assert all(d.loss in LOSSES for d in rows)
    assert sum(d.end is None for d in rows) <= 1
    for a, b in itertools.pairwise(rows):  # maximal: neighbours differ or have a gap
        assert a.end is not None
        assert a.end <= b.start
        if a.end == b.start:
            assert (a.category, a.stop_reason) != (b.category, b.stop_reason)


@settings(max_examples=40, deadline=None)
@given(steps, st.integers(0, 24))
def test_tracker_fed_piecewise_ends_where_one_batch_does(
    parts: list[tuple[int, Category, str | None]], cut: int
) -> None:
    segs = chain(parts, open_last=True)
    whole = DowntimeTracker()
    whole.apply(segs, NOW)
    pieces = DowntimeTracker()
    cut = min(cut, len(segs))
    pieces.apply(segs[:cut] or segs, NOW)
    pieces.apply(segs[cut:] or segs, NOW)
    strip = lambda rows: [(d.start, d.end, d.category, d.stop_reason, d.loss) for d in rows]  # noqa: E731
    assert strip(sorted(pieces.emitted.values(), key=lambda d: d.start)) == strip(
        sorted(whole.emitted.values(), key=lambda d: d.start)
    )


def test_downtime_same_as_ignores_updated_ts() -> None:
    [d] = downtimes([seg(0, 1, "idle")], at(1))
    assert isinstance(d, Downtime)
    assert d.same_as(downtimes([seg(0, 1, "idle")], at(99))[0])


def test_a_segment_gone_is_forgotten() -> None:
    tr = DowntimeTracker()
    tr.apply(
        [seg(0, 5, "breakdown", "1"), seg(5, 8, "breakdown", "2"), seg(8, None, "production")],
        at(8),
    )
    # a late state change: the reason was "1" all along; the timeline drops the segment at 5
    r = tr.apply([seg(0, 8, "breakdown", "1")], at(9), gone=[at(5)])
    assert r is not None
    assert [(d.start, d.end) for d in r.rows] == [(at(0), at(8))]
    assert (r.first, r.last) == (at(0), at(5))
    r2 = DowntimeTracker().apply([], at(0), gone=[at(1)], asset=A)
    assert r2 is None


# --- the flow's steps with the real timeline (no Kafka, no database) --------------------------

SCENARIO_ASSET = "acme/basel/packaging/line1/blister"
DAY = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday; Europe/Zurich is UTC+1: early ends 13:00 UTC


def utc(hhmm: str) -> datetime:
    h, m = map(int, hhmm.split(":"))
    return DAY + timedelta(hours=h, minutes=m)


# (time, state, mode, reason): the scripted sequence the integration test plays too
SCENARIO_RUNNING: list[tuple[str, str, str, str | None]] = [
    ("12:50", "Execute", "Produce", None),
    ("12:55", "Held", "Produce", "100.20"),  # a jam across the 13:00 shift change
    ("13:10", "Execute", "Produce", None),
    ("13:20", "Suspended", "Produce", "500"),  # a minor stop
    ("13:21", "Execute", "Produce", None),
    ("13:30", "Held", "Produce", "100.10"),  # a breakdown shorter than 120 s
    ("13:31", "Execute", "Produce", None),
    ("13:40", "Held", "Produce", "200.10"),  # the long stop, still open at first
]
SCENARIO_HEARTBEAT = [f"13:{m}" for m in range(41, 51)]  # process values: event time goes on
SCENARIO_END: list[tuple[str, str, str, str | None]] = [("13:52", "Execute", "Produce", None)]

# asset, start, end, category, stop_reason, loss, shift, duration_s
SCENARIO_EXPECTED = [
    (utc("12:55"), utc("13:10"), "breakdown", "100.20", "equipment_failure", "early", 900.0),
    (utc("13:20"), utc("13:21"), "minor_stop", "500", "idling_minor_stops", "late", 60.0),
    (utc("13:30"), utc("13:31"), "breakdown", "100.10", "idling_minor_stops", "late", 60.0),
    (utc("13:40"), utc("13:52"), "breakdown", "200.10", "equipment_failure", "late", 720.0),
]
# after a late state change "13:25 Held 100.20": the run 13:21-13:30 is cut in two
SCENARIO_EXPECTED_AFTER_LATE = sorted(
    [
        *SCENARIO_EXPECTED,
        (utc("13:25"), utc("13:30"), "breakdown", "100.20", "equipment_failure", "late", 300.0),
    ]
)


def late_event(ingest: datetime | None = None) -> object:
    from asbuilt.events import new_state_change

    return new_state_change(
        asset=SCENARIO_ASSET,
        ts=utc("13:25"),
        state="Held",
        mode="Produce",
        stop_reason="100.20",
        ingest_ts=ingest,
    )


SCENARIO_RULES = """
rules:
  - {name: long_stop_5, kind: long_stop, severity: critical, minutes: 5, categories: [breakdown]}
"""


def scenario_events(
    phase: str, ingest: datetime | None = None, lag: timedelta | None = None
) -> list[object]:
    """The events of a phase (ingested at ``ingest``, or ``lag`` after each one's time):
    "running" (state changes, then process values up to 13:50),
    "end" (the long stop ends at 13:52), or "states" / "heartbeat" (the two halves of
    "running", for a flow that reads the two topics unevenly)."""
    if lag is not None:  # ingested `lag` after their source time, as live
        return [
            msgspec.structs.replace(e, ingest_ts=e.ts + lag)  # type: ignore[type-var]
            for e in scenario_events(phase, ingest)
        ]
    if phase in ("states", "heartbeat"):
        events = scenario_events("running", ingest)
        return [e for e in events if (type(e).__name__ == "StateChange") == (phase == "states")]
    from asbuilt.events import new_process_value, new_state_change

    rows = SCENARIO_RUNNING if phase == "running" else SCENARIO_END
    out: list[object] = [
        new_state_change(
            asset=SCENARIO_ASSET, ts=utc(t), state=s, mode=m, stop_reason=r, ingest_ts=ingest
        )  # type: ignore[arg-type]
        for t, s, m, r in rows
    ]
    if phase == "running":
        out += [
            new_process_value(
                asset=SCENARIO_ASSET,
                ts=utc(t),
                signal="speed",
                value=0.0,
                unit="1/min",
                status_code=0,
                ingest_ts=ingest,
            )
            for t in SCENARIO_HEARTBEAT
        ]
    else:
        out.append(
            new_process_value(
                asset=SCENARIO_ASSET,
                ts=utc("13:53"),
                signal="speed",
                value=1.0,
                unit="1/min",
                status_code=0,
                ingest_ts=ingest,
            )
        )
    return out


def test_flow_steps_turn_the_scripted_events_into_the_expected_downtimes_and_alerts() -> None:
    from asbuilt.settings import Settings
    from pipelines.downtime.alerts import AlertEngine, parse_rules
    from pipelines.downtime.flow import alert_step, asset_step
    from pipelines.oee.flow import plant_of, timeline_config

    settings = Settings()
    step = asset_step(timeline_config(settings, plant_of(settings)), 120.0)
    engine_step = alert_step(lambda: AlertEngine(parse_rules(SCENARIO_RULES)))
    state, engine = None, None
    rows: dict[datetime, Downtime] = {}
    alerts = []

    def play(events: list[object], one_batch: bool = False) -> None:
        nonlocal state, engine
        for batch in [events] if one_batch else [[e] for e in events]:
            state, outs = step(state, batch)
            for item in outs:
                if isinstance(item, Replacement):
                    for start in [s for s in rows if item.first <= s <= item.last]:
                        del rows[start]
                    rows.update({d.start: d for d in item.rows})
                engine, new = engine_step(engine, item)
                alerts.extend(new)

    play(scenario_events("running", ingest=utc("13:50")))
    last = rows[utc("13:40")]
    assert last.end is None  # open while it runs
    running = [a for a in alerts if a.raised_ts == utc("13:45")]
    assert {(a.alert_id, a.status) for a in running} == {(running[0].alert_id, "active")}
    assert running[-1].evidence["running_minutes"] == 10  # 13:40 .. 13:50
    play(scenario_events("end", ingest=utc("13:53")))
    got = [
        (d.start, d.end, d.category, d.stop_reason, d.loss, d.shift, d.duration_s)
        for d in sorted(rows.values(), key=lambda d: d.start)
    ]
    assert got == SCENARIO_EXPECTED
    assert rows[utc("13:40")].updated_ts == utc("13:53")
    final = {a.alert_id: a for a in alerts}
    assert sorted((a.raised_ts, a.cleared_ts, a.status) for a in final.values()) == [
        (utc("13:00"), utc("13:10"), "cleared"),  # seen only after it ended
        (utc("13:45"), utc("13:52"), "cleared"),
    ]
    # the same events in one poll give the same rows (events are taken one by one inside)
    one_by_one = dict(rows)
    state, engine, alerts[:] = None, None, []
    rows.clear()
    play(
        scenario_events("running", ingest=utc("13:50")) + scenario_events("end", utc("13:53")), True
    )
    assert rows == one_by_one
    # a late state change (read after all that): a jam from 13:25 in the production run
    play([late_event(utc("14:00"))])
    assert sorted((d.start, d.end, d.stop_reason, d.loss) for d in rows.values()) == [
        (s, e, r, loss) for s, e, _, r, loss, _, _ in SCENARIO_EXPECTED_AFTER_LATE
    ]
    assert rows[utc("13:25")].updated_ts == utc("14:00")
    assert rows[utc("13:20")].updated_ts == utc("13:50")  # unchanged rows keep theirs
