"""One asset's events → classified :class:`Segment`\\ s and one-minute :class:`MinuteRow`\\ s.

:class:`AssetTimeline` is the per-asset engine of the OEE flow (and the segment source of the
downtime flow). It is a plain picklable object holding only data -- it is Bytewax state and is
snapshotted -- while everything shared and read-only (mapping, schedule, ideal cycle times,
lateness) comes in a :class:`TimelineConfig` passed to every call, so snapshots stay small.

Feed it the asset's ``StateChange``, ``CounterSample`` and ``ProcessValue`` events in any order
(:meth:`AssetTimeline.push`); it returns outputs:

- :class:`MinuteRow` for every minute ``[w, w + 60 s)`` with ``w + 60 s <= watermark`` not yet
  emitted, in order. The watermark is the latest event time of the asset minus the lateness;
  process values only advance this clock. The first row starts at the minute of the asset's
  first event; seconds before the first state change are ``unknown`` (after the calendar
  overlay: break / no-shift time stays planned downtime / not scheduled).
- :class:`Segment` whenever a segment starts, changes or ends, including the open one (``end``
  None) so open downtimes are visible while they run. Segments are maximal runs of the same
  (category, state, mode, stop reason, shift) within one calendar span: they are split at shift
  and break boundaries (and a repeated identical state change does not cut a segment). Emitted
  as soon as the event arrives (not after the lateness): an out-of-order event re-emits the
  segments it changes.
- :class:`SegmentGone` when a segment emitted before no longer exists (a late or out-of-order
  state change merged it into its neighbour): delete the row keyed (asset, start).
- :class:`TooLate` for an event older than the correction horizon: it cannot be accounted any
  more (the historian keeps the raw event anyway).

Late and out-of-order events:

- within the lateness an event is simply put in order: a minute is only computed once every
  event up to the watermark has had its chance, so the rows do not depend on arrival order;
- later than the lateness (its minute was emitted) it *corrects*: the minutes it changes are
  recomputed from the kept history and re-emitted with ``revision + 1`` and ``corrected_at`` =
  the late event's ``ingest_ts`` (no wall clock: a replay of the same input writes identical
  rows). Minutes whose values do not change are not re-emitted; the late events of one
  :meth:`~AssetTimeline.push_many` batch give one correction per minute. A state change changes
  the minutes up to the next state change; a counter sample its own minute and the minute of
  the next sample of that counter (whose increment it changes).
- the *values* of the rows never depend on arrival order once every event has arrived (within
  the correction horizon); ``revision`` and ``corrected_at`` record how they arrived. Kafka
  orders each topic, not the topics between them, so a backlog read topic by topic (after a
  long stop) would make one topic's events late against another's (correct values, revisions
  > 0); the flows' source therefore reads its partitions in step, within half the lateness
  (pipelines.common.source, alignment).

Memory is bounded: history older than the correction horizon (a minute-aligned cut at latest
event time - horizon) is pruned -- state changes (keeping the one in effect at the cut),
counter samples (compacted per counter and minute: first, last and the increments inside;
keeping the last sample before the cut as the baseline), revision numbers and emitted segments.
So an asset keeps about ``horizon × (state changes + counters) per minute`` small entries, plus
the raw counter samples of the minutes still open (the lateness: at 1 sample/s and 120 s, ~180
per counter) and the segments emitted within the horizon. Measured (two counters, 1 sample/s,
a state change every 10 min, 120 s lateness): ~19 kB pickled per asset after 4 h, ~180 kB
once a 24 h horizon is full -- the Bytewax snapshot of every active asset, so a shorter horizon
or a longer snapshot interval cuts the recovery tax of a big plant.

Counter samples are kept raw while their minute is open and compacted when it is emitted; a
sample arriving after that *between* the first and last sample of its minute changes nothing
(the increments between them telescope), which is exact unless the counter reset or rolled over
between them. Two readings of one counter at the same instant: the larger value is kept.
Counter increments go to the minute of the sample that observed them (:mod:`.counters` decides
baseline, reset, rollover and restart).

Times are integer microseconds since the epoch inside, so the nine categories of a row add up
to exactly 60 s.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, TypeAlias

from asbuilt.events import CounterSample, Event, ProcessValue, StateChange
from pipelines.accounting.counters import DEFAULT_ROLES, Role, increment
from pipelines.accounting.mapping import LossMapping
from pipelines.accounting.model import CATEGORIES, WINDOW_S, Category, MinuteRow, Segment
from pipelines.accounting.schedule import US, Schedule, from_us, overlay, to_us

__all__ = [
    "AssetTimeline",
    "Output",
    "SegmentGone",
    "TimelineConfig",
    "TooLate",
    "minute_floor",
]

MINUTE_US: Final = WINDOW_S * US
_PRUNE_EVERY_US: Final = 10 * MINUTE_US

# A state as stored: (state, mode, reason or "", blocked, starved) -- sortable (no None).
_Key: TypeAlias = tuple[str, str, str, bool, bool]
# A segment as stored: (start, end or None, category, state, mode, reason or "", shift,
# calendar kind, calendar span start or None)
_Seg: TypeAlias = tuple[int, int | None, str, str, str, str, str | None, str, int | None]


def minute_floor(us: int) -> int:
    """The start of the minute holding ``us`` (microseconds)."""
    return us - us % MINUTE_US


@dataclass(frozen=True, slots=True)
class TooLate:
    """An event older than the correction horizon: not accounted (dead-letter-like)."""

    asset: str
    kind: str
    event_id: str
    ts: datetime
    ingest_ts: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class SegmentGone:
    """The segment (asset, start) emitted earlier no longer exists: delete it."""

    asset: str
    start: datetime
    corrected_at: datetime | None


Output: TypeAlias = MinuteRow | Segment | SegmentGone | TooLate


@dataclass(frozen=True)
class TimelineConfig:
    """What every asset's timeline shares, read-only (not part of the snapshotted state).

    ``ideal_cycle_s`` maps asset → ideal cycle time (PRU) in seconds (missing: None in rows);
    ``roles`` maps counter name → role (PQ/SQ/RQ; other counters are ignored).
    """

    mapping: LossMapping
    schedule: Schedule
    lateness_s: float = 120.0
    horizon_s: float = 24 * 3600.0
    ideal_cycle_s: Mapping[str, float] = field(default_factory=dict)
    roles: Mapping[str, Role] = field(default_factory=lambda: dict(DEFAULT_ROLES))

    def __post_init__(self) -> None:
        if self.lateness_s < 0 or self.horizon_s < 0:
            msg = f"lateness {self.lateness_s} s and horizon {self.horizon_s} s must be >= 0"
            raise ValueError(msg)
        if self.horizon_s < self.lateness_s:
            msg = (
                f"the correction horizon ({self.horizon_s} s) is shorter than the lateness "
                f"({self.lateness_s} s): make the horizon at least the lateness"
            )
            raise ValueError(msg)
        object.__setattr__(self, "lateness_us", round(self.lateness_s * US))
        object.__setattr__(self, "horizon_us", round(self.horizon_s * US))

    lateness_us: int = field(init=False, repr=False)
    """The lateness in microseconds (derived)."""
    horizon_us: int = field(init=False, repr=False)
    """The correction horizon in microseconds (derived)."""


_Sample: TypeAlias = tuple[int, int, bool, int | None]  # ts, value, resettable, rollover
_Pending: TypeAlias = dict[int, tuple[MinuteRow, int | None]]  # minute -> (row before, ingest)


class _Agg:
    """One counter's samples within one minute.

    While the minute is open (not emitted yet) the raw samples are kept, so samples arriving
    in any order within the lateness give exactly the in-order result; when the minute is
    emitted they are compacted (:meth:`seal`) to first, last and the increments inside.
    """

    __slots__ = (
        "first_ts",
        "first_v",
        "inside",
        "last_ts",
        "last_v",
        "resettable",
        "rollover",
        "samples",
    )

    def __init__(self, ts: int, value: int, resettable: bool, rollover: int | None) -> None:
        self.first_ts = self.last_ts = ts
        self.first_v = self.last_v = value
        self.inside = 0  # units counted between the first and the last sample
        self.resettable = resettable  # of the first sample (it decides the boundary increment)
        self.rollover = rollover
        self.samples: list[_Sample] | None = [(ts, value, resettable, rollover)]

    def __getstate__(self) -> tuple[object, ...]:
        return (
            self.first_ts,
            self.first_v,
            self.last_ts,
            self.last_v,
            self.inside,
            self.resettable,
            self.rollover,
            self.samples,
        )

    def __setstate__(self, state: tuple[object, ...]) -> None:
        (
            self.first_ts,
            self.first_v,
            self.last_ts,
            self.last_v,
            self.inside,
            self.resettable,
            self.rollover,
            self.samples,
        ) = state  # type: ignore[assignment]

    def seal(self) -> None:
        self.samples = None

    def add(self, ts: int, value: int, resettable: bool, rollover: int | None) -> bool:
        samples = self.samples
        if samples is None:  # sealed: compacted
            if self.first_ts <= ts <= self.last_ts:
                return False  # a duplicate, or between two samples: the increments telescope
            if ts > self.last_ts:
                self.inside += increment(
                    self.last_v, value, resettable=resettable, rollover=rollover
                )
                self.last_ts, self.last_v = ts, value
            else:  # a new first sample of the minute
                self.inside += increment(
                    value, self.first_v, resettable=self.resettable, rollover=self.rollover
                )
                self.first_ts, self.first_v = ts, value
                self.resettable, self.rollover = resettable, rollover
            return True
        sample = (ts, value, resettable, rollover)
        if ts > samples[-1][0]:  # in order: the common case
            samples.append(sample)
            self.inside += increment(self.last_v, value, resettable=resettable, rollover=rollover)
            self.last_ts, self.last_v = ts, value
            return True
        i = bisect.bisect_left(samples, (ts,))
        if i < len(samples) and samples[i][0] == ts:
            if samples[i] >= sample:
                return False  # a duplicate (of two readings at one instant the larger wins)
            samples[i] = sample
        else:
            samples.insert(i, sample)
        first = samples[0]
        self.first_ts, self.first_v, self.resettable, self.rollover = first
        self.last_ts, self.last_v = samples[-1][0], samples[-1][1]
        inside = 0
        for (_, v0, _, _), (_, v1, res, roll) in itertools.pairwise(samples):
            inside += increment(v0, v1, resettable=res, rollover=roll)
        self.inside = inside
        return True


class _Counter:
    """One counter's samples compacted per minute (see the module docstring)."""

    __slots__ = ("aggs", "base", "keys")

    def __init__(self) -> None:
        self.base: tuple[int, int] | None = None  # (ts, value) of the last sample pruned
        self.keys: list[int] = []  # minutes with samples, sorted
        self.aggs: dict[int, _Agg] = {}

    def __getstate__(self) -> tuple[tuple[int, int] | None, list[int], dict[int, _Agg]]:
        return self.base, self.keys, self.aggs

    def __setstate__(
        self, state: tuple[tuple[int, int] | None, list[int], dict[int, _Agg]]
    ) -> None:
        self.base, self.keys, self.aggs = state

    def _prev_last(self, minute: int) -> int | None:
        i = bisect.bisect_left(self.keys, minute)
        if i > 0:
            return self.aggs[self.keys[i - 1]].last_v
        return None if self.base is None else self.base[1]

    def add(self, ts: int, value: int, resettable: bool, rollover: int | None, open_: bool) -> bool:
        """Insert a sample; False when it changes nothing. ``open_``: its minute is not emitted."""
        m = minute_floor(ts)
        agg = self.aggs.get(m)
        if agg is None:
            agg = self.aggs[m] = _Agg(ts, value, resettable, rollover)
            if not open_:
                agg.seal()
            if not self.keys or self.keys[-1] < m:
                self.keys.append(m)
            else:
                bisect.insort(self.keys, m)
            return True
        return agg.add(ts, value, resettable, rollover)

    def seal(self, minute: int) -> None:
        agg = self.aggs.get(minute)
        if agg is not None:
            agg.seal()

    def count(self, minute: int) -> int:
        agg = self.aggs.get(minute)
        if agg is None:
            return 0
        prev = self._prev_last(minute)
        boundary = increment(prev, agg.first_v, resettable=agg.resettable, rollover=agg.rollover)
        return boundary + agg.inside

    def next_minute(self, minute: int) -> int | None:
        i = bisect.bisect_right(self.keys, minute)
        return self.keys[i] if i < len(self.keys) else None

    def prune(self, cut: int) -> None:
        i = bisect.bisect_left(self.keys, cut)
        if i == 0:
            return
        last = self.aggs[self.keys[i - 1]]
        self.base = (last.last_ts, last.last_v)
        for m in self.keys[:i]:
            del self.aggs[m]
        del self.keys[:i]


class AssetTimeline:
    """The timeline of one asset; see the module docstring. Picklable, data only."""

    def __init__(self, asset: str) -> None:
        self.asset = asset
        self.clock: int | None = None  # latest event time seen (us)
        self.first_minute: int | None = None
        self.emitted_until: int | None = None  # rows emitted for [first_minute, emitted_until)
        self.state_ts: list[int] = []
        self.state_keys: list[_Key] = []
        self.counters: dict[str, _Counter] = {}
        self.revisions: dict[int, int] = {}
        self.segs: dict[int, _Seg] = {}
        self.seg_starts: list[int] = []
        self.next_boundary: int | None = None  # recompute the open segment when clock passes
        self.pruned_at: int | None = None

    # --- public API ---

    def push(self, event: Event, cfg: TimelineConfig) -> list[Output]:
        """Account one event; returns what it produced (rows, segments, corrections)."""
        return self.push_many((event,), cfg)

    def push_many(self, events: Iterable[Event], cfg: TimelineConfig) -> list[Output]:
        """Account a batch of events (in the order given); returns what they produced.

        New rows and segments are the same as pushing the events one by one. Corrections are
        coalesced per batch: a minute that late events of the batch change is re-emitted once,
        at the end, with ``revision + 1`` and ``corrected_at`` = the ingest time of the last of
        them -- a back-log read topic by topic (one topic's events late against another's) then
        costs one correction per minute and batch instead of one per event.
        """
        out: list[Output] = []
        pending: _Pending = {}
        for event in events:
            self._push(event, cfg, out, pending)
        if pending:
            self._flush(pending, cfg, out)
        return out

    def watermark(self, cfg: TimelineConfig) -> datetime | None:
        """Latest event time minus the lateness: rows before it are emitted."""
        return None if self.clock is None else from_us(self.clock - cfg.lateness_us)

    # --- one event ---

    def _cut(self, cfg: TimelineConfig) -> int | None:
        if self.clock is None:
            return None
        return minute_floor(self.clock - cfg.horizon_us)

    def _push(
        self, event: Event, cfg: TimelineConfig, out: list[Output], pending: _Pending
    ) -> None:
        kind = type(event)  # exact types: a failed isinstance on a msgspec struct costs ~0.1 µs
        if kind is not CounterSample and kind is not StateChange and kind is not ProcessValue:
            return  # other kinds do not concern OEE (and do not advance the clock)
        ts = to_us(event.ts)
        clock = self.clock
        if (
            clock is not None
            and ts < clock - cfg.horizon_us + MINUTE_US
            and ts < minute_floor(clock - cfg.horizon_us)
        ):
            out.append(
                TooLate(
                    asset=self.asset,
                    kind=type(event).__name__,
                    event_id=event.event_id,
                    ts=event.ts,
                    ingest_ts=event.ingest_ts,
                    reason=(
                        f"event time {event.ts.isoformat()} is more than the correction horizon "
                        f"({cfg.horizon_s:g} s) before the asset's latest event "
                        f"{from_us(self.clock or 0).isoformat()}: not accounted in OEE"
                    ),
                )
            )
            return
        minute = ts - ts % MINUTE_US
        fresh: list[int] | None = None  # emitted-range minutes never emitted (a late event
        old_first = self.first_minute  # earlier than all data): emitted as new rows below
        if old_first is None or self.emitted_until is None:
            self.first_minute = self.emitted_until = old_first = minute
        elif minute < old_first:
            if self.emitted_until == old_first:  # nothing emitted yet: start earlier
                self.emitted_until = old_first = minute
            else:
                fresh = list(range(minute, old_first, MINUTE_US))
            self.first_minute = minute
        crossed = False
        if clock is None or ts > clock:
            self.clock = ts
            crossed = self.next_boundary is not None and ts >= self.next_boundary
        emitted_until = self.emitted_until
        if kind is CounterSample:
            assert isinstance(event, CounterSample)  # for mypy; exact type: the fast path
            if event.counter in cfg.roles:
                counter = self.counters.get(event.counter)
                if counter is None:
                    counter = self.counters[event.counter] = _Counter()
                if ts >= emitted_until:  # the common case: its minute is still open
                    counter.add(ts, event.value, event.resettable, event.rollover, True)
                else:
                    nxt = counter.next_minute(minute)
                    dirty = [
                        m for m in (minute, nxt) if m is not None and old_first <= m < emitted_until
                    ]
                    self._hold(dirty, cfg, pending)
                    if counter.add(ts, event.value, event.resettable, event.rollover, False):
                        self._touch(dirty, event, pending)
        elif kind is StateChange:
            assert isinstance(event, StateChange)
            key: _Key = (
                event.state,
                event.mode,
                event.stop_reason or "",
                event.blocked,
                event.starved,
            )
            dirty = self._state_dirty(ts, emitted_until, old_first)
            self._hold(dirty, cfg, pending)
            if self._insert_state(ts, key):
                self._touch(dirty, event, pending)
                self._resegment(ts, cfg, out, event)
                crossed = False
        if crossed and self.next_boundary is not None:
            self._resegment(self.next_boundary, cfg, out, event)
        if fresh:
            out.extend(self._row(m, cfg) for m in fresh)
        now = ts if clock is None or ts > clock else clock
        if self.emitted_until + MINUTE_US <= now - cfg.lateness_us:
            self._emit_closed(cfg, out)
        if self.pruned_at is None or now - self.pruned_at >= _PRUNE_EVERY_US:
            self._maybe_prune(cfg)

    # --- states ---

    def _insert_state(self, ts: int, key: _Key) -> bool:
        lo = bisect.bisect_left(self.state_ts, ts)
        hi = bisect.bisect_right(self.state_ts, ts, lo)
        pos = lo
        while pos < hi:
            if self.state_keys[pos] == key:
                return False  # the same state change again (redelivery)
            if self.state_keys[pos] > key:
                break
            pos += 1
        self.state_ts.insert(pos, ts)
        self.state_keys.insert(pos, key)
        return True

    def _state_dirty(self, ts: int, emitted_until: int, first: int) -> list[int]:
        """Emitted minutes (from ``first``) a state change at ``ts`` may change."""
        if ts >= emitted_until:
            return []
        j = bisect.bisect_right(self.state_ts, ts)
        end = min(self.state_ts[j] if j < len(self.state_ts) else emitted_until, emitted_until)
        lo = max(minute_floor(ts), first)
        hi = minute_floor(max(end, ts + 1) - 1)
        return list(range(lo, hi + MINUTE_US, MINUTE_US))

    # --- minute rows ---

    def _row(
        self, w: int, cfg: TimelineConfig, revision: int = 0, corrected: int | None = None
    ) -> MinuteRow:
        sec = dict.fromkeys(CATEGORIES, 0)
        ts_list, keys = self.state_ts, self.state_keys
        classify = cfg.mapping.classify
        shift: str | None = None
        shift_start: int | None = None
        first_span = True
        for s, e, kind, sname, sstart in cfg.schedule.spans_us(w, w + MINUTE_US):
            if first_span:
                shift, shift_start, first_span = sname, sstart, False
            i = bisect.bisect_right(ts_list, s) - 1
            t = s
            while t < e:
                nxt = ts_list[i + 1] if i + 1 < len(ts_list) else e
                u = min(nxt, e)
                if u > t:
                    if i < 0:
                        cat: Category = "unknown"
                    else:
                        k = keys[i]
                        cat = classify(k[0], k[1], k[2] or None, blocked=k[3], starved=k[4])
                    sec[overlay(cat, kind)] += u - t
                t = u
                i += 1
        processed = defective = rework = 0
        for name, counter in self.counters.items():
            role = cfg.roles.get(name)
            if role is None:
                continue
            n = counter.count(w)
            if role == "processed":
                processed += n
            elif role == "defective":
                defective += n
            else:
                rework += n
        return MinuteRow(
            asset=self.asset,
            ts=from_us(w),
            seconds={c: v / US for c, v in sec.items()},
            processed=processed,
            defective=defective,
            rework=rework,
            ideal_cycle_s=cfg.ideal_cycle_s.get(self.asset),
            shift=shift,
            shift_start=None if shift_start is None else from_us(shift_start),
            mapping_version=cfg.mapping.version,
            revision=revision,
            corrected_at=None if corrected is None else from_us(corrected),
        )

    def _hold(self, minutes: list[int], cfg: TimelineConfig, pending: _Pending) -> None:
        """Remember the rows of ``minutes`` as they were before the batch changed them."""
        for m in minutes:
            if m not in pending:
                pending[m] = (self._row(m, cfg), None)

    @staticmethod
    def _touch(minutes: list[int], event: Event, pending: _Pending) -> None:
        ingest = to_us(event.ingest_ts)
        for m in minutes:
            pending[m] = (pending[m][0], ingest)

    def _flush(self, pending: _Pending, cfg: TimelineConfig, out: list[Output]) -> None:
        """Re-emit the minutes the batch changed (see :meth:`push_many`)."""
        cut = self._cut(cfg)
        for m in sorted(pending):
            before, ingest = pending[m]
            if ingest is None or (cut is not None and m < cut):
                continue  # unchanged, or pruned meanwhile (no longer correctable)
            if _same(before, self._row(m, cfg)):
                continue
            rev = self.revisions.get(m, 0) + 1
            self.revisions[m] = rev
            out.append(self._row(m, cfg, rev, ingest))

    def _emit_closed(self, cfg: TimelineConfig, out: list[Output]) -> None:
        assert self.clock is not None
        assert self.emitted_until is not None
        watermark = self.clock - cfg.lateness_us
        w = self.emitted_until
        while w + MINUTE_US <= watermark:
            out.append(self._row(w, cfg, self.revisions.get(w, 0)))
            for counter in self.counters.values():
                counter.seal(w)
            w += MINUTE_US
        self.emitted_until = w

    # --- segments ---

    def _pieces(self, start: int, cfg: TimelineConfig) -> list[_Seg]:
        """Segments from ``start`` (a segment boundary) to the clock, the last one open."""
        ts_list, keys = self.state_ts, self.state_keys
        self.next_boundary = None
        if not ts_list or self.clock is None:
            return []
        start = max(start, ts_list[0])
        clock = max(self.clock, start)
        classify = cfg.mapping.classify
        i = bisect.bisect_right(ts_list, start) - 1
        t = start
        out: list[_Seg] = []
        while True:
            k = keys[i]
            last = i + 1 >= len(ts_list)
            limit = ts_list[i + 1] if not last else None
            cat = classify(k[0], k[1], k[2] or None, blocked=k[3], starved=k[4])
            while limit is None or t < limit:
                s0, e0, kind, sname, sstart = cfg.schedule.span_us(t)
                span_id = None if kind == "no_shift" else sstart if kind == "shift" else s0
                end: int | None = e0 if limit is None else min(e0, limit)
                if limit is None and e0 > clock:
                    end = None
                seg: _Seg = (t, end, overlay(cat, kind), k[0], k[1], k[2], sname, kind, span_id)
                prev = out[-1] if out else None
                if prev is not None and prev[1] == t and prev[2:] == seg[2:]:
                    out[-1] = (prev[0], end, *seg[2:])
                else:
                    out.append(seg)
                if end is None:
                    self.next_boundary = e0
                    break
                t = end
            if last:
                break
            i += 1
            t = ts_list[i]
        return out

    def _resegment(self, at: int, cfg: TimelineConfig, out: list[Output], event: Event) -> None:
        starts = self.seg_starts
        j = bisect.bisect_right(starts, at) - 1  # the segment holding `at`
        j = max(j - 1, 0)  # and the one before it (a change at its start may merge them)
        start = min(starts[j], at) if starts else at
        new = self._pieces(start, cfg)
        new_starts = {s[0] for s in new}
        k = bisect.bisect_left(starts, start)
        corrected = event.ingest_ts
        for old_start in starts[k:]:
            if old_start not in new_starts:
                del self.segs[old_start]
                out.append(SegmentGone(self.asset, from_us(old_start), corrected))
        del starts[k:]
        for seg in new:
            if self.segs.get(seg[0]) != seg:
                self.segs[seg[0]] = seg
                out.append(self._segment(seg))
            starts.append(seg[0])

    def _segment(self, seg: _Seg) -> Segment:
        start, end, cat, state, mode, reason, shift = seg[:7]
        category: Category = cat  # type: ignore[assignment]
        return Segment(
            asset=self.asset,
            start=from_us(start),
            end=None if end is None else from_us(end),
            category=category,
            state=state,
            mode=mode,
            stop_reason=reason or None,
            shift=shift,
        )

    # --- memory ---

    def _maybe_prune(self, cfg: TimelineConfig) -> None:
        """Drop history before the cut (called every _PRUNE_EVERY_US of event clock)."""
        cut = self._cut(cfg)
        assert self.clock is not None
        assert cut is not None
        self.pruned_at = self.clock
        # states: keep the one in effect at the cut
        i = bisect.bisect_right(self.state_ts, cut) - 1
        if i > 0:
            del self.state_ts[:i]
            del self.state_keys[:i]
        for counter in self.counters.values():
            counter.prune(cut)
        for m in [m for m in self.revisions if m < cut]:
            del self.revisions[m]
        starts = self.seg_starts
        n = 0
        while n < len(starts) - 1:
            end = self.segs[starts[n]][1]
            if end is None or end >= cut:
                break
            del self.segs[starts[n]]
            n += 1
        del starts[:n]


def _same(a: MinuteRow, b: MinuteRow) -> bool:
    return (
        a.seconds == b.seconds
        and a.processed == b.processed
        and a.defective == b.defective
        and a.rework == b.rework
        and a.shift == b.shift
    )
