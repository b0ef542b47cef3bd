"""The plant engine: deterministic, chunking-independent, and its ground truth is consistent."""

from __future__ import annotations

import bisect
import itertools
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from asbuilt.events import MODE_MAINTENANCE, MODE_MANUAL, MODE_PRODUCE, PACKML_STATES
from asbuilt.plant import PlantModel, default_plant
from simulator.engine import VARIABLES, Occurrence, Plant, Write
from simulator.truth import StateInterval, Truth

pytestmark = pytest.mark.unit

MODEL = default_plant()
MONDAY_0500 = datetime(2024, 6, 3, 3, 0, tzinfo=UTC)  # 05:00 Europe/Zurich, an hour before shift
EIGHT_HOURS = timedelta(hours=8)
Output = list[Write | Occurrence]


def run(
    model: PlantModel, start: datetime, length: timedelta, step: timedelta | None = None
) -> tuple[Plant, Output]:
    plant = Plant(model, start)
    if step is None:
        return plant, plant.advance(start + length)
    out: Output = []
    t = start
    while t < start + length:
        t = min(t + step, start + length)
        out.extend(plant.advance(t))
    return plant, out


@pytest.fixture(scope="module")
def day() -> tuple[Plant, Output]:
    """The default plant from Monday 05:00 local for 8 hours (shift start, two breaks)."""
    return run(MODEL, MONDAY_0500, EIGHT_HOURS)


def writes(out: Output, variable: str, asset: str | None = None) -> list[Write]:
    return [
        o
        for o in out
        if isinstance(o, Write) and o.variable == variable and (asset is None or o.asset == asset)
    ]


def check_invariants(plant: Plant, out: Output) -> None:
    truth = plant.truth
    start, end = truth.start, truth.end
    # output sorted by time, all in (start, end], timezone-aware UTC
    stamps = [o.ts for o in out]
    assert stamps == sorted(stamps)
    assert all(start < ts <= end and ts.utcoffset() == timedelta(0) for ts in stamps)
    # intervals tile [start, end) per asset: no gap, no overlap, no empty interval but the last
    # one when the state changed at the last tick (the tick at `end` is simulated: see truth.py)
    by_asset: dict[str, list[StateInterval]] = defaultdict(list)
    for iv in truth.intervals():
        by_asset[iv.asset].append(iv)
    assert set(by_asset) == set(plant.assets())
    for intervals in by_asset.values():
        assert intervals[0].start == start
        assert intervals[-1].end == end
        for a, b in itertools.pairwise(intervals):
            assert a.end == b.start
            assert (a.state, a.mode, a.stop_reason, a.blocked, a.starved) != (
                b.state,
                b.mode,
                b.stop_reason,
                b.blocked,
                b.starved,
            )
        assert all(iv.start < iv.end for iv in intervals[:-1])
        assert intervals[-1].start < end or intervals[-1].start == intervals[-1].end == end
        for iv in intervals:
            assert iv.state in PACKML_STATES
            assert 0 <= iv.defective <= iv.processed
            if iv.processed:
                assert (iv.state, iv.mode) == ("Execute", MODE_PRODUCE)
    # accumulators: non-decreasing, defective <= processed, equal to the truth's sums
    for asset in plant.assets():
        processed = [w.value for w in writes(out, "ProcessedCount", asset)]
        defective = [w.value for w in writes(out, "DefectiveCount", asset)]
        assert processed == sorted(processed)
        assert defective == sorted(defective)
        final_p, final_d = truth.counts[asset]
        assert final_d <= final_p
        assert sum(iv.processed for iv in by_asset[asset]) == final_p
        assert sum(iv.defective for iv in by_asset[asset]) == final_d
        assert (processed or [0])[-1] == final_p
        assert (defective or [0])[-1] == final_d
    # the state writes replay to the truth's intervals
    for asset, intervals in by_asset.items():
        changes = [iv.start for iv in intervals[1:]]
        state_ts = sorted(
            {
                w.ts
                for w in out
                if isinstance(w, Write)
                and w.asset == asset
                and w.variable in ("State", "UnitMode", "StopReason", "Blocked", "Starved")
            }
        )
        assert state_ts == changes
    # every consumed lot was produced earlier or is a raw / opening lot
    raw = {r.lot for r in truth.raw_lots}
    produced_at: dict[str, datetime] = {}
    for mv in truth.movements:
        if mv.direction == "produced":
            produced_at.setdefault(mv.lot, mv.ts)
        else:
            assert mv.lot in raw or (mv.lot in produced_at and produced_at[mv.lot] <= mv.ts), mv
        assert mv.quantity > 0


# --- determinism -------------------------------------------------------------------------------


def test_same_seed_same_history_other_seed_other_history() -> None:
    _, a = run(MODEL, MONDAY_0500, timedelta(hours=2))
    _, b = run(MODEL, MONDAY_0500, timedelta(hours=2))
    _, c = run(MODEL.model_copy(update={"seed": MODEL.seed + 1}), MONDAY_0500, timedelta(hours=2))
    assert a == b
    assert a != c


def test_chunking_does_not_change_the_history() -> None:
    length = timedelta(hours=2)
    _, whole = run(MODEL, MONDAY_0500, length)
    plant_1s, by_second = run(MODEL, MONDAY_0500, length, timedelta(seconds=1))
    _, odd = run(MODEL, MONDAY_0500, length, timedelta(seconds=7, microseconds=300_001))
    assert by_second == whole
    assert odd == whole
    assert plant_1s.now == MONDAY_0500 + length


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# the checkweigher goes Suspending -> Suspended at the last tick (04:40 UTC): the truth lost that
# state change (its interval, [end, end), was dropped as empty)
@example(seed=1430, chunk_ms=200, offset_min=60)
@given(
    seed=st.integers(min_value=0, max_value=2**31),
    chunk_ms=st.integers(min_value=200, max_value=900_000),
    offset_min=st.integers(min_value=0, max_value=7 * 24 * 60),
)
def test_invariants_hold_for_any_seed_chunking_and_start(
    seed: int, chunk_ms: int, offset_min: int
) -> None:
    model = MODEL.model_copy(update={"seed": seed})
    start = MONDAY_0500 + timedelta(minutes=offset_min)
    length = timedelta(minutes=40)
    _, whole = run(model, start, length)
    plant, chunked = run(model, start, length, timedelta(milliseconds=chunk_ms))
    assert chunked == whole
    check_invariants(plant, chunked)


def test_a_state_change_at_the_last_tick_is_in_the_truth_with_its_counts(
    tmp_path: Path,
) -> None:
    blister = "acme/basel/packaging/line1/blister"
    end = datetime(2024, 6, 3, 4, 0, 10, tzinfo=UTC)  # the blister starts to execute and counts
    plant, out = run(MODEL, MONDAY_0500, end - MONDAY_0500)
    last = plant.truth.intervals(blister)[-1]
    assert (last.start, last.end, last.state, last.mode) == (end, end, "Execute", MODE_PRODUCE)
    assert [w.value for w in writes(out, "State", blister) if w.ts == end] == ["Execute"]
    processed, defective = plant.truth.counts[blister]
    assert last.processed > 0
    assert sum(iv.processed for iv in plant.truth.intervals(blister)) == processed
    assert sum(iv.defective for iv in plant.truth.intervals(blister)) == defective
    check_invariants(plant, out)
    plant.truth.write_jsonl(tmp_path / "truth.jsonl")  # the empty last interval survives a file
    assert Truth.read_jsonl(tmp_path / "truth.jsonl").intervals() == plant.truth.intervals()


def test_the_default_day_keeps_every_invariant(day: tuple[Plant, Output]) -> None:
    check_invariants(*day)


# --- variables ---------------------------------------------------------------------------------


def test_initial_gives_every_variable_of_every_asset_at_start() -> None:
    plant = Plant(MODEL, MONDAY_0500)
    initial = plant.initial()
    assert {w.ts for w in initial} == {MONDAY_0500}
    for asset in plant.assets():
        names = [w.variable for w in initial if w.asset == asset]
        assert names == [v.name for v in plant.variables(asset)]
    states = {w.value for w in initial if w.variable == "State"}
    assert states == {"Idle"}  # an hour before the shift: not scheduled
    assert {w.value for w in initial if w.variable == "StopReason"} == {"800.20"}


def test_write_values_have_the_documented_types(day: tuple[Plant, Output]) -> None:
    plant, out = day
    types = {v.name: v.data_type for v in VARIABLES}
    for w in out:
        if not isinstance(w, Write):
            continue
        kind = types.get(w.variable, "Double")
        expected = {"String": str, "Boolean": bool, "UInt32": int, "Double": float}[kind]
        assert type(w.value) is expected, w
        assert w.quality in ("good", "uncertain", "bad")
    assert {w.value for w in writes(out, "State")} <= set(PACKML_STATES)
    assert {w.value for w in writes(out, "UnitMode")} <= {MODE_PRODUCE, MODE_MANUAL}
    assert all(w.asset in plant.assets() for w in out)


def test_process_values_follow_their_period_and_are_sometimes_uncertain(
    day: tuple[Plant, Output],
) -> None:
    _, out = day
    force = writes(out, "compression_force", "acme/basel/osd/train1/press")
    gaps = {(b.ts - a.ts).total_seconds() for a, b in itertools.pairwise(force)}
    assert min(gaps) == 1  # sampled every second
    running = [w.value for w in force if isinstance(w.value, float) and w.value > 5]
    assert 11.5 < sum(running) / len(running) < 12.5
    qualities = {w.quality for w in out if isinstance(w, Write)}
    assert "uncertain" in qualities


def test_counters_change_at_most_once_per_tick(day: tuple[Plant, Output]) -> None:
    _, out = day
    seen: set[tuple[str, str, datetime]] = set()
    for w in out:
        if isinstance(w, Write):
            key = (w.asset, w.variable, w.ts)
            assert key not in seen, w
            seen.add(key)


# --- behaviour ---------------------------------------------------------------------------------


def test_no_production_outside_shifts_or_in_breaks(day: tuple[Plant, Output]) -> None:
    plant, out = day
    cal = MODEL.calendar
    counted = writes(out, "ProcessedCount")
    assert counted
    for w in counted:
        status = cal.status(w.ts)
        assert status.shift is not None, w
        assert not status.in_break, w
    for iv in plant.truth.intervals():
        if (iv.state, iv.mode) == ("Execute", MODE_PRODUCE):
            status = cal.status(iv.start)
            assert status.shift is not None
            assert not status.in_break
            assert cal.next_change(iv.start) >= iv.end
    # during breaks and before the shift every machine is Stopped/Idle with the calendar's reason
    reasons = {
        iv.stop_reason
        for iv in plant.truth.intervals()
        if cal.status(iv.start).in_break and iv.state in ("Stopped", "Idle")
    }
    assert "800.10" in reasons


def test_failures_minor_stops_and_changeovers_happen(day: tuple[Plant, Output]) -> None:
    plant, _ = day
    intervals = plant.truth.intervals()
    states = {iv.state for iv in intervals}
    assert {"Held", "Aborted", "Suspended", "Execute", "Starting", "Resetting"} <= states
    failure = [iv for iv in intervals if iv.state in ("Held", "Aborted")]
    assert all(iv.stop_reason.split(".")[0] in ("100", "200") for iv in failure)
    assert any(iv.stop_reason.startswith("500.") and iv.state == "Suspended" for iv in intervals)
    setup = [iv for iv in intervals if iv.mode == MODE_MANUAL]
    assert {iv.stop_reason for iv in setup} == {"300.10", "300.20"}
    assert all(iv.processed == 0 for iv in setup)
    # alarms: each raised one is cleared (or still active at the end)
    active: dict[tuple[str, str], int] = defaultdict(int)
    for alarm in plant.truth.alarms:
        active[(alarm.asset, alarm.alarm)] += 1 if alarm.active else -1
        assert active[(alarm.asset, alarm.alarm)] in (0, 1)


def test_machines_run_below_design_speed_some_of_the_time(day: tuple[Plant, Output]) -> None:
    _, out = day
    blister = writes(out, "CurMachSpeed", "acme/basel/packaging/line1/blister")
    speeds = {w.value for w in blister}
    assert 120.0 in speeds
    assert any(isinstance(s, float) and 0 < s < 120.0 for s in speeds)


def test_rejects_include_start_up_rejects(day: tuple[Plant, Output]) -> None:
    plant, _ = day
    for asset in plant.assets():
        processed, defective = plant.truth.counts[asset]
        assert defective <= processed
    intervals = plant.truth.intervals("acme/basel/packaging/line1/blister")
    after_start = [
        b
        for a, b in itertools.pairwise(intervals)
        if a.state == "Starting" and b.state == "Execute" and b.processed >= 100
    ]
    assert after_start
    # the first Execute after a start rejects far more than the random rate
    rate = MODEL.assets["acme/basel/packaging/line1/blister"].reject_rate
    first = sum(iv.defective for iv in after_start) / sum(iv.processed for iv in after_start)
    assert first > 3 * rate


def state_at(intervals: Sequence[StateInterval], ts: datetime) -> StateInterval:
    i = bisect.bisect_right([iv.start for iv in intervals], ts) - 1
    return intervals[i]


def test_starved_and_blocked_propagate_along_a_line(day: tuple[Plant, Output]) -> None:
    plant, _ = day
    truth = plant.truth
    cells = ["blister", "cartoner", "checkweigher", "case_packer"]
    starved_seen = blocked_seen = False
    for line in ("line1", "line2"):
        paths = [f"acme/basel/packaging/{line}/{c}" for c in cells]
        ivs = {p: truth.intervals(p) for p in paths}
        for i, path in enumerate(paths):
            for iv in ivs[path]:
                if iv.state != "Suspended":
                    continue
                if iv.starved:
                    assert i > 0  # the first cell is fed by its order, never starved
                    assert iv.stop_reason == "600.10"
                    starved_seen = True
                if iv.blocked:
                    assert i < len(paths) - 1
                    downstream = state_at(ivs[paths[i + 1]], iv.start)
                    assert downstream.state != "Execute" or downstream.blocked is False
                    blocked_seen = True
                    # somewhere downstream a machine is not running
                    assert any(
                        state_at(ivs[p], iv.start).state != "Execute" for p in paths[i + 1 :]
                    )
    assert starved_seen
    assert blocked_seen


def test_packaging_cells_are_starved_while_the_upstream_one_is_down(
    day: tuple[Plant, Output],
) -> None:
    plant, _ = day
    truth = plant.truth
    blister = truth.intervals("acme/basel/packaging/line1/blister")
    cartoner = truth.intervals("acme/basel/packaging/line1/cartoner")
    long_failures = [
        iv
        for iv in blister
        if iv.state in ("Held", "Aborted", "Stopped")
        and iv.stop_reason.startswith(("100", "200"))
        and iv.duration_s > 300
    ]
    assert long_failures
    for iv in long_failures:
        later = state_at(cartoner, iv.end - timedelta(seconds=1))
        assert later.starved or later.state != "Execute"


def test_batches_run_through_recipe_phases(day: tuple[Plant, Output]) -> None:
    plant, out = day
    steps = plant.truth.batch_steps
    batches = {s.batch_id for s in steps}
    assert {"GR-00001", "CP-00001", "CT-00001"} <= batches
    completed_procedures = {
        s.batch_id for s in steps if s.transition == "completed" and s.unit_procedure is None
    }
    assert "GR-00001" in completed_procedures
    for batch in completed_procedures:
        phases = [s for s in steps if s.batch_id == batch and s.phase is not None]
        started = [
            (s.unit_procedure, s.operation, s.phase) for s in phases if s.transition == "started"
        ]
        done = [
            (s.unit_procedure, s.operation, s.phase) for s in phases if s.transition == "completed"
        ]
        assert started == done
        assert len(started) >= 2
    granulation = [s for s in steps if s.batch_id == "GR-00001" and s.phase is not None]
    assert len(granulation) == 2 * 16 + sum(
        s.transition in ("held", "restarted") for s in granulation
    )
    events = [o for o in out if isinstance(o, Occurrence) and o.type == "batch"]
    first = next(e for e in events if e.fields["phase"] == "WEIGH_API")
    assert first.fields["parameters"] == {"api_mass": 96.0}
    assert first.fields["recipe_version"] == "3"
    assert first.asset == "acme/basel/osd/train1/dispensing"
    assert {e.fields["transition"] for e in events} >= {"started", "completed"}


def test_genealogy_is_at_least_three_lots_deep(day: tuple[Plant, Output]) -> None:
    plant, out = day
    truth = plant.truth
    depths = truth.lot_depths()
    assert max(depths.values()) >= 3
    packed = {m.lot for m in truth.movements if m.material == "ibu400_fc_20s"}
    assert packed
    assert max(depths[lot] for lot in packed) >= 3
    # API lots are consumed at dispensing, granulate produced, tablets and packs made of them
    materials = [o.fields for o in out if isinstance(o, Occurrence) and o.type == "material"]
    consumed = {(f["material"], f["direction"]) for f in materials}
    assert ("ibuprofen", "consumed") in consumed
    assert ("ibu400_granulate", "produced") in consumed
    assert ("ibu400_coated", "consumed") in consumed
    assert ("ibu400_fc_20s", "produced") in consumed


def test_the_resettable_counter_resets_at_shift_start_and_rolls_over() -> None:
    press = "acme/basel/osd/train1/press"
    start = datetime(2024, 6, 3, 11, 0, tzinfo=UTC)  # 13:00 local, late shift starts at 14:00
    plant, out = run(MODEL, start, timedelta(hours=2))
    limit = MODEL.rollover(press)
    resets = [r.ts for r in plant.truth.counter_resets if r.asset == press]
    assert resets == [datetime(2024, 6, 3, 12, 0, tzinfo=UTC)]
    processed = {w.ts: int(w.value) for w in writes(out, "ProcessedCount", press)}
    base = 0
    wrapped = False
    previous = 0
    for w in writes(out, "ProcessedCountResettable", press):
        if w.ts >= resets[0] and base == 0:
            base = max((v for ts, v in processed.items() if ts < resets[0]), default=0)
        value = int(w.value)
        assert value <= limit
        assert value == (processed.get(w.ts, 0) - base) % (limit + 1) or w.ts == resets[0]
        wrapped |= value < previous and w.ts != resets[0]
        previous = value
    assert wrapped


def test_a_reset_on_demand_applies_at_the_next_tick() -> None:
    blister = "acme/basel/packaging/line1/blister"
    start = datetime(2024, 6, 3, 5, 0, tzinfo=UTC)
    plant = Plant(MODEL, start)
    plant.advance(start + timedelta(minutes=20))
    plant.reset_counter(blister)
    out = plant.advance(start + timedelta(minutes=20, seconds=1))
    assert [w.value for w in writes(out, "ProcessedCountResettable", blister)] in ([0], [1], [2])
    assert plant.truth.counter_resets[-1].reason == "demand"


def test_planned_maintenance_puts_assets_in_maintenance_mode() -> None:
    start = datetime(2024, 6, 5, 7, 30, tzinfo=UTC)  # Wednesday 09:30 local
    plant, _ = run(MODEL, start, timedelta(hours=2))
    window = (datetime(2024, 6, 5, 8, 0, tzinfo=UTC), datetime(2024, 6, 5, 9, 0, tzinfo=UTC))
    for cell in ("blister", "cartoner", "checkweigher", "case_packer"):
        ivs = plant.truth.intervals(f"acme/basel/packaging/line2/{cell}")
        inside = [iv for iv in ivs if window[0] <= iv.start < window[1]]
        assert any(iv.mode == MODE_MAINTENANCE and iv.stop_reason == "400.10" for iv in inside)
        assert sum(iv.processed for iv in inside if iv.mode == MODE_MAINTENANCE) == 0
    line1 = plant.truth.intervals("acme/basel/packaging/line1/blister")
    assert all(iv.mode != MODE_MAINTENANCE for iv in line1)


def test_nothing_runs_at_the_weekend() -> None:
    start = datetime(2024, 6, 8, 6, 0, tzinfo=UTC)  # Saturday
    plant, out = run(MODEL, start, timedelta(hours=1))
    assert writes(out, "ProcessedCount") == []
    assert {iv.state for iv in plant.truth.intervals()} == {"Idle"}


def test_advance_refuses_naive_or_backward_time() -> None:
    plant = Plant(MODEL, MONDAY_0500)
    plant.advance(MONDAY_0500 + timedelta(minutes=1))
    with pytest.raises(ValueError, match="before now"):
        plant.advance(MONDAY_0500)
    with pytest.raises(ValueError, match="naive"):
        plant.advance(datetime(2024, 6, 3, 5, 0))  # noqa: DTZ001 - on purpose
    assert plant.advance(plant.now) == []


# --- truth and scale ---------------------------------------------------------------------------


def test_the_truth_round_trips_through_jsonl(day: tuple[Plant, Output], tmp_path: Path) -> None:
    plant, _ = day
    path = tmp_path / "truth.jsonl"
    plant.truth.write_jsonl(path)
    back = Truth.read_jsonl(path)
    assert back.start == plant.truth.start
    assert back.end == plant.truth.end
    assert back.intervals() == plant.truth.intervals()
    assert back.movements == plant.truth.movements
    assert back.batch_steps == plant.truth.batch_steps
    assert back.raw_lots == plant.truth.raw_lots
    assert back.counts == plant.truth.counts
    assert back.lot_depths() == plant.truth.lot_depths()


def test_five_hundred_assets_load_and_run() -> None:
    data = MODEL.model_dump()
    coated = next(m for m in data["materials"] if m["name"] == "ibu400_coated")
    coated["lots"][0]["quantity"] = 1e9  # enough bulk for every line: a load test
    model = PlantModel.model_validate(data).with_lines(123)
    start = datetime(2024, 6, 3, 6, 0, tzinfo=UTC)
    plant, out = run(model, start, timedelta(minutes=2))
    assert len(plant.assets()) == 499
    assert len(plant.initial()) > 499 * len(VARIABLES)
    assert {w.asset for w in writes(out, "ProcessedCount")} >= {
        "acme/basel/packaging/line123/blister"
    }
    check_invariants(plant, out)
