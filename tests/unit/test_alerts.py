"""Alert rules: parsing, raise/update/clear lifecycle, no duplicates, evidence, injected clock."""

from __future__ import annotations

import pickle
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asbuilt.errors import ConfigError
from pipelines.accounting.model import CATEGORIES, Category, MinuteRow
from pipelines.downtime.alerts import (
    ALERT_ID_NAMESPACE,
    Alert,
    AlertEngine,
    BatchSummary,
    FrequentStops,
    LongStop,
    OeeBelow,
    Silent,
    Stale,
    alert_id,
    load_rules,
    parse_rules,
)
from pipelines.downtime.downtime import Downtime, loss_of

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
A = "osd/site1/packaging/line1/blister"
B = "osd/site1/granulation/cell1/fbd"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def stop(
    start: float,
    end: float | None,
    category: Category = "breakdown",
    reason: str | None = "100.20",
    asset: str = A,
) -> Downtime:
    duration = None if end is None else (end - start) * 60
    return Downtime(
        asset=asset,
        start=at(start),
        end=None if end is None else at(end),
        state="Held",
        mode="Produce",
        stop_reason=reason,
        category=category,
        loss=loss_of(category, duration, 120.0),
        shift="early",
        updated_ts=at(start),
    )


def batch(minutes: float, lag_s: float = 0.0, asset: str = A) -> BatchSummary:
    ingest = at(minutes)
    return BatchSummary.of(asset, [(ingest - timedelta(seconds=lag_s), ingest)])


def feed(engine: AlertEngine, *downtimes: Downtime) -> list[Alert]:
    out: list[Alert] = []
    for d in downtimes:
        out += engine.on_downtimes(d.asset, [d], d.start, d.start)
    return out


# --- rules -------------------------------------------------------------------------------------


def test_the_bundled_rules_load_and_cover_every_kind() -> None:
    rules = load_rules()
    assert {type(r) for r in rules} == {LongStop, FrequentStops, OeeBelow, Silent, Stale}
    assert len({r.name for r in rules}) == len(rules)


def test_a_rule_file_is_parsed_with_its_parameters() -> None:
    [rule] = parse_rules(
        """
rules:
  - {name: packaging_stops, kind: frequent_stops, severity: critical,
     assets: "osd/site1/packaging/*", count: 3, minutes: 15}
"""
    )
    assert isinstance(rule, FrequentStops)
    assert (rule.count, rule.minutes, rule.severity) == (3, 15, "critical")
    assert rule.applies_to(A)
    assert not rule.applies_to(B)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("rules: [{name: x, kind: long_stop}]", "minutes"),
        ("rules: [{name: x, kind: nope, minutes: 1}]", "kind"),
        ("rules: [{name: x, kind: silent, seconds: -1}]", "seconds"),
        ("rules: [{name: x, kind: silent, seconds: 5, sevrity: info}]", "sevrity"),
        ("rules: [{name: x, kind: long_stop, minutes: 1, categories: [lunch]}]", "categories"),
        (
            "rules: [{name: x, kind: silent, seconds: 5}, {name: x, kind: stale, seconds: 5}]",
            "repeated: x",
        ),
        ("rules: [", "rules.yaml"),
    ],
)
def test_bad_rules_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_rules(text, "my.yaml")


def test_a_missing_rule_file_says_how_to_fix_it(tmp_path: object) -> None:
    with pytest.raises(ConfigError, match="ASBUILT_ALERT_RULES"):
        load_rules("/nonexistent/rules.yaml")


def test_alert_id_is_uuid5_over_rule_asset_and_raised_time() -> None:
    expected = uuid.uuid5(ALERT_ID_NAMESPACE, f"r\x1f{A}\x1f{at(10).isoformat()}")
    assert alert_id("r", A, at(10)) == str(expected)
    assert alert_id("r", A, at(10)) != alert_id("r", A, at(11))
    assert alert_id("r", A, at(10)) != alert_id("r", B, at(10))


# --- long stop ---------------------------------------------------------------------------------

LONG = LongStop(name="long", minutes=10, severity="critical")


def test_long_stop_raises_updates_and_clears() -> None:
    eng = AlertEngine((LONG,))
    assert feed(eng, stop(0, None)) == []  # open, but only 0 minutes so far
    assert eng.on_batch(batch(9)) == []  # 9 minutes: not yet
    [raised] = eng.on_batch(batch(10.5))
    assert raised.status == "active"
    assert raised.revision == 0
    assert raised.raised_ts == at(10)  # when the condition became true, not when we looked
    assert raised.alert_id == alert_id("long", A, at(10))
    assert (raised.rule, raised.kind, raised.asset, raised.severity) == (
        "long",
        "long_stop",
        A,
        "critical",
    )
    assert raised.evidence == {
        "downtime_start": at(0).isoformat(),
        "category": "breakdown",
        "loss": "equipment_failure",
        "state": "Held",
        "stop_reason": "100.20",
        "limit_minutes": 10,
        "running_minutes": 10,
    }
    assert "100.20" in raised.message
    assert eng.on_batch(batch(10.9)) == []  # same minute: no new revision
    [grown] = eng.on_batch(batch(12.2))
    assert (grown.alert_id, grown.revision, grown.status) == (raised.alert_id, 1, "active")
    assert grown.evidence["running_minutes"] == 12
    assert grown.updated_ts == at(12.2)
    [cleared] = feed(eng, stop(0, 15))
    assert (cleared.alert_id, cleared.revision, cleared.status) == (raised.alert_id, 2, "cleared")
    assert cleared.cleared_ts == at(15)
    assert cleared.evidence["duration_s"] == 900.0
    assert feed(eng, stop(0, 15)) == []  # redelivery: nothing new
    assert eng.on_batch(batch(30)) == []


def test_raising_twice_for_the_same_stop_never_creates_a_second_alert() -> None:
    eng = AlertEngine((LONG,))
    alerts = feed(eng, stop(0, None))
    for m in range(11, 40, 3):
        alerts += eng.on_batch(batch(m))
        alerts += feed(eng, stop(0, None))  # the same open downtime delivered again
    assert len({a.alert_id for a in alerts}) == 1
    revisions = [a.revision for a in alerts]
    assert revisions == sorted(set(revisions))  # strictly increasing, no repeats


def test_a_correction_that_moves_the_stops_start_updates_the_alert() -> None:
    eng = AlertEngine((LONG,))
    feed(eng, stop(0, None))
    [first] = eng.on_batch(batch(20))
    # a late event: the machine ran 0..2; the downtime now starts at 2
    moved = eng.on_downtimes(A, [stop(2, None)], at(0), at(2))
    assert [(a.alert_id, a.status) for a in moved] == [(first.alert_id, "active")]
    assert moved[0].evidence["downtime_start"] == at(2).isoformat()


def test_a_long_stop_seen_only_after_it_ended_is_recorded_already_cleared() -> None:
    eng = AlertEngine((LONG,))
    eng.on_batch(batch(60))
    [a] = feed(eng, stop(0, 25))
    assert (a.status, a.revision, a.raised_ts, a.cleared_ts) == ("cleared", 0, at(10), at(25))


def test_short_stops_planned_time_and_other_assets_raise_nothing() -> None:
    eng = AlertEngine((LongStop(name="long", minutes=10, assets="osd/site1/packaging/*"),))
    eng.on_batch(batch(100))
    assert feed(eng, stop(0, 9), stop(20, 80, "planned_downtime", None)) == []
    eng.on_batch(batch(100, asset=B))
    assert feed(eng, stop(0, 50, asset=B)) == []


def test_long_stop_fires_on_a_tick_without_events() -> None:
    eng = AlertEngine((LONG,))
    eng.on_batch(batch(0))
    feed(eng, stop(0, None))
    assert eng.on_tick(at(5)) == []
    [a] = eng.on_tick(at(11))  # event time extrapolated from the last event's ingest
    assert a.raised_ts == at(10)
    assert a.evidence["running_minutes"] == 11
    assert eng.on_batch(batch(11)) == []  # event time never runs back: no flapping evidence


# --- frequent stops ----------------------------------------------------------------------------

FREQ = FrequentStops(name="freq", count=2, minutes=10)


def test_frequent_stops_raise_when_more_than_k_in_m_minutes_and_clear_when_they_thin_out() -> None:
    eng = AlertEngine((FREQ,))
    assert feed(eng, stop(0, 1, "minor_stop"), stop(3, 4, "minor_stop")) == []
    assert feed(eng, stop(5, 5.5, "setup", "300")) == []  # not a counted category
    [raised] = feed(eng, stop(6, 7, "breakdown"))  # the third within 10 minutes
    assert (raised.status, raised.raised_ts) == ("active", at(6))
    assert raised.evidence["stops"] == 3
    assert raised.evidence["limit"] == 2
    assert raised.evidence["stop_starts"] == [at(m).isoformat() for m in (0, 3, 6)]
    [grown] = feed(eng, stop(8, 9, "minor_stop"))
    assert (grown.alert_id, grown.revision, grown.evidence["stops"]) == (raised.alert_id, 1, 4)
    # the condition holds while 3 stops lie in (t-10, t]: until 3 + 10 = 13
    assert eng.on_batch(batch(12.9)) == []
    [cleared] = eng.on_batch(batch(14))
    assert (cleared.status, cleared.cleared_ts, cleared.revision) == ("cleared", at(13), 2)


# --- oee below ---------------------------------------------------------------------------------


def minute(
    m: int, good: int, production_s: float = 60.0, asset: str = A, cycle: float | None = 1.0
) -> MinuteRow:
    seconds = dict.fromkeys(CATEGORIES, 0.0)
    seconds["production"] = production_s
    seconds["breakdown"] = 60.0 - production_s
    return MinuteRow(
        asset=asset,
        ts=at(m),
        seconds=seconds,
        processed=good + 1,
        defective=1,
        rework=0,
        ideal_cycle_s=cycle,
        shift="early",
        shift_start=T0,
        mapping_version="1",
    )


OEE = OeeBelow(name="oee", threshold=0.5, minutes=3)


def test_oee_below_uses_the_iso_definition_over_complete_windows() -> None:
    eng = AlertEngine((OEE,))
    assert eng.on_minutes([minute(0, 20), minute(1, 20)]) == []  # window incomplete
    [raised] = eng.on_minutes([minute(2, 20)])  # 60 good x 1 s / 180 s PBT = 1/3
    assert (raised.status, raised.raised_ts) == ("active", at(3))
    assert raised.evidence["oee"] == pytest.approx(1 / 3, abs=1e-6)
    assert raised.evidence["pbt_s"] == 180.0
    assert raised.evidence["good_ideal_s"] == 60.0
    # breakdown seconds are in PBT; the ratio is summed, not averaged: (20+20+160)/180 > 0.5
    [cleared] = eng.on_minutes([minute(3, 160, production_s=30.0)])
    assert (cleared.status, cleared.cleared_ts) == ("cleared", at(4))


def test_no_oee_alert_when_pbt_is_zero_or_the_ideal_cycle_is_unknown() -> None:
    eng = AlertEngine((OEE,))
    rows = []
    for m in range(3):
        row = minute(m, 0)
        row.seconds.update({"production": 0.0, "breakdown": 0.0, "not_scheduled": 60.0})
        rows.append(row)
    assert eng.on_minutes(rows) == []
    assert eng.on_minutes([minute(m, 0, cycle=None) for m in range(10, 13)]) == []


def test_a_corrected_minute_row_can_clear_an_oee_alert() -> None:
    eng = AlertEngine((OEE,))
    [raised] = eng.on_minutes([minute(0, 0), minute(1, 0), minute(2, 0)])
    [cleared] = eng.on_minutes([minute(0, 60), minute(1, 60), minute(2, 60)])
    assert cleared.alert_id == raised.alert_id
    assert cleared.status == "cleared"
    assert cleared.evidence.get("condition_withdrawn") is True


# --- silent and stale --------------------------------------------------------------------------

SILENT = Silent(name="silent", seconds=120, severity="critical")


def test_silent_raises_on_an_injected_clock_and_clears_when_events_return() -> None:
    eng = AlertEngine((SILENT,))
    eng.on_batch(batch(0))
    assert eng.on_tick(at(1.9)) == []
    [raised] = eng.on_tick(at(2.5))
    assert (raised.status, raised.raised_ts, raised.updated_ts) == ("active", at(2), at(2.5))
    assert raised.evidence == {"last_event_ingest_ts": at(0).isoformat(), "limit_s": 120}
    assert eng.on_tick(at(3)) == []  # still silent, nothing new: no duplicate
    [cleared] = eng.on_batch(batch(5))
    assert (cleared.alert_id, cleared.status, cleared.cleared_ts) == (
        raised.alert_id,
        "cleared",
        at(5),
    )
    assert cleared.evidence["silent_s"] == 300.0
    assert eng.on_tick(at(5.5)) == []


def test_a_silence_noticed_only_when_events_return_is_recorded_cleared() -> None:
    eng = AlertEngine((SILENT,))
    eng.on_batch(batch(0))
    [a] = eng.on_batch(batch(10))
    assert (a.status, a.raised_ts, a.cleared_ts) == ("cleared", at(2), at(10))


def test_stale_raises_while_source_time_lags_and_clears_when_it_catches_up() -> None:
    eng = AlertEngine((Stale(name="stale", seconds=60),))
    assert eng.on_batch(batch(0, lag_s=5)) == []
    [raised] = eng.on_batch(batch(1, lag_s=90))
    assert (raised.status, raised.raised_ts, raised.evidence["max_lag_s"]) == ("active", at(1), 90)
    [worse] = eng.on_batch(batch(2, lag_s=150))
    assert (worse.revision, worse.evidence["max_lag_s"]) == (1, 150)
    assert eng.on_batch(batch(3, lag_s=100)) == []  # better but still stale: max unchanged
    [cleared] = eng.on_batch(batch(4, lag_s=2))
    assert (cleared.status, cleared.cleared_ts) == ("cleared", at(4))


def test_the_engine_state_survives_pickling_for_recovery() -> None:
    eng = AlertEngine((LONG, SILENT))
    feed(eng, stop(0, None))
    eng.on_batch(batch(12))
    again = pickle.loads(pickle.dumps(eng))
    assert again.on_batch(batch(12.5)) == eng.on_batch(batch(12.5)) == []
    assert again.on_tick(at(20)) == eng.on_tick(at(20))


def test_the_same_facts_in_other_batches_give_the_same_final_alerts() -> None:
    facts = [stop(0, 3, "minor_stop"), stop(4, 5, "minor_stop"), stop(6, 30), stop(40, None)]

    def final(groups: list[list[Downtime]]) -> dict[str, tuple[object, ...]]:
        eng = AlertEngine((LONG, FREQ))
        last: dict[str, tuple[object, ...]] = {}
        for g in groups:
            for a in eng.on_downtimes(A, g, min(d.start for d in g), max(d.start for d in g)):
                last[a.alert_id] = (a.status, a.raised_ts, a.cleared_ts)
        for a in eng.on_batch(batch(60)):
            last[a.alert_id] = (a.status, a.raised_ts, a.cleared_ts)
        return last

    one_by_one = final([[d] for d in facts])
    all_at_once = final([facts])
    assert one_by_one == all_at_once
    assert len(one_by_one) == 3  # frequent stops, the long 6..30 and the open one from 40


def test_the_event_clock_allows_the_lateness_before_raising() -> None:
    eng = AlertEngine((LONG,), lateness=timedelta(minutes=2))
    feed(eng, stop(0, None))
    assert eng.on_batch(batch(11)) == []  # 11 - 2 = 9 minutes of certain event time
    # the end was read late (another topic): no alert was raised that must be withdrawn
    assert feed(eng, stop(0, 9)) == []
    feed(eng, stop(20, None))
    [a] = eng.on_batch(batch(32.5))  # 32.5 - 2 = 30.5 >= 20 + 10
    assert (a.raised_ts, a.evidence["running_minutes"]) == (at(30), 10)
    [c] = feed(eng, stop(20, 31))  # the end is a fact: cleared at once, not 2 minutes later
    assert (c.status, c.cleared_ts) == ("cleared", at(31))


def test_an_alert_raised_on_a_stop_whose_end_was_read_late_is_withdrawn() -> None:
    eng = AlertEngine((LONG,))
    feed(eng, stop(0, None))
    [a] = eng.on_batch(batch(12))
    # the state change that ended the stop at 4 arrives only now: no long stop after all
    [w] = eng.on_downtimes(A, [stop(0, 4)], at(0), at(0))
    assert (w.alert_id, w.status, w.cleared_ts) == (a.alert_id, "cleared", at(12))
    assert w.evidence["condition_withdrawn"] is True


def test_only_a_consistent_clock_moves_event_time() -> None:
    eng = AlertEngine((LONG,))
    feed(eng, stop(0, None))
    # a process value read before the states that follow it: ingest known, clock unknown
    ahead = BatchSummary(asset=A, first_ingest=at(30), last_ingest=at(30), last_lag_s=0.0)
    assert eng.on_batch(ahead) == []
    assert feed(eng, stop(0, 4)) == []  # the late end: no alert was raised to withdraw


def test_ticks_while_the_flow_reads_a_backlog_raise_nothing() -> None:
    eng = AlertEngine((LONG, SILENT), settle=timedelta(seconds=5))
    eng.on_batch(batch(0))
    feed(eng, stop(0, None))
    # wall clock far ahead of what was read, and the source still busy: a backlog
    assert eng.on_tick(at(30), source_idle=False) == []
    # caught up (the source read nothing since the last tick), but not yet settled
    assert eng.on_tick(at(30.05), source_idle=True) == []
    raised = eng.on_tick(at(30.2), source_idle=True)
    assert sorted(a.rule for a in raised) == ["long", "silent"]


def test_a_silence_is_measured_from_the_event_before_the_summary() -> None:
    eng = AlertEngine((SILENT,))
    eng.on_batch(batch(0))
    # events until 0.9 were not summarised (sampling); the next one came at 2.5
    summary = BatchSummary(
        asset=A, first_ingest=at(2.5), last_ingest=at(2.5), last_lag_s=0.0, previous_ingest=at(0.9)
    )
    assert eng.on_batch(summary) == []  # 1.6 minutes of silence: below the 2-minute limit


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 8), st.integers(1, 15), st.sampled_from(["breakdown", "minor_stop"])
        ),
        min_size=1,
        max_size=12,
    ),
    st.lists(st.integers(1, 4), min_size=1, max_size=12),
)
def test_final_alerts_do_not_depend_on_how_the_facts_are_batched(
    gaps_and_lengths: list[tuple[int, int, Category]], cuts: list[int]
) -> None:
    facts, t = [], 0.0
    for gap, length, category in gaps_and_lengths:
        t += gap
        facts.append(stop(t, t + length, category))
        t += length

    def final(groups: list[list[Downtime]]) -> dict[str, tuple[object, ...]]:
        eng = AlertEngine((LONG, FREQ))
        last: dict[str, tuple[object, ...]] = {}
        for g in groups:
            for a in eng.on_downtimes(A, g, g[0].start, g[-1].start):
                last[a.alert_id] = (a.status, a.raised_ts, a.cleared_ts, a.evidence)
        for a in eng.on_batch(batch(t + 100)):
            last[a.alert_id] = (a.status, a.raised_ts, a.cleared_ts, a.evidence)
        return last

    groups, i = [], 0
    for n in cuts * len(facts):
        if i >= len(facts):
            break
        groups.append(facts[i : i + n])
        i += n
    assert final(groups) == final([facts])
