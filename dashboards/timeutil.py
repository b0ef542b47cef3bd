"""Time on the dashboards: which "now" they show, and the periods a user can pick.

Pure functions (no Streamlit, no database), so they are unit-tested and type-checked strictly.

Decisions:

- **UTC stored, plant-local shown.** Every timestamp from the database is UTC; the pages show it
  in the plant model's ``calendar.timezone``. Days and weeks are plant-local calendar days
  (a local day spans 23 or 25 hours on a daylight-saving change).
- **"Now" is the later of the wall clock and the latest data time.** The accelerated demo plays
  simulated time ahead of the wall clock (``ASBUILT_SIM_SPEED``), so the wall clock would put
  "the current shift" hours behind the data. A stopped pipeline is the opposite case: the data
  stops, the wall clock goes on, and "now" is the wall clock -- so the current shift shows that
  it has no data instead of silently showing an old one. Data slightly ahead of the clock (a
  device clock skew) moves "now" forward by that much; the page says when data is ahead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

AHEAD_NOTICE: Final = timedelta(minutes=2)
"""Data ahead of the wall clock by more than this is called out (accelerated demo time)."""


@dataclass(frozen=True)
class Clock:
    """The dashboards' "now": the wall clock, or the latest data time when that is later."""

    now: datetime
    wall: datetime
    latest_data: datetime | None

    @property
    def ahead_by(self) -> timedelta:
        """How far the data runs ahead of the wall clock (zero when it does not)."""
        return self.now - self.wall

    @property
    def data_ahead(self) -> bool:
        return self.ahead_by > AHEAD_NOTICE

    @property
    def data_age(self) -> timedelta | None:
        """How old the latest data is at "now" (None: no data at all)."""
        return None if self.latest_data is None else self.now - self.latest_data


def clock(wall: datetime, *latest: datetime | None) -> Clock:
    """The clock from the wall time and the latest data times (of any source; None: none)."""
    _aware(wall)
    known = [t for t in latest if t is not None]
    for t in known:
        _aware(t)
    latest_data = max(known) if known else None
    now = wall if latest_data is None else max(wall, latest_data)
    return Clock(now=now, wall=wall, latest_data=latest_data)


@dataclass(frozen=True)
class Period:
    """A half-open UTC range [start, end) with the label the page shows."""

    start: datetime
    end: datetime
    label: str

    def __post_init__(self) -> None:
        _aware(self.start)
        _aware(self.end)
        if self.end <= self.start:
            msg = f"period {self.label!r} ends ({self.end}) before it starts ({self.start})"
            raise ValueError(msg)

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """Local 00:00 of ``day`` in ``zone``, as UTC."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def day_period(day: date, zone: ZoneInfo) -> Period:
    """The plant-local calendar day."""
    return Period(
        local_midnight(day, zone),
        local_midnight(day + timedelta(days=1), zone),
        f"{day:%a %d %b %Y}",
    )


def week_period(day: date, zone: ZoneInfo) -> Period:
    """The plant-local ISO week (Monday 00:00 to Monday 00:00) that holds ``day``."""
    monday = day - timedelta(days=day.weekday())
    year, week, _ = monday.isocalendar()
    return Period(
        local_midnight(monday, zone),
        local_midnight(monday + timedelta(days=7), zone),
        f"week {year}-W{week:02d}",
    )


def custom_period(first: date, last: date, zone: ZoneInfo) -> Period:
    """Whole plant-local days ``first`` to ``last`` (both included)."""
    if last < first:
        first, last = last, first
    return Period(
        local_midnight(first, zone),
        local_midnight(last + timedelta(days=1), zone),
        f"{first:%d %b %Y} – {last:%d %b %Y}",
    )


def shift_period(name: str, start: datetime, end: datetime, zone: ZoneInfo) -> Period:
    """One shift instance, labelled in plant-local time."""
    s, e = start.astimezone(zone), end.astimezone(zone)
    return Period(start, end, f"{name} {s:%a %d %b %H:%M}–{e:%H:%M}")


def local(ts: datetime, zone: ZoneInfo) -> str:
    """A UTC timestamp as the plant-local text the pages show ('2026-01-05 07:12:03 CET')."""
    return f"{_aware(ts).astimezone(zone):%Y-%m-%d %H:%M:%S %Z}"


def duration(seconds: float | None) -> str:
    """1 h 02 min, 4 min 05 s, 12 s; '–' for None."""
    if seconds is None:
        return "–"
    s = round(seconds)
    if abs(s) >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if abs(s) >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


def percent(value: float | None) -> str:
    """A ratio as a percentage with one decimal; '–' when it is undefined (NULL)."""
    return "–" if value is None or value != value else f"{100 * value:.1f} %"  # NaN != NaN


def _aware(ts: datetime) -> datetime:
    if ts.tzinfo is None or ts.utcoffset() is None:
        msg = f"{ts!r} has no time zone; the dashboards use timezone-aware datetimes only"
        raise ValueError(msg)
    return ts
