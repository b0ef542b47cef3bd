"""pipelines.quality.flow.WindowStep: one-minute ingest windows per kind, closed by the kind's
ingest clock or by a quiet tick; late rows join the oldest open window; batching does not
matter. (GX runs for real: a window costs a fraction of a second.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from asbuilt import events as ev
from pipelines.quality.flow import AssetKindRows, Polled, Tick, WindowResults, WindowStep
from pipelines.quality.frames import event_row
from tests.unit.test_quality_suites import LIMITS, PRESS

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
GRACE = timedelta(seconds=10)


def state_at(ingest_s: float, source_s: float | None = None) -> tuple[datetime, tuple[Any, ...]]:
    ingest = T0 + timedelta(seconds=ingest_s)
    e = ev.new_state_change(asset=PRESS, ts=T0 + timedelta(seconds=source_s or ingest_s - 1),
                            state="Execute", mode="Produce", ingest_ts=ingest)  # fmt: skip
    return ingest, event_row("states", e, f"t[0]@{ingest_s}")


def closed(outs: list[Any]) -> list[tuple[datetime, int]]:
    return [
        (o.window_start, o.results[0].element_count) for o in outs if isinstance(o, WindowResults)
    ]


def run(batches: list[list[tuple[datetime, tuple[Any, ...]]]]) -> tuple[Any, list[Any]]:
    step = WindowStep(GRACE, LIMITS)
    state, out = None, []
    for b in batches:
        state, o = step(state, Polled("states", b))
        out += o
    return state, out


def test_windows_close_by_the_ingest_clock_and_late_rows_join_the_open_window() -> None:
    rows = [state_at(s) for s in (5, 30, 65, 69.9)]  # :05 :30 in minute 0, :65 :69.9 in minute 1
    rows.append(state_at(70.5))  # the clock passes 0:60 + 10 s: minute 0 closes
    rows.append(state_at(50, source_s=45))  # late (minute 0 is closed): joins minute 1
    state, out = run([rows])
    assert closed(out) == [(T0, 2)]
    assert next(o for o in out if isinstance(o, AssetKindRows)).rows[0][:5] == (
        T0, PRESS, "states", 2, 0,
    )  # fmt: skip
    assert sorted(state.windows) == [T0 + timedelta(minutes=1)]
    assert len(state.windows[T0 + timedelta(minutes=1)]) == 4
    # a quiet tick: nothing read since the previous tick, wall clock past end + grace
    step = WindowStep(GRACE, LIMITS)
    now = T0 + timedelta(minutes=5)
    state, o1 = step(state, Tick(now, {"states": 6}))  # first tick: baseline
    assert o1 == []
    state, o2 = step(state, Tick(now, {"states": 6}))
    assert closed(o2) == [(T0 + timedelta(minutes=1), 4)]
    assert state.windows == {}


def test_how_polls_cut_the_stream_does_not_matter() -> None:
    rows = [state_at(s) for s in (5, 30, 65, 71, 72, 50, 131, 140, 75)]
    _, whole = run([rows])
    _, one_by_one = run([[r] for r in rows])
    key = [(o.window_start, [(r.expectation, r.success, r.element_count) for r in o.results])
           for o in whole if isinstance(o, WindowResults)]  # fmt: skip
    assert key == [
        (o.window_start, [(r.expectation, r.success, r.element_count) for r in o.results])
        for o in one_by_one
        if isinstance(o, WindowResults)
    ]
    assert [w for w, _ in key] == [T0, T0 + timedelta(minutes=1)]


def test_an_ingest_time_far_ahead_does_not_stall_the_kind() -> None:
    future = state_at(100 * 365 * 86_400.0)  # a producer clock in the next century
    state, out = run([[state_at(5), future]])
    assert closed(out) == [(T0, 1)]  # closed: the clock moved (to now + 5 min, not 2126)
    (start,) = state.windows
    assert start < datetime.now(UTC) + timedelta(minutes=6)
