"""The shift schedule: shifts, breaks, no-shift time, a shift over midnight, DST in Zurich."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from asbuilt.plant import CalendarModel, default_plant
from pipelines.accounting.schedule import Schedule, from_us, overlay, to_us

pytestmark = pytest.mark.unit


def calendar(shifts: list[dict[str, object]], tz: str = "Europe/Zurich") -> CalendarModel:
    return CalendarModel.model_validate({"timezone": tz, "shifts": shifts})


def kinds(s: Schedule, a: datetime, b: datetime) -> list[tuple[str, str, str, str | None]]:
    return [
        (x.start.strftime("%m-%d %H:%M"), x.end.strftime("%m-%d %H:%M"), x.kind, x.shift)
        for x in s.spans(a, b)
    ]


def test_default_plant_day_in_winter() -> None:
    s = Schedule(default_plant().calendar)
    day = datetime(2026, 11, 25, tzinfo=UTC)  # a Wednesday, UTC+1
    got = kinds(s, day, day + timedelta(days=1))
    assert got == [
        ("11-25 00:00", "11-25 05:00", "no_shift", None),
        ("11-25 05:00", "11-25 08:00", "shift", "early"),
        ("11-25 08:00", "11-25 08:15", "break", "early"),
        ("11-25 08:15", "11-25 10:30", "shift", "early"),
        ("11-25 10:30", "11-25 11:00", "break", "early"),
        ("11-25 11:00", "11-25 13:00", "shift", "early"),
        ("11-25 13:00", "11-25 16:00", "shift", "late"),
        ("11-25 16:00", "11-25 16:15", "break", "late"),
        ("11-25 16:15", "11-25 18:30", "shift", "late"),
        ("11-25 18:30", "11-25 19:00", "break", "late"),
        ("11-25 19:00", "11-25 21:00", "shift", "late"),
        ("11-25 21:00", "11-26 00:00", "no_shift", None),
    ]
    spans = s.spans(day, day + timedelta(days=1))
    assert spans[1].shift_start == datetime(2026, 11, 25, 5, tzinfo=UTC)
    assert spans[2].shift_start == spans[1].shift_start  # a break belongs to its shift


def test_weekend_is_no_shift() -> None:
    s = Schedule(default_plant().calendar)
    sat = datetime(2026, 11, 28, tzinfo=UTC)
    assert kinds(s, sat, sat + timedelta(days=2)) == [
        ("11-28 00:00", "11-30 00:00", "no_shift", None)
    ]


def test_shift_over_midnight() -> None:
    cal = calendar(
        [
            {
                "name": "night",
                "days": ["mon"],
                "start": "22:00",
                "end": "06:00",
                "breaks": [{"start": "23:30", "end": "00:30"}],
            }
        ],
        tz="UTC",
    )
    s = Schedule(cal)
    mon = datetime(2026, 3, 2, 20, tzinfo=UTC)
    assert kinds(s, mon, mon + timedelta(hours=12)) == [
        ("03-02 20:00", "03-02 22:00", "no_shift", None),
        ("03-02 22:00", "03-02 23:30", "shift", "night"),
        ("03-02 23:30", "03-03 00:30", "break", "night"),
        ("03-03 00:30", "03-03 06:00", "shift", "night"),
        ("03-03 06:00", "03-03 08:00", "no_shift", None),
    ]
    (inst,) = s.instances(mon, mon + timedelta(hours=12), "acme/basel")
    assert inst.start == datetime(2026, 3, 2, 22, tzinfo=UTC)
    assert inst.end == datetime(2026, 3, 3, 6, tzinfo=UTC)
    assert inst.breaks == (
        (datetime(2026, 3, 2, 23, 30, tzinfo=UTC), datetime(2026, 3, 3, 0, 30, tzinfo=UTC)),
    )
    # an instant after midnight belongs to the shift that started the day before
    status = s.status(datetime(2026, 3, 3, 1, tzinfo=UTC))
    assert status.shift == "night"
    assert status.shift_start == inst.start


def test_dst_spring_forward_night_shift_is_an_hour_shorter_in_zurich() -> None:
    """2026-03-29: Zurich clocks jump 02:00 → 03:00; a 22:00-06:00 night shift lasts 7 h."""
    cal = calendar([{"name": "night", "days": ["sat", "sun"], "start": "22:00", "end": "06:00"}])
    s = Schedule(cal)
    a = datetime(2026, 3, 28, 12, tzinfo=UTC)
    insts = s.instances(a, a + timedelta(days=2), "acme/basel")
    lengths = [(i.start.isoformat(), (i.end - i.start).total_seconds() / 3600) for i in insts]
    assert lengths == [("2026-03-28T21:00:00+00:00", 7.0), ("2026-03-29T20:00:00+00:00", 8.0)]
    shift_time = sum(
        (x.end - x.start).total_seconds()
        for x in s.spans(a, a + timedelta(days=2))
        if x.kind == "shift"
    )
    assert shift_time == 15 * 3600


def test_dst_fall_back_day_shift_keeps_wall_clock() -> None:
    """2026-10-25: Zurich falls back 03:00 → 02:00; the 06:00 shift starts at 05:00 UTC."""
    cal = calendar([{"name": "early", "days": ["sat", "sun"], "start": "06:00", "end": "14:00"}])
    s = Schedule(cal)
    insts = s.instances(datetime(2026, 10, 24, tzinfo=UTC), datetime(2026, 10, 26, tzinfo=UTC), "x")
    assert [i.start.isoformat() for i in insts] == [
        "2026-10-24T04:00:00+00:00",
        "2026-10-25T05:00:00+00:00",
    ]


def test_without_a_calendar_all_time_is_shift_time() -> None:
    s = Schedule(None)
    a = datetime(2026, 1, 1, tzinfo=UTC)
    spans = s.spans(a, a + timedelta(days=3))
    assert [(x.kind, x.shift) for x in spans] == [("shift", None)]
    assert s.instances(a, a + timedelta(days=1), "x") == []


@pytest.mark.parametrize(
    ("category", "kind", "result"),
    [
        ("production", "break", "production"),
        ("setup", "no_shift", "setup"),
        ("breakdown", "break", "planned_downtime"),
        ("idle", "no_shift", "not_scheduled"),
        ("unknown", "no_shift", "not_scheduled"),
        ("planned_downtime", "no_shift", "not_scheduled"),
        ("breakdown", "shift", "breakdown"),
        ("not_scheduled", "shift", "not_scheduled"),
    ],
)
def test_overlay(category: str, kind: str, result: str) -> None:
    assert overlay(category, kind) == result  # type: ignore[arg-type]


def test_microseconds_round_trip() -> None:
    t = datetime(2026, 3, 29, 1, 2, 3, 456789, tzinfo=UTC)
    assert from_us(to_us(t)) == t
    with pytest.raises(ValueError, match="naive"):
        to_us(datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test
