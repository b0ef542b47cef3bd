"""The dashboards' clock and periods (dashboards/timeutil.py): "now" follows data that runs ahead
of the wall clock, plant-local days and weeks (DST included), formatting of figures."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboards import timeutil

pytestmark = pytest.mark.unit

ZURICH = ZoneInfo("Europe/Zurich")
WALL = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_now_is_the_latest_data_time_when_the_data_runs_ahead() -> None:
    ahead = WALL + timedelta(hours=5)
    c = timeutil.clock(WALL, None, ahead, WALL - timedelta(hours=1))
    assert c.now == ahead
    assert c.data_ahead
    assert c.ahead_by == timedelta(hours=5)
    assert c.data_age == timedelta(0)


def test_now_is_the_wall_clock_when_the_pipeline_has_stopped() -> None:
    old = WALL - timedelta(hours=3)
    c = timeutil.clock(WALL, old)
    assert c.now == WALL
    assert not c.data_ahead
    assert c.data_age == timedelta(hours=3)


def test_an_empty_database_has_no_data_time() -> None:
    c = timeutil.clock(WALL, None, None)
    assert c.now == WALL
    assert c.latest_data is None
    assert c.data_age is None


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        timeutil.clock(datetime(2026, 1, 5, 9, 0))  # noqa: DTZ001


def test_a_local_day_over_the_spring_dst_change_has_23_hours() -> None:
    day = timeutil.day_period(date(2026, 3, 29), ZURICH)
    assert day.start == datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    assert day.hours == 23


def test_a_week_runs_from_local_monday_midnight() -> None:
    week = timeutil.week_period(date(2026, 1, 8), ZURICH)  # a Thursday
    assert week.start == datetime(2026, 1, 4, 23, 0, tzinfo=UTC)  # Mon 5 Jan 00:00 CET
    assert week.hours == 7 * 24
    assert week.label == "week 2026-W02"


def test_custom_days_include_both_ends_in_either_order() -> None:
    a = timeutil.custom_period(date(2026, 1, 5), date(2026, 1, 7), ZURICH)
    b = timeutil.custom_period(date(2026, 1, 7), date(2026, 1, 5), ZURICH)
    assert a == b
    assert a.hours == 72


def test_a_period_may_not_end_before_it_starts() -> None:
    with pytest.raises(ValueError, match="before it starts"):
        timeutil.Period(WALL, WALL, "empty")


@settings(max_examples=50)
@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)))
def test_consecutive_local_days_tile_time(day: date) -> None:
    today = timeutil.day_period(day, ZURICH)
    tomorrow = timeutil.day_period(day + timedelta(days=1), ZURICH)
    assert today.end == tomorrow.start
    assert today.hours in (23, 24, 25)


def test_figures_are_formatted_and_undefined_ratios_shown_as_a_dash() -> None:
    assert timeutil.percent(0.7564) == "75.6 %"
    assert timeutil.percent(None) == "–"
    assert timeutil.percent(float("nan")) == "–"
    assert timeutil.duration(3725) == "1 h 02 min"
    assert timeutil.duration(245) == "4 min 05 s"
    assert timeutil.duration(None) == "–"
    assert timeutil.local(WALL, ZURICH) == "2026-01-05 10:00:00 CET"
