"""The shift calendar as time spans: shift, break or no-shift time, and the overlay rule.

:class:`Schedule` wraps the plant model's :class:`~asbuilt.plant.CalendarModel` (shifts with
breaks, local wall-clock times in the plant's time zone, converted to UTC instants per day, so a
shift over midnight or over a DST change is as long as the clock says: the night shift of a
spring-forward day is an hour shorter). Without a calendar all time is shift time (``shift`` is
None): OEE then counts every second as planned.

The overlay rule (:func:`overlay`) decides what the calendar does to a state's category:

- the state's category wins when it is ``production`` or ``setup``: work done in a break or
  outside a shift is planned time after all (oee.com's advice: if you run, you planned to);
- otherwise break time is ``planned_downtime`` and no-shift time is ``not_scheduled``, whatever
  the state says (an idle machine in a break is not an availability loss);
- in shift time the state's category stands.

Spans are computed per UTC day and cached (a bounded cache), so asking for the span of every
minute of every asset is cheap. Times inside are integer microseconds since the epoch (UTC):
exact arithmetic for the timeline, which must add up to exactly 60 s per minute.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final, Literal, TypeAlias

from asbuilt.plant import CalendarModel
from pipelines.accounting.model import Category

__all__ = [
    "US",
    "CalendarSpan",
    "Schedule",
    "ShiftInstance",
    "SpanKind",
    "from_us",
    "overlay",
    "to_us",
]

US: Final = 1_000_000
DAY_US: Final = 86_400 * US
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

SpanKind: TypeAlias = Literal["shift", "break", "no_shift"]


def to_us(ts: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (exact)."""
    if ts.tzinfo is None:
        msg = f"timestamp {ts.isoformat()} is naive; use timezone-aware datetimes"
        raise ValueError(msg)
    d = ts - _EPOCH
    return (d.days * 86_400 + d.seconds) * US + d.microseconds


def from_us(us: int) -> datetime:
    """The aware UTC datetime of microseconds since the epoch."""
    return _EPOCH + timedelta(microseconds=us)


def overlay(category: Category, kind: SpanKind) -> Category:
    """The category of time in state ``category`` during calendar time of ``kind``."""
    if kind == "shift" or category in ("production", "setup"):
        return category
    return "planned_downtime" if kind == "break" else "not_scheduled"


@dataclass(frozen=True, slots=True)
class CalendarSpan:
    """``[start, end)`` of one calendar kind; ``shift``/``shift_start`` name the shift instance
    for shift and break time (None for no-shift time and when there is no calendar)."""

    start: datetime
    end: datetime
    kind: SpanKind
    shift: str | None
    shift_start: datetime | None


@dataclass(frozen=True, slots=True)
class ShiftInstance:
    """One worked shift, as the ``shifts`` table holds it (UTC instants)."""

    site: str
    shift: str
    start: datetime
    end: datetime
    breaks: tuple[tuple[datetime, datetime], ...]


# A span in microseconds: (start, end, kind, shift name, shift start)
_Span: TypeAlias = tuple[int, int, SpanKind, str | None, int | None]


class Schedule:
    """Calendar spans for any ``[start, end)``; a plain object safe to share between assets."""

    def __init__(self, calendar: CalendarModel | None, *, cache_days: int = 64) -> None:
        self.calendar = calendar
        self._cache: OrderedDict[int, tuple[list[int], list[_Span]]] = OrderedDict()
        self._cache_days = cache_days

    # --- shift instances ---

    def _instances_us(self, first: date, last: date) -> list[tuple[str, int, int, list[_Span]]]:
        assert self.calendar is not None
        out = []
        day = first
        while day <= last:
            for name, start, end, breaks in self.calendar.shift_instances(day):
                s, e = to_us(start), to_us(end)
                bs: list[_Span] = [(to_us(b0), to_us(b1), "break", name, s) for b0, b1 in breaks]
                bs.sort(key=lambda x: x[0])
                out.append((name, s, e, bs))
            day += timedelta(days=1)
        out.sort(key=lambda x: x[1])
        return out

    def instances(self, start: datetime, end: datetime, site: str) -> list[ShiftInstance]:
        """Shift instances overlapping ``[start, end)`` (for the ``shifts`` table)."""
        if self.calendar is None:
            return []
        zone = self.calendar.zone
        first = start.astimezone(zone).date() - timedelta(days=1)
        last = end.astimezone(zone).date()
        a, b = to_us(start), to_us(end)
        out = []
        for name, s, e, breaks in self._instances_us(first, last):
            if s < b and e > a:
                out.append(
                    ShiftInstance(
                        site=site,
                        shift=name,
                        start=from_us(s),
                        end=from_us(e),
                        breaks=tuple((from_us(x[0]), from_us(x[1])) for x in breaks),
                    )
                )
        return out

    # --- spans ---

    def _day(self, day_index: int) -> tuple[list[int], list[_Span]]:
        """Spans tiling the UTC day ``day_index`` (cut at the day's edges), with their starts."""
        hit = self._cache.get(day_index)
        if hit is not None:
            self._cache.move_to_end(day_index)
            return hit
        a, b = day_index * DAY_US, (day_index + 1) * DAY_US
        spans: list[_Span] = []
        if self.calendar is None:
            spans.append((a, b, "shift", None, None))
        else:
            zone = self.calendar.zone
            first = from_us(a).astimezone(zone).date() - timedelta(days=2)
            last = from_us(b).astimezone(zone).date() + timedelta(days=1)
            t = a
            for name, s, e, breaks in self._instances_us(first, last):
                if e <= a or s >= b:
                    continue
                if s > t:
                    spans.append((t, s, "no_shift", None, None))
                cursor = max(s, t)
                stop = min(e, b)
                for b0, b1, _, _, _ in breaks:
                    lo, hi = max(b0, cursor), min(b1, stop)
                    if hi <= lo:
                        continue
                    if lo > cursor:
                        spans.append((cursor, lo, "shift", name, s))
                    spans.append((lo, hi, "break", name, s))
                    cursor = hi
                if cursor < stop:
                    spans.append((cursor, stop, "shift", name, s))
                t = max(t, min(e, b))
            if t < b:
                spans.append((t, b, "no_shift", None, None))
        spans = [x for x in spans if x[1] > x[0]]
        entry = ([x[0] for x in spans], spans)
        self._cache[day_index] = entry
        if len(self._cache) > self._cache_days:
            self._cache.popitem(last=False)
        return entry

    def span_us(self, t: int) -> _Span:
        """The span (start, end, kind, shift, shift_start; microseconds) containing instant ``t``.

        Spans are cut at UTC midnight (an internal detail: callers that split at span edges get
        an extra split there, harmless for minute rows, which never cross midnight).
        """
        starts, spans = self._day(t // DAY_US)
        return spans[bisect.bisect_right(starts, t) - 1]

    def spans_us(self, start: int, end: int) -> list[_Span]:
        """Spans tiling ``[start, end)`` in microseconds, cut at ``start`` and ``end``."""
        out: list[_Span] = []
        t = start
        while t < end:
            _, e, kind, shift, shift_start = self.span_us(t)
            e2 = min(e, end)
            out.append((t, e2, kind, shift, shift_start))
            t = e2
        return out

    def spans(self, start: datetime, end: datetime) -> list[CalendarSpan]:
        """Spans tiling ``[start, end)``: shift, break and no-shift time with the shift instance.

        Adjacent pieces of one span are joined (the UTC-midnight cut is invisible here).
        """
        out: list[CalendarSpan] = []
        for s, e, kind, shift, shift_start in self.spans_us(to_us(start), to_us(end)):
            prev = out[-1] if out else None
            if (
                prev is not None
                and prev.kind == kind
                and prev.shift == shift
                and (prev.shift_start is None) == (shift_start is None)
                and (shift_start is None or prev.shift_start == from_us(shift_start))
            ):
                out[-1] = CalendarSpan(prev.start, from_us(e), kind, shift, prev.shift_start)
                continue
            out.append(
                CalendarSpan(
                    from_us(s),
                    from_us(e),
                    kind,
                    shift,
                    None if shift_start is None else from_us(shift_start),
                )
            )
        return out

    def status(self, at: datetime) -> CalendarSpan:
        """The span containing ``at`` (cut at UTC midnight)."""
        s, e, kind, shift, shift_start = self.span_us(to_us(at))
        return CalendarSpan(
            from_us(s),
            from_us(e),
            kind,
            shift,
            None if shift_start is None else from_us(shift_start),
        )
