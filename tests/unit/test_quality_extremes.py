"""Contract-valid extremes the quality frame cannot hold (a counter of 2**63 or more, a time
with no UTC equivalent in years 1-9999) are validated as refused rows, never a crash."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import Message

from asbuilt import events as ev
from pipelines.quality.flow import _DECODE, Polled, WindowResults, WindowStep, _QualityPartition
from pipelines.quality.frames import OUT_OF_RANGE, Carry, asset_minute_rows, window_frame
from tests.unit.test_quality_suites import (
    LIMITS,
    T0,
    failing,
    last_counter,
    of_kind,
    raw,
    rows_of,
    validate,
)

pytestmark = pytest.mark.unit


def decoded(payload: bytes) -> ev.Event:
    event: ev.Event = _DECODE(payload)  # the contract takes it: the flow sees an event
    assert isinstance(ev.decode(payload, "o", T0), type(event))
    return event


@pytest.mark.parametrize(
    "changes", [{"value": 2**63}, {"value": 2**64 - 1, "rollover": 2**64 - 1}, {"rollover": 2**63}]
)
def test_a_counter_beyond_int64_is_a_failed_row_not_a_crash(changes: dict[str, Any]) -> None:
    event = decoded(raw(last_counter(), **changes))
    counters = of_kind("counters")
    results = validate("counters", [*counters, event])
    assert {"schema_valid", "fields_well_typed"} <= failing(results)
    row = rows_of("counters", [event])[0]
    assert row[-4:] == (
        False, "asbuilt.v1.counters[0]@0", ",".join(changes),
        OUT_OF_RANGE.format(fields=",".join(changes)),
    )  # fmt: skip
    frame, carry = window_frame("counters", rows_of("counters", [*counters, event]), Carry())
    assert max(carry.last_value.values()) < 2**63
    assert asset_minute_rows("counters", frame, T0)


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("ts", "0001-01-01T00:00:00+01:00"),
        ("ts", "9999-12-31T23:59:59-01:00"),
        ("ingest_ts", "0001-01-01T00:00:00+01:00"),
        ("ingest_ts", "9999-12-31T23:59:59-01:00"),
    ],
)
def test_a_time_with_no_utc_equivalent_is_a_failed_row_not_a_crash(field: str, text: str) -> None:
    states = of_kind("states")
    event = decoded(raw(states[0], **{field: text}))
    refused = raw(states[0], state="Exploding", **{field: text})
    results = validate("states", [*states, event, refused])
    assert {"schema_valid", "fields_well_typed", f"{field}_not_null"} <= failing(results)
    frame, _ = window_frame("states", rows_of("states", [*states, event, refused]), Carry(), LIMITS)
    assert [r[1] for r in asset_minute_rows("states", frame, T0)] == sorted(
        {e.asset for e in states}
    )


def test_the_source_windows_an_ingest_time_with_no_utc_equivalent_by_the_record_time() -> None:
    states = of_kind("states")
    payload = raw(states[0], ingest_ts="9999-12-31T23:59:59-01:00")
    received = datetime(2026, 3, 2, 8, 0, 30, tzinfo=UTC)
    part = _QualityPartition.__new__(_QualityPartition)  # no consumer: _decode alone
    part._topic, part._part_idx, part.kind = "asbuilt.v1.states", 0, "states"
    msg = Message(
        topic="asbuilt.v1.states", partition=0, offset=7, value=payload,
        timestamp=(1, int(received.timestamp() * 1000)),
    )  # fmt: skip
    polled = part._decode([msg])
    assert [ingest for ingest, _ in polled.rows] == [received]
    assert polled.rows[0][1][-1] == OUT_OF_RANGE.format(fields="ingest_ts")
    step = WindowStep(timedelta(seconds=10), LIMITS)
    state, _ = step(None, polled)  # windowed by the record time: minute 08:00
    late = [(T0 + timedelta(minutes=5), rows_of("states", states[:1])[0])]
    _, out = step(state, Polled("states", late))  # the clock moves on: 08:00 closes
    (window,) = [o for o in out if isinstance(o, WindowResults)]
    assert window.window_start == T0
    assert "ingest_ts_not_null" in {r.expectation for r in window.results if not r.success}


def test_a_redelivery_in_the_next_window_does_not_fail_the_series_checks() -> None:
    for kind in ("counters", "states"):
        first = of_kind(kind)
        _, carry = window_frame(kind, rows_of(kind, first), Carry(), LIMITS)
        assert carry.recent_ids == {e.event_id for e in first}
        again = first[:3]  # redelivered after the window closed: the next window has them
        assert failing(validate(kind, again, carry)) == set()
        _, after = window_frame(kind, rows_of(kind, again), carry, LIMITS)
        assert (after.last_ts, after.last_value) == (carry.last_ts, carry.last_value)
        # an event id the carry does not know is still checked against the carried values
        stale = Carry(carry.last_ts, carry.last_value)
        want = {"ts_monotonic"} | ({"counter_never_decreases"} if kind == "counters" else set())
        assert want <= failing(validate(kind, again, stale))
