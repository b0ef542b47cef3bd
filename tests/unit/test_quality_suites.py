"""The quality suites catch what each check is for: a good window passes every expectation, and
each kind of bad row fails the expectation meant for it (and, for a message the contract refused,
``schema_valid`` too) -- nothing else.

The good events and the bad ones are shared with the flow's integration test
(tests/integration/test_quality_flow.py), which sends them through the real stack.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from asbuilt import events as ev
from asbuilt import topics
from asbuilt.plant import default_plant
from pipelines.quality.frames import KINDS, Carry, event_row, rejected_row, window_frame
from pipelines.quality.gx import validator
from pipelines.quality.suites import (
    downtime_frame,
    event_suite,
    limits_of,
    oee_frame,
    table_suite,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
PRESS = "acme/basel/osd/train1/press"
BLISTER = "acme/basel/packaging/line1/blister"
LIMITS = limits_of(default_plant())


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def good_events(
    t0: datetime = T0, lag: timedelta = timedelta(seconds=1), base: int = 0
) -> list[ev.Event]:
    """A minute of good events of every kind for two assets (source time t0 + i s, ingested
    ``lag`` later); the ``processed`` counters count from ``base``."""
    out: list[ev.Event] = []
    for asset in (PRESS, BLISTER):
        out += [
            ev.new_state_change(
                asset=asset,
                ts=t0 + s(1),
                state="Starting",
                mode="Produce",
                ingest_ts=t0 + s(1) + lag,
            ),
            ev.new_state_change(
                asset=asset,
                ts=t0 + s(3),
                state="Execute",
                mode="Produce",
                ingest_ts=t0 + s(3) + lag,
            ),
            ev.new_state_change(
                asset=asset,
                ts=t0 + s(40),
                state="Suspended",
                mode="Produce",
                stop_reason="500.10",
                ingest_ts=t0 + s(40) + lag,
            ),
        ]
        for i, v in enumerate((base + 100, base + 150, base + 210)):
            out.append(
                ev.new_counter_sample(
                    asset=asset,
                    ts=t0 + s(5 + 10 * i),
                    counter="processed",
                    value=v,
                    resettable=False,
                    rollover=65535,
                    ingest_ts=t0 + s(5 + 10 * i) + lag,
                )
            )
        # a reset of a resettable counter, and a rollover: both explained falls
        for i, v in enumerate((900, 4)):
            out.append(
                ev.new_counter_sample(
                    asset=asset,
                    ts=t0 + s(6 + 10 * i),
                    counter="batch_count",
                    value=v,
                    resettable=True,
                    ingest_ts=t0 + s(6 + 10 * i) + lag,
                )
            )
        for i, v in enumerate((65530, 3)):
            out.append(
                ev.new_counter_sample(
                    asset=asset,
                    ts=t0 + s(7 + 10 * i),
                    counter="total",
                    value=v,
                    resettable=False,
                    rollover=65535,
                    ingest_ts=t0 + s(7 + 10 * i) + lag,
                )
            )
    for i in range(5):
        out.append(
            ev.new_process_value(
                asset=PRESS,
                ts=t0 + s(2 + i),
                signal="compression_force",
                value=12.0 + i / 10,
                unit="kN",
                status_code=0,
                ingest_ts=t0 + s(2 + i) + lag,
            )
        )
        out.append(
            ev.new_process_value(
                asset=BLISTER,
                ts=t0 + s(2 + i),
                signal="seal_temperature",
                value=185.0,
                unit="Cel",
                status_code=0x40000000 if i == 4 else 0,
                ingest_ts=t0 + s(2 + i) + lag,
            )
        )
    out += [
        ev.new_alarm(
            asset=PRESS,
            ts=t0 + s(9),
            alarm="door_open",
            severity=500,
            message="Guard door open",
            active=True,
            acked=False,
            ingest_ts=t0 + s(9) + lag,
        ),
        ev.new_batch_event(
            asset=PRESS,
            ts=t0 + s(10),
            batch_id="B-1",
            recipe_id="R-1",
            recipe_version="3",
            procedure="compress",
            transition="started",
            ingest_ts=t0 + s(10) + lag,
        ),
        ev.new_material_movement(
            asset=PRESS,
            ts=t0 + s(11),
            direction="consumed",
            lot="L-1",
            material="granulate",
            quantity=25.0,
            unit="kg",
            batch_id="B-1",
            ingest_ts=t0 + s(11) + lag,
        ),
    ]
    return out


def raw(event: ev.Event, **changes: Any) -> bytes:
    """``event`` as JSON with fields changed (a value of ``...`` removes the field) and, unless
    ``event_id`` is among them, a new event id (a changed message is another message)."""
    doc = json.loads(ev.encode(event))
    doc["event_id"] = str(uuid.uuid5(uuid.NAMESPACE_OID, f"{event.event_id}{sorted(changes)}"))
    for k, v in changes.items():
        if v is ...:
            doc.pop(k, None)
        else:
            doc[k] = v
    return json.dumps(doc).encode()


def kind_of(event: ev.Event) -> str:
    return topics.topic_kind_for(event)


def rows_of(kind: str, items: Sequence[ev.Event | bytes]) -> list[tuple[Any, ...]]:
    out = []
    for i, item in enumerate(items):
        origin = f"asbuilt.v1.{kind}[0]@{i}"
        if isinstance(item, bytes):
            out.append(rejected_row(kind, item, origin, "does not match the contract"))
        else:
            out.append(event_row(kind, item, origin))
    return out


def validate(kind: str, items: Sequence[ev.Event | bytes], carry: Carry | None = None) -> Any:
    frame, _ = window_frame(kind, rows_of(kind, items), carry or Carry(), LIMITS)
    return validator().validate(event_suite(kind, LIMITS), frame, (T0, T0 + s(60)), T0 + s(70))


def failing(results: Any) -> set[str]:
    return {r.expectation for r in results if not r.success and r.asset == ""}


def of_kind(kind: str, events: Sequence[ev.Event] | None = None) -> list[ev.Event]:
    return [e for e in (events if events is not None else good_events()) if kind_of(e) == kind]


@pytest.mark.parametrize("kind", KINDS)
def test_good_window_passes_every_expectation(kind: str) -> None:
    results = validate(kind, of_kind(kind))
    assert results, "no results"
    assert failing(results) == set()
    assert {r.asset for r in results} == {""}
    assert len(results) == len(event_suite(kind).checks)
    assert all(r.element_count == len(of_kind(kind)) for r in results)


def last_counter() -> ev.CounterSample:
    c = [e for e in of_kind("counters") if isinstance(e, ev.CounterSample)]
    return [e for e in c if e.asset == PRESS and e.counter == "processed"][-1]


def test_counter_going_backwards_without_reset() -> None:
    last = last_counter()
    back = ev.new_counter_sample(
        asset=PRESS,
        ts=last.ts + s(1),
        counter="processed",
        value=170,
        resettable=False,
        ingest_ts=last.ingest_ts + s(1),
    )
    results = validate("counters", [*of_kind("counters"), back])
    assert failing(results) == {"counter_never_decreases"}
    row = next(r for r in results if r.expectation == "counter_never_decreases" and r.asset)
    assert (row.asset, row.unexpected_count) == (PRESS, 1)
    assert row.examples[0]["event_id"] == back.event_id
    assert row.examples[0]["value"] == -40


def test_counter_decrease_across_windows_uses_the_carried_value() -> None:
    first = of_kind("counters")
    _, carry = window_frame("counters", rows_of("counters", first), Carry(), LIMITS)
    last = last_counter()
    back = ev.new_counter_sample(
        asset=PRESS,
        ts=last.ts + s(60),
        counter="processed",
        value=10,
        resettable=False,
        ingest_ts=last.ingest_ts + s(60),
    )
    fine = ev.new_counter_sample(
        asset=BLISTER,
        ts=last.ts + s(60),
        counter="processed",
        value=300,
        resettable=False,
        ingest_ts=last.ingest_ts + s(60),
    )
    assert failing(validate("counters", [back, fine], carry)) == {"counter_never_decreases"}
    assert failing(validate("counters", [back, fine])) == set()  # without the carry: a baseline


def test_negative_count_refused_by_the_contract() -> None:
    bad = raw(last_counter(), value=-5)
    results = validate("counters", [*of_kind("counters"), bad])
    assert failing(results) == {"schema_valid", "value_non_negative"}
    row = next(r for r in results if r.expectation == "value_non_negative" and r.asset)
    assert row.asset == PRESS
    assert row.examples[0]["value"] == -5
    assert row.examples[0]["origin"].endswith(f"@{len(of_kind('counters'))}")


def test_unknown_state() -> None:
    bad = raw(of_kind("states")[0], state="Exploding")
    results = validate("states", [*of_kind("states"), bad])
    assert failing(results) == {"schema_valid", "state_in_packml_set"}
    row = next(r for r in results if r.expectation == "state_in_packml_set" and r.asset)
    assert row.examples[0]["value"] == "Exploding"


def test_duplicate_event_ids() -> None:
    states = of_kind("states")
    results = validate("states", [*states, states[1]])
    assert failing(results) == {"event_id_unique"}


def test_timestamp_from_2000() -> None:
    old = ev.new_state_change(
        asset=PRESS,
        ts=datetime(2000, 1, 1, tzinfo=UTC),
        state="Execute",
        mode="Produce",
        ingest_ts=T0 + s(50),
    )
    results = validate("states", [*of_kind("states"), old])
    assert failing(results) == {"ts_within_ingest_policy"}
    row = next(r for r in results if r.expectation == "ts_within_ingest_policy" and r.asset)
    assert row.examples[0]["ts"].startswith("2000-01-01")


def test_source_clock_ahead() -> None:
    ahead = ev.new_state_change(
        asset=PRESS, ts=T0 + s(50 + 600), state="Execute", mode="Produce", ingest_ts=T0 + s(50)
    )
    assert failing(validate("states", [*of_kind("states"), ahead])) == {"ts_within_ingest_policy"}


def test_accelerated_simulator_may_run_ahead_of_ingest() -> None:
    """The stack lets a simulated plant faster than real time run ahead of the wall clock (its
    connector's policy too): with max_ahead_s None only the past bound holds."""
    ahead = ev.new_state_change(asset=PRESS, ts=T0 + timedelta(hours=5), state="Execute",
                                mode="Produce", ingest_ts=T0 + s(50))  # fmt: skip
    old = ev.new_state_change(asset=BLISTER, ts=datetime(2000, 1, 1, tzinfo=UTC), state="Execute",
                              mode="Produce", ingest_ts=T0 + s(50))  # fmt: skip
    fast = limits_of(default_plant(), max_ahead_s=None)
    kind = "states"
    frame, _ = window_frame(kind, rows_of(kind, [*of_kind(kind), ahead, old]), Carry(), fast)
    results = validator().validate(event_suite(kind, fast), frame, (T0, T0 + s(60)), T0)
    assert failing(results) == {"ts_within_ingest_policy"}
    assert {r.asset for r in results if not r.success} == {"", BLISTER}


def test_time_going_back_within_a_series() -> None:
    back = ev.new_state_change(
        asset=PRESS, ts=T0 + s(20), state="Execute", mode="Produce", ingest_ts=T0 + s(55)
    )
    results = validate("states", [*of_kind("states"), back])
    assert failing(results) == {"ts_monotonic"}
    row = next(r for r in results if r.expectation == "ts_monotonic" and r.asset)
    assert row.examples[0]["value"] == 20.0  # went back from :40 to :20


def test_process_value_out_of_range() -> None:
    hot = ev.new_process_value(
        asset=PRESS,
        ts=T0 + s(30),
        signal="compression_force",
        value=1e6,
        unit="kN",
        status_code=0,
        ingest_ts=T0 + s(31),
    )
    cold = ev.new_process_value(
        asset="x/y",
        ts=T0 + s(30),
        signal="t",
        value=-300.0,
        unit="Cel",
        status_code=0,
        ingest_ts=T0 + s(31),
    )
    results = validate("process_values", [*of_kind("process_values"), hot])
    assert failing(results) == {"value_below_range_high"}
    row = next(r for r in results if r.expectation == "value_below_range_high" and r.asset)
    assert row.examples[0]["value"]["value"] == 1e6
    results = validate("process_values", [*of_kind("process_values"), cold])
    assert failing(results) == {"value_above_range_low"}  # below absolute zero: the unit's limit


@pytest.mark.parametrize(
    ("kind", "index", "changes", "expected"),
    [
        ("process_values", 0, {"value": "abc"}, {"fields_well_typed", "value_not_null"}),
        ("process_values", 0, {"quality": "meh"}, {"quality_in_set"}),
        ("process_values", 0, {"unit": ""}, {"unit_not_empty"}),
        ("states", 0, {"mode": ...}, {"mode_not_null"}),
        ("states", 0, {"stop_reason": "no reason!"}, {"stop_reason_format"}),
        ("states", 0, {"asset": "a b"}, {"asset_is_isa95_path"}),
        ("states", 0, {"schema_version": 99}, {"schema_version_supported"}),
        ("counters", 0, {"rollover": 0}, {"rollover_positive"}),
        ("alarms", 0, {"severity": 0}, {"severity_in_range"}),
        ("batch", 0, {"transition": "exploded"}, {"transition_in_set"}),
        ("materials", 0, {"quantity": 0}, {"quantity_positive"}),
        ("materials", 0, {"direction": "sideways"}, {"direction_in_set"}),
        ("materials", 0, {"event_id": ...}, {"event_id_not_null"}),
    ],
)
def test_message_refused_by_the_contract_fails_its_check(
    kind: str, index: int, changes: dict[str, Any], expected: set[str]
) -> None:
    events = of_kind(kind)
    bad = raw(events[index], **changes)
    results = validate(kind, [*events, bad])
    assert failing(results) == {"schema_valid", *expected}


def test_unparsable_message_fails_schema_and_not_null_checks() -> None:
    results = validate("alarms", [*of_kind("alarms"), b"\xff not json"])
    assert "schema_valid" in failing(results)
    assert "asset_not_null" in failing(results)
    # no asset known: only the window's row, no per-asset row
    assert not [r for r in results if r.asset and r.expectation == "schema_valid"]


def test_event_row_field_order_matches_the_schema() -> None:
    for e in good_events():
        kind = kind_of(e)
        row = event_row(kind, e, "o")
        back = msgspec.to_builtins(e)
        frame, _ = window_frame(kind, [row], Carry(), LIMITS)
        assert frame["event_id"][0] == e.event_id
        assert frame["asset"][0] == e.asset
        assert frame["ts"][0] == e.ts
        assert frame["valid"][0] is True
        for name in ("state", "counter", "signal", "alarm", "batch_id", "lot"):
            if name in back:
                assert frame[name][0] == back[name]


# --- table suites ------------------------------------------------------------------------------

SECONDS = (
    "production_s",
    "setup_s",
    "breakdown_s",
    "minor_stop_s",
    "external_s",
    "idle_s",
    "unknown_s",
    "planned_downtime_s",
    "not_scheduled_s",
)


def oee_row(minute: int, asset: str = PRESS, **kw: Any) -> tuple[Any, ...]:
    values = {c: 0.0 for c in SECONDS} | {"production_s": 50.0, "idle_s": 10.0}
    values |= {"processed": 40, "defective": 1, "rework": 0, "ideal_cycle_s": 1.0} | kw
    return (
        T0 + timedelta(minutes=minute),
        asset,
        *(values[c] for c in SECONDS),
        values["processed"],
        values["defective"],
        values["rework"],
        values["ideal_cycle_s"],
    )


def oee_failing(rows: list[tuple[Any, ...]]) -> set[str]:
    frame = oee_frame(rows)
    hour = (T0, T0 + timedelta(hours=1))
    return failing(validator().validate(table_suite("oee_minutes"), frame, hour, T0))


def test_oee_minutes_good_hour_passes() -> None:
    rows = [oee_row(m) for m in range(30)]
    rows.append(oee_row(30, processed=80))  # one minute over 1 (its counts came late): allowed
    rows.append(oee_row(31, production_s=0.0, idle_s=60.0, processed=0, defective=0))
    rows.append(
        oee_row(
            32,
            planned_downtime_s=60.0,
            production_s=0.0,
            idle_s=0.0,
            processed=0,
            defective=0,
            ideal_cycle_s=None,
        )
    )
    assert oee_failing(rows) == set()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"idle_s": 9.0}, {"seconds_sum_to_60"}),
        ({"defective": 50, "processed": 40}, {"processed_at_least_defective", "quality_in_0_1"}),
        ({"ideal_cycle_s": 0.0}, {"ideal_cycle_s_positive"}),
        (
            {"planned_downtime_s": 20.0, "idle_s": 0.0, "production_s": 50.0, "setup_s": -10.0},
            {"availability_in_0_1"},
        ),
    ],
)
def test_oee_minutes_bad_row(changes: dict[str, Any], expected: set[str]) -> None:
    rows = [oee_row(m) for m in range(5)] + [oee_row(5, **changes)]
    assert oee_failing(rows) == expected


def test_oee_minutes_hour_with_performance_over_1() -> None:
    rows = [oee_row(m, processed=70) for m in range(15)]  # 70 units at 1 s in 50 s, all hour
    assert oee_failing(rows) == {"hourly_performance_at_most_1"}
    assert oee_failing(rows[:5]) == set()  # too little production to judge
    # a batch machine: one 1800 s batch counted in an hour with 20 min of production
    batch = [oee_row(m, processed=1 if m == 30 else 0, defective=0, ideal_cycle_s=1800.0,
                     production_s=20.0, idle_s=40.0) for m in range(60)]  # fmt: skip
    assert oee_failing(batch) == set()


def test_downtime_events() -> None:
    good = [
        (PRESS, T0, T0 + s(60), "breakdown", "equipment_failure"),
        (PRESS, T0 + s(120), None, "minor_stop", "idling_minor_stops"),
    ]
    suite = table_suite("downtime_events")
    hour = (T0, T0 + timedelta(hours=1))

    def fails(rows: list[tuple[Any, ...]]) -> set[str]:
        return failing(validator().validate(suite, downtime_frame(rows), hour, T0))

    assert fails(good) == set()
    assert fails([*good, (BLISTER, T0 + s(60), T0, "setup", "setup_adjustment")]) == {
        "end_not_before_start"
    }
    assert fails([*good, (BLISTER, T0, T0, "production", "unknown")]) == {"category_in_set"}
    assert fails([*good, (BLISTER, T0, T0, "setup", "bogus")]) == {"loss_in_set"}
