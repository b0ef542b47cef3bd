"""Classified segments -> downtime events (the rows of ``downtime_events``). Pure, no I/O.

A **downtime** is a maximal run of consecutive, contiguous non-production segments of one asset
with the same ``(category, stop_reason)``. The timeline splits segments at shift and break
boundaries; those splits are merged back here, so a stop that spans a shift change is ONE
event, attributed to the shift it started in. A break changes the category (to
``planned_downtime``), so a breakdown that runs into a break is two events with a planned one
between them: the break is not the machine's fault. A gap between segments (no data) ends a run.

A downtime is **open** (``end`` None, ``duration_s`` None) while its last segment is open: it is
written while it runs and closed later, so running stops are visible in the database.

Its **loss** is the downtime share of the six big losses (:data:`LOSS_OF_CATEGORY`). The one
rule that depends on duration: a ``breakdown`` shorter than ``minor_stop_s`` (a plant parameter,
120 s by default) is a minor stop (``idling_minor_stops``), decided once the stop has ended;
while it runs it is an ``equipment_failure``.

**Corrections.** :class:`DowntimeTracker` keeps an asset's recent segments and the downtimes it
has emitted. New segments replace the stored segments they overlap (that is how the timeline's
re-emission after a late event arrives); the downtimes are recomputed and compared with what was
emitted, and the difference is one :class:`Replacement`: "for this asset, the rows whose start
lies in ``[first, last]`` are exactly these". The sink deletes and inserts in one transaction,
so a replay or a recomputation writes the same rows (deterministic and idempotent).
``updated_ts`` of a changed row is the ingest time of the event that caused the change, passed
in by the caller; unchanged rows keep theirs.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final, Literal, TypeAlias, get_args

from pipelines.accounting.model import Category, Segment

__all__ = [
    "DEFAULT_MINOR_STOP_S",
    "LOSSES",
    "LOSS_OF_CATEGORY",
    "Downtime",
    "DowntimeTracker",
    "Loss",
    "Replacement",
    "downtimes",
    "loss_of",
]

Loss: TypeAlias = Literal[
    "equipment_failure",
    "setup_adjustment",
    "idling_minor_stops",
    "planned_downtime",
    "not_scheduled",
    "unknown",
]
LOSSES: Final[tuple[Loss, ...]] = get_args(Loss)

DEFAULT_MINOR_STOP_S: Final = 120.0
"""A breakdown shorter than this is a minor stop (one anchor's default; plants use 2-10 min)."""

LOSS_OF_CATEGORY: Final[dict[Category, Loss]] = {
    "breakdown": "equipment_failure",  # unless shorter than minor_stop_s, see loss_of
    "setup": "setup_adjustment",
    "minor_stop": "idling_minor_stops",
    "external": "idling_minor_stops",
    "idle": "idling_minor_stops",
    "planned_downtime": "planned_downtime",
    "not_scheduled": "not_scheduled",
    "unknown": "unknown",
}


@dataclass(frozen=True, slots=True)
class Downtime:
    """One row of ``downtime_events``: an asset not producing over ``[start, end)``.

    ``end`` is None while it is open. ``state``, ``mode`` and ``shift`` are those at its start.
    """

    asset: str
    start: datetime
    end: datetime | None
    state: str
    mode: str
    stop_reason: str | None
    category: Category
    loss: Loss
    shift: str | None
    updated_ts: datetime

    @property
    def duration_s(self) -> float | None:
        return None if self.end is None else (self.end - self.start).total_seconds()

    @property
    def is_open(self) -> bool:
        return self.end is None

    def same_as(self, other: Downtime) -> bool:
        """Equal in everything but ``updated_ts`` (which only records when it was written)."""
        return replace(self, updated_ts=other.updated_ts) == other


@dataclass(frozen=True, slots=True)
class Replacement:
    """The downtimes of ``asset`` whose start lies in ``[first, last]`` are exactly ``rows``.

    ``rows`` may be empty (a correction removed downtimes). The sink applies it as
    ``DELETE ... WHERE asset = %s AND start_ts BETWEEN first AND last`` then inserts ``rows``,
    in one transaction.
    """

    asset: str
    first: datetime
    last: datetime
    rows: tuple[Downtime, ...]


def loss_of(category: Category, duration_s: float | None, minor_stop_s: float) -> Loss:
    """The six-big-losses share of a downtime of ``category`` lasting ``duration_s``.

    ``duration_s`` None means still open: a running breakdown is an equipment failure until it
    ends shorter than ``minor_stop_s``.
    """
    if category == "production":
        msg = "production is not a downtime: only non-production categories have a loss"
        raise ValueError(msg)
    if category == "breakdown" and duration_s is not None and duration_s < minor_stop_s:
        return "idling_minor_stops"
    return LOSS_OF_CATEGORY[category]


def _continues(run_last: Segment, seg: Segment) -> bool:
    return (
        run_last.end is not None
        and run_last.end == seg.start
        and seg.category == run_last.category
        and seg.stop_reason == run_last.stop_reason
    )


def downtimes(
    segments: Iterable[Segment],
    updated_ts: datetime,
    minor_stop_s: float = DEFAULT_MINOR_STOP_S,
) -> list[Downtime]:
    """The downtimes of one asset's ``segments`` (any order; sorted by start here).

    Every downtime gets ``updated_ts``; :class:`DowntimeTracker` keeps earlier ones for rows
    that did not change.
    """
    ordered = sorted(segments, key=lambda s: s.start)
    out: list[Downtime] = []
    run: list[Segment] = []

    def close_run() -> None:
        if not run:
            return
        first, last = run[0], run[-1]
        end = last.end
        duration = None if end is None else (end - first.start).total_seconds()
        out.append(
            Downtime(
                asset=first.asset,
                start=first.start,
                end=end,
                state=first.state,
                mode=first.mode,
                stop_reason=first.stop_reason,
                category=first.category,
                loss=loss_of(first.category, duration, minor_stop_s),
                shift=first.shift,
                updated_ts=updated_ts,
            )
        )
        run.clear()

    for seg in ordered:
        if seg.category == "production":
            close_run()
            continue
        if run and _continues(run[-1], seg):
            run.append(seg)
            continue
        close_run()
        run.append(seg)
    close_run()
    return out


def _overlaps(a: Segment, b: Segment) -> bool:
    """Whether two segments share time (an open segment extends forever)."""
    a_end_after_b_start = a.end is None or a.end > b.start
    b_end_after_a_start = b.end is None or b.end > a.start
    if a.start == b.start:
        return True
    return a_end_after_b_start and b_end_after_a_start


@dataclass(slots=True)
class DowntimeTracker:
    """One asset's recent segments and emitted downtimes (the state of a keyed flow step).

    ``keep`` bounds memory: segments ending more than ``keep`` before the newest segment's start
    are dropped, whole downtimes at a time (never half a run, which would shift a start). A
    correction older than that still writes its recomputed rows, but cannot merge with history
    already dropped. Picklable (Bytewax recovery snapshots it).
    """

    minor_stop_s: float = DEFAULT_MINOR_STOP_S
    keep: timedelta = timedelta(hours=24)
    segments: list[Segment] = field(default_factory=list)
    emitted: dict[datetime, Downtime] = field(default_factory=dict)

    def apply(
        self,
        new: Sequence[Segment],
        ingest_ts: datetime,
        gone: Iterable[datetime] = (),
        asset: str | None = None,
    ) -> Replacement | None:
        """Take ``new`` segments (which replace the stored ones they overlap); return the change.

        ``gone`` are starts of segments that no longer exist (the timeline's ``SegmentGone``:
        a late state change merged them into a neighbour). ``ingest_ts`` is the ingest time of
        the event that caused all this (the changed rows' updated_ts). Returns None when no
        downtime changed (production segments, a repeated emission).
        """
        gone = set(gone)
        if not new and not gone:
            return None
        asset = new[0].asset if new else asset
        if asset is None:
            msg = "apply() with only gone segments needs the asset"
            raise ValueError(msg)
        if any(s.asset != asset for s in new):
            assets = sorted({s.asset for s in new})
            msg = f"segments of several assets given to one tracker: {assets}"
            raise ValueError(msg)
        incoming = {s.start: s for s in new}  # of one start, the last emission wins
        # only the tail from the segment holding the earliest change can be touched
        lo = min([*incoming, *gone])
        segs = self.segments
        head = max(bisect.bisect_right(segs, lo, key=lambda x: x.start) - 1, 0)
        kept: list[Segment] = segs[:head]
        for seg in segs[head:]:
            if seg.start in gone and seg.start not in incoming:
                continue
            hits = [n for n in incoming.values() if _overlaps(seg, n)]
            if not hits:
                kept.append(seg)
                continue
            # the new segments own the time they cover; what came before them stays (an open
            # segment closed by the next one's start, when the timeline sends only the new one)
            cut = min(n.start for n in hits)
            if seg.start < cut:
                kept.append(replace(seg, end=cut))
        self.segments = sorted([*kept, *incoming.values()], key=lambda x: x.start)
        self._prune()
        segs = self.segments
        if not segs:
            return self._diff(asset, {}, None, ingest_ts)
        # recompute from the start of the run before the change (a change may merge runs)
        i = max(bisect.bisect_left(segs, lo, key=lambda x: x.start) - 1, 0)
        while i > 0 and segs[i].category != "production" and _continues(segs[i - 1], segs[i]):
            i -= 1
        floor = segs[i].start
        computed = {
            d.start: d for d in downtimes(segs[i:], ingest_ts, minor_stop_s=self.minor_stop_s)
        }
        return self._diff(asset, computed, floor, ingest_ts)

    def _diff(
        self,
        asset: str,
        computed: dict[datetime, Downtime],
        floor: datetime | None,
        ingest_ts: datetime,
    ) -> Replacement | None:
        """Compare the downtimes recomputed from ``floor`` on with those emitted; keep them."""
        changed: list[datetime] = []
        for start, row in computed.items():
            old = self.emitted.get(start)
            if old is not None and old.same_as(row):
                computed[start] = old  # unchanged: keep when it was last written
            else:
                changed.append(start)
        before = [s for s in self.emitted if floor is None or s >= floor]
        changed.extend(start for start in before if start not in computed)  # removed
        for start in before:
            del self.emitted[start]
        self.emitted.update(computed)
        if not changed:
            return None
        first, last = min(changed), max(changed)
        rows = tuple(d for s, d in sorted(computed.items()) if first <= s <= last)
        return Replacement(asset=asset, first=first, last=last, rows=rows)

    def _prune(self) -> None:
        """Drop whole runs of segments that ended more than ``keep`` before the newest start."""
        if not self.segments:
            return
        cutoff = self.segments[-1].start - self.keep
        ends = [s.end for s in self.segments]
        # index of the first segment that may be needed: ends after cutoff or is still open
        i = 0
        while i < len(self.segments) and (e := ends[i]) is not None and e <= cutoff:
            i += 1
        # do not cut a run in half: move back to the first segment of the run containing i
        while 0 < i < len(self.segments) and (
            self.segments[i].category != "production"
            and _continues(self.segments[i - 1], self.segments[i])
        ):
            i -= 1
        if i > 0:
            self.segments = self.segments[i:]
            floor = self.segments[0].start
            keys = sorted(self.emitted)
            for start in keys[: bisect.bisect_left(keys, floor)]:
                del self.emitted[start]
