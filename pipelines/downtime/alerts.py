"""Alert rules for reliability teams: raise, update and clear alert records. Pure, no I/O.

Rules come from YAML (:func:`load_rules`; the bundled ``rules.yaml`` unless the settings name
another file). Each has a ``name``, a ``kind``, a ``severity``, an ``assets`` glob and the
parameters of its kind (see ``rules.yaml``).

**Episodes, not edges.** Each rule turns what the engine knows about an asset into *episodes*:
intervals ``[raised, cleared)`` in which its condition holds (``cleared`` None while it still
holds). The engine reconciles the episodes with the alerts it has emitted and emits an
:class:`Alert` only where something changed: a new episode raises an alert (revision 0), a
changed evidence updates it (revision + 1), an episode that ended clears it (revision + 1). An
episode that started and ended between two evaluations (a stop that was long but arrived in one
batch) is emitted once, already cleared. Because episodes are computed from the facts (downtime
starts and ends, minute rows, ingest times) and not from when the engine looked, the alerts do
not depend on how the input was batched, and a replay emits the same records.

**Identity.** ``alert_id`` = uuid5 over ``(rule, asset, raised_ts)``. While an alert is active,
the same ongoing condition never creates a second alert: if a correction moves the start of the
condition (a late event), the active alert is updated (its evidence says so), not re-raised.
Consumers of the alerts topic receive at-least-once and deduplicate on ``(alert_id, revision)``.

**Clocks.** ``long_stop`` and ``frequent_stops`` run on the asset's event time, which only
advances on source times *consistent with its states*: an asset's states, counters and process
values come through different topics, read unevenly (a backlog, a replay after a crash), so a
process value may be read before an older state change that ended a stop; trusting its time
would raise an alert that the late end then withdraws. The flow therefore passes on the time of
state changes, and of other events only when they were ingested no later than the newest state
change read (:class:`BatchSummary` ``clock_ts``). On a clock tick, when the flow has caught up
with its input, the engine extrapolates that time by the wall-clock time since its ingest, so a
stopped machine that only sends process values (or nothing) still raises its long-stop alert
on time. ``lateness`` (default 0) can hold event time back further. The end of a stop clears at
once (it is a fact). ``oee_below`` runs on its minute rows (closed by the timeline's lateness).
``silent`` and ``stale`` run on wall-clock time: ingest timestamps, and the
tick's ``now`` (injected, so tests are deterministic). ``stale`` is evaluated per input batch of
an asset: the newest event's lag decides.

Evidence of an ongoing condition is kept coarse (whole minutes of a running stop) so that an
alert is updated at most about once a minute, not on every event.
"""

from __future__ import annotations

import fnmatch
import math
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypeAlias

import msgspec
import yaml

from asbuilt.errors import ConfigError
from pipelines.accounting.model import ISO_ELEMENTS, WINDOW_S, Category, MinuteRow
from pipelines.downtime.downtime import Downtime

__all__ = [
    "ALERT_ID_NAMESPACE",
    "DEFAULT_RULES",
    "Alert",
    "AlertEngine",
    "BatchSummary",
    "FrequentStops",
    "LongStop",
    "OeeBelow",
    "Rule",
    "Severity",
    "Silent",
    "Stale",
    "alert_id",
    "load_rules",
    "parse_rules",
]

DEFAULT_RULES: Final = Path(__file__).with_name("rules.yaml")
ALERT_ID_NAMESPACE: Final = uuid.UUID("7d0c5f57-4a55-4a43-9a3c-2b1f0e8a6c11")
"""The uuid5 namespace of alert ids. Changing it changes every id: a breaking change."""

Severity: TypeAlias = Literal["info", "warning", "critical"]
Status: TypeAlias = Literal["active", "cleared"]
Positive: TypeAlias = Annotated[float, msgspec.Meta(gt=0)]
PBT_CATEGORIES: Final[tuple[Category, ...]] = tuple(
    c for element in ("apt", "aust", "adet", "adot") for c in ISO_ELEMENTS[element]
)


# --- rules -------------------------------------------------------------------------------------


class _RuleBase(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", forbid_unknown_fields=True
):
    name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    severity: Severity = "warning"
    assets: str = "*"

    def applies_to(self, asset: str) -> bool:
        return fnmatch.fnmatchcase(asset, self.assets)


class LongStop(_RuleBase, tag="long_stop", frozen=True, kw_only=True):
    """A stop of ``categories`` open longer than ``minutes`` of event time."""

    minutes: Positive
    categories: tuple[Category, ...] = ("breakdown", "minor_stop", "external", "unknown")


class FrequentStops(_RuleBase, tag="frequent_stops", frozen=True, kw_only=True):
    """More than ``count`` stops of ``categories`` starting within any ``minutes`` window."""

    count: Annotated[int, msgspec.Meta(ge=0)]
    minutes: Positive
    categories: tuple[Category, ...] = ("breakdown", "minor_stop")


class OeeBelow(_RuleBase, tag="oee_below", frozen=True, kw_only=True):
    """OEE over the last ``minutes`` minutes below ``threshold`` (a fraction, 0.6 = 60 %)."""

    threshold: Annotated[float, msgspec.Meta(gt=0)]
    minutes: Annotated[int, msgspec.Meta(ge=1)]


class Silent(_RuleBase, tag="silent", frozen=True, kw_only=True):
    """No event from the asset for ``seconds`` of wall-clock time."""

    seconds: Positive


class Stale(_RuleBase, tag="stale", frozen=True, kw_only=True):
    """Source timestamps lagging their ingest by more than ``seconds``."""

    seconds: Positive


Rule: TypeAlias = LongStop | FrequentStops | OeeBelow | Silent | Stale
KIND_OF: Final[dict[type[Rule], str]] = {
    LongStop: "long_stop",
    FrequentStops: "frequent_stops",
    OeeBelow: "oee_below",
    Silent: "silent",
    Stale: "stale",
}


class _RuleFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    rules: list[Rule]


def parse_rules(text: str, origin: str = "<text>") -> tuple[Rule, ...]:
    """Rules from YAML text; :class:`ConfigError` names the origin and what is wrong."""
    try:
        data = yaml.safe_load(text)
        parsed = msgspec.convert(data, _RuleFile)
    except (yaml.YAMLError, msgspec.ValidationError) as exc:
        msg = f"alert rules {origin}: {exc} (see pipelines/downtime/rules.yaml for the format)"
        raise ConfigError(msg) from exc
    names = [r.name for r in parsed.rules]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        msg = f"alert rules {origin}: rule names must be unique, repeated: {', '.join(dupes)}"
        raise ConfigError(msg)
    return tuple(parsed.rules)


def load_rules(path: Path | str | None = None) -> tuple[Rule, ...]:
    """Rules from ``path`` (a YAML file), or the bundled defaults when None."""
    file = DEFAULT_RULES if path is None else Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"cannot read the alert rules {file}: {exc}; set ASBUILT_ALERT_RULES to a YAML file"
        raise ConfigError(msg) from exc
    return parse_rules(text, str(file))


# --- alerts ------------------------------------------------------------------------------------


def alert_id(rule: str, asset: str, raised_ts: datetime) -> str:
    """The deterministic id of an alert: uuid5 over rule, asset and raised time (UTC ISO)."""
    return str(uuid.uuid5(ALERT_ID_NAMESPACE, f"{rule}\x1f{asset}\x1f{raised_ts.isoformat()}"))


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """One revision of an alert record (a row of ``alerts``, a message on the alerts topic)."""

    alert_id: str
    rule: str
    kind: str
    asset: str
    severity: Severity
    status: Status
    raised_ts: datetime
    updated_ts: datetime
    cleared_ts: datetime | None
    revision: int
    message: str
    evidence: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Episode:
    raised: datetime
    cleared: datetime | None
    message: str
    evidence: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """What the input said about one asset lately: for silent, stale and the event clock.

    ``clock_ts`` is the newest source time that is *consistent with the asset's states* (see
    the module docstring, Clocks) and ``clock_ingest`` the ingest time of that event; None when
    the summarised events moved no such clock.
    """

    asset: str
    first_ingest: datetime
    last_ingest: datetime
    last_lag_s: float  # ingest - source time of the newest-ingested event
    clock_ts: datetime | None = None
    clock_ingest: datetime | None = None
    previous_ingest: datetime | None = None  # of the asset's event before (if not summarised)

    @classmethod
    def of(cls, asset: str, events: Iterable[tuple[datetime, datetime]]) -> BatchSummary:
        """From ``(ts, ingest_ts)`` pairs of one asset (at least one)."""
        pairs = list(events)
        if not pairs:
            msg = "a batch summary needs at least one event"
            raise ValueError(msg)
        newest = max(pairs, key=lambda p: p[1])
        clock = max(pairs)
        return cls(
            asset=asset,
            first_ingest=min(p[1] for p in pairs),
            last_ingest=newest[1],
            last_lag_s=(newest[1] - newest[0]).total_seconds(),
            clock_ts=clock[0],
            clock_ingest=clock[1],
        )


@dataclass(slots=True)
class _Minute:
    pbt_s: float
    good_ideal_s: float | None  # None: ideal cycle time unknown


@dataclass(slots=True)
class _Watch:
    """What the engine remembers of one asset."""

    last_ts: datetime | None = None  # newest consistent source time (see BatchSummary)
    ts_ingest: datetime | None = None  # the ingest time of that event
    last_ingest: datetime | None = None  # newest ingest time seen, any event
    clock: datetime | None = None  # event time, never going back (see event_now)
    downtimes: dict[datetime, Downtime] = field(default_factory=dict)
    minutes: dict[datetime, _Minute] = field(default_factory=dict)
    gaps: list[tuple[datetime, datetime]] = field(default_factory=list)  # ingest silences
    stale: dict[str, _Episode] = field(default_factory=dict)  # rule -> ongoing/last episode
    pruned_at: datetime | None = None

    def advance(self, ts: datetime, ingest: datetime | None) -> None:
        """A consistent source time ``ts`` (ingested at ``ingest``) was seen."""
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts = ts
            self.ts_ingest = ingest if ingest is not None else self.ts_ingest

    def event_now(
        self, wall: datetime | None = None, lateness: timedelta = timedelta(0)
    ) -> datetime | None:
        """Advance and return event time: the newest source time, extrapolated to ``wall``.

        Monotonic, so evidence never runs backwards when an event follows a tick. If the
        extrapolation overshot (the source's events were merely delayed), a stop that in fact
        ended earlier withdraws its alert when the end arrives.
        """
        if self.last_ts is None:
            return self.clock
        now = self.last_ts
        if wall is not None and self.ts_ingest is not None:
            now = max(now, self.last_ts + (wall - self.ts_ingest))
        now -= lateness
        self.clock = now if self.clock is None else max(self.clock, now)
        return self.clock


def _iso(ts: datetime) -> str:
    return ts.isoformat()


def _minutes(seconds: float) -> int:
    return int(seconds // 60)


@dataclass(slots=True)
class AlertEngine:
    """The alert state of every asset (one keyed state of the flow; picklable).

    ``keep`` bounds memory: facts and cleared alerts older than ``keep`` before the asset's
    clock are forgotten.
    """

    rules: tuple[Rule, ...]
    keep: timedelta = timedelta(hours=6)
    lateness: timedelta = timedelta(0)
    caught_up: timedelta = timedelta(seconds=30)
    settle: timedelta = timedelta(0)
    newest_ingest: datetime | None = None
    caught_up_at: datetime | None = None
    shortest_silence: timedelta | None = None  # of the silent rules (derived)
    watches: dict[str, _Watch] = field(default_factory=dict)
    known: dict[tuple[str, str], dict[datetime, Alert]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        longest = max(
            [timedelta(minutes=r.minutes) for r in self.rules if not isinstance(r, Silent | Stale)],
            default=timedelta(0),
        )
        if self.keep < 2 * longest:
            self.keep = 2 * longest
        silences = [timedelta(seconds=r.seconds) for r in self.rules if isinstance(r, Silent)]
        self.shortest_silence = min(silences, default=None)

    # --- inputs ---------------------------------------------------------------------------------

    def on_batch(self, summary: BatchSummary) -> list[Alert]:
        """Events arrived from an asset: the clocks advance; silent gaps and staleness."""
        w = self.watches.setdefault(summary.asset, _Watch())
        previous = w.last_ingest
        if summary.previous_ingest is not None and (
            previous is None or summary.previous_ingest > previous
        ):
            previous = summary.previous_ingest  # events between summaries were not sent
        if (
            self.shortest_silence is not None
            and previous is not None
            and summary.first_ingest - previous > self.shortest_silence
        ):
            w.gaps.append((previous, summary.first_ingest))
        before = w.last_ts
        if summary.clock_ts is not None:
            w.advance(summary.clock_ts, summary.clock_ingest)
        if self.newest_ingest is None or summary.last_ingest > self.newest_ingest:
            self.newest_ingest = summary.last_ingest
        w.last_ingest = (
            summary.last_ingest
            if w.last_ingest is None
            else max(w.last_ingest, summary.last_ingest)
        )
        out: list[Alert] = []
        for rule in self._rules(summary.asset, Stale):
            self._track_stale(w, rule, summary)
        kinds: tuple[type[Rule], ...] = (Silent, Stale)
        if w.last_ts != before:  # the clock moved: stops may have become long or frequent
            kinds = (LongStop, FrequentStops, Silent, Stale)
        out += self._evaluate(summary.asset, None, kinds)
        return out

    def on_downtimes(
        self, asset: str, rows: Iterable[Downtime], first: datetime, last: datetime
    ) -> list[Alert]:
        """A :class:`~pipelines.downtime.downtime.Replacement`: rows starting in [first, last]."""
        w = self.watches.setdefault(asset, _Watch())
        for start in [s for s in w.downtimes if first <= s <= last]:
            del w.downtimes[start]
        for row in rows:
            w.downtimes[row.start] = row
            w.advance(row.end or row.start, row.updated_ts)  # a state change: consistent
        return self._evaluate(asset, None, (LongStop, FrequentStops))

    def on_minutes(self, rows: Iterable[MinuteRow]) -> list[Alert]:
        """Minute rows (new or corrected) of any assets."""
        touched: set[str] = set()
        for row in rows:
            w = self.watches.setdefault(row.asset, _Watch())
            pbt = sum(row.seconds.get(c, 0.0) for c in PBT_CATEGORIES)
            good_ideal = None if row.ideal_cycle_s is None else row.ideal_cycle_s * row.good
            w.minutes[row.ts] = _Minute(pbt_s=pbt, good_ideal_s=good_ideal)
            touched.add(row.asset)
        out: list[Alert] = []
        for asset in sorted(touched):
            out += self._evaluate(asset, None, (OeeBelow,))
        return out

    def on_tick(self, now: datetime, source_idle: bool = True) -> list[Alert]:
        """The wall clock advanced to ``now``: silent assets, and stops running without events.

        Only when the flow has caught up with its input: the source read nothing since the last
        tick (``source_idle``), or the newest ingest time seen is within ``caught_up`` of
        ``now``; and has been so for ``settle`` (the flow uses one tick interval: a restart
        reads one topic's backlog before another's). While a backlog is being read, wall-clock
        time says nothing about the assets (their events are in Kafka, not yet read): no
        silent alerts, no extrapolation.
        """
        behind = self.newest_ingest is None or now - self.newest_ingest > self.caught_up
        if behind and not source_idle:
            self.caught_up_at = None
            return []
        if self.caught_up_at is None:
            self.caught_up_at = now
        if now - self.caught_up_at < self.settle:
            return []  # just caught up: other topics' backlogs may still be in the last polls
        out: list[Alert] = []
        for asset in sorted(self.watches):
            out += self._evaluate(asset, now, (LongStop, FrequentStops, Silent))
        return out

    # --- evaluation -----------------------------------------------------------------------------

    def _rules(self, asset: str, kind: type[Any]) -> list[Any]:
        return [r for r in self.rules if isinstance(r, kind) and r.applies_to(asset)]

    def _evaluate(
        self, asset: str, wall: datetime | None, kinds: tuple[type[Rule], ...]
    ) -> list[Alert]:
        """Evaluate the rules of ``kinds`` for ``asset``: on a tick (``wall``) or on facts."""
        w = self.watches[asset]
        now = w.event_now(wall, self.lateness)
        out: list[Alert] = []
        for rule in self.rules:
            if not isinstance(rule, kinds) or not rule.applies_to(asset):
                continue
            if isinstance(rule, Silent | Stale):
                clock = wall if wall is not None else w.last_ingest
            elif isinstance(rule, OeeBelow) and w.minutes:
                clock = max(w.minutes) + timedelta(seconds=WINDOW_S)
            else:
                clock = now
            if clock is None:
                continue
            episodes = self._episodes(rule, w, clock, wall)
            out += self._reconcile(rule, asset, episodes, clock)
        self._prune(w, now)
        return out

    def _episodes(
        self, rule: Rule, w: _Watch, now: datetime, wall: datetime | None
    ) -> list[_Episode]:
        if isinstance(rule, LongStop):
            return _long_stops(rule, w.downtimes.values(), now)
        if isinstance(rule, FrequentStops):
            return _frequent_stops(rule, w.downtimes.values(), now)
        if isinstance(rule, OeeBelow):  # minute rows come closed: their own clock
            latest = max(w.minutes, default=None)
            if latest is None:
                return []
            return _oee_below(rule, w.minutes, latest + timedelta(seconds=WINDOW_S))
        if isinstance(rule, Silent):
            return _silences(rule, w, now if wall is not None else None)
        return [e for e in [w.stale.get(rule.name)] if e is not None]

    def _track_stale(self, w: _Watch, rule: Stale, s: BatchSummary) -> None:
        current = w.stale.get(rule.name)
        ongoing = current is not None and current.cleared is None
        if s.last_lag_s > rule.seconds:
            raised = current.raised if (current is not None and ongoing) else s.last_ingest
            worst = max(
                round(s.last_lag_s),
                current.evidence["max_lag_s"] if (current is not None and ongoing) else 0,
            )
            w.stale[rule.name] = _Episode(
                raised,
                None,
                f"source timestamps lag ingest by up to {worst} s (limit {rule.seconds:g} s)",
                {"max_lag_s": worst, "limit_s": rule.seconds},
            )
        elif current is not None and ongoing:
            evidence = {**current.evidence, "lag_s_at_clear": round(s.last_lag_s)}
            w.stale[rule.name] = _Episode(current.raised, s.last_ingest, current.message, evidence)

    def _reconcile(
        self, rule: Rule, asset: str, episodes: Sequence[_Episode], now: datetime
    ) -> list[Alert]:
        known = self.known.setdefault((rule.name, asset), {})
        horizon = now - self.keep
        out: list[Alert] = []
        seen: set[datetime] = set()
        raised_all = {e.raised for e in episodes}
        for ep in sorted(episodes, key=lambda e: e.raised):
            if (ep.cleared is None and ep.raised > now) or (
                ep.cleared is not None and ep.cleared < horizon
            ):
                continue
            cleared = ep.cleared  # the rules only end an episode on facts, never ahead of time
            status: Status = "active" if cleared is None else "cleared"
            key = ep.raised
            if key not in known:
                # the same ongoing condition with a moved start (a correction): update, not raise
                active = [
                    a
                    for a in known.values()
                    if a.status == "active" and a.raised_ts not in seen | raised_all
                ]
                if active:
                    key = active[0].raised_ts
            seen.add(key)
            old = known.get(key)
            if old is None:
                new = Alert(
                    alert_id=alert_id(rule.name, asset, ep.raised),
                    rule=rule.name,
                    kind=KIND_OF[type(rule)],
                    asset=asset,
                    severity=rule.severity,
                    status=status,
                    raised_ts=ep.raised,
                    updated_ts=cleared or now,
                    cleared_ts=cleared,
                    revision=0,
                    message=ep.message,
                    evidence=ep.evidence,
                )
            elif (old.status, old.cleared_ts, old.message, old.evidence) != (
                status,
                cleared,
                ep.message,
                ep.evidence,
            ):
                if old.status == "cleared" and status == "active":
                    continue  # a cleared alert is final; a recurrence is a new episode
                new = msgspec.structs.replace(
                    old,
                    status=status,
                    cleared_ts=cleared,
                    updated_ts=cleared or now,
                    revision=old.revision + 1,
                    message=ep.message,
                    evidence=ep.evidence,
                )
            else:
                continue
            known[key] = new
            out.append(new)
        # an active alert whose condition vanished (a correction removed it) is cleared now
        for key, old in list(known.items()):
            if old.status == "active" and key not in seen:
                new = msgspec.structs.replace(
                    old,
                    status="cleared",
                    cleared_ts=now,
                    updated_ts=now,
                    revision=old.revision + 1,
                    evidence={**old.evidence, "condition_withdrawn": True},
                )
                known[key] = new
                out.append(new)
        for key, old in list(known.items()):
            if old.cleared_ts is not None and old.cleared_ts < horizon:
                del known[key]
        return out

    def _prune(self, w: _Watch, now: datetime | None) -> None:
        if now is None or (w.pruned_at is not None and now - w.pruned_at < timedelta(minutes=1)):
            return
        w.pruned_at = now
        horizon = now - self.keep
        for start in [s for s, d in w.downtimes.items() if d.end is not None and d.end < horizon]:
            del w.downtimes[start]
        for ts in [t for t in w.minutes if t < horizon]:
            del w.minutes[ts]
        if w.last_ingest is not None:
            wall_horizon = w.last_ingest - self.keep
            w.gaps = [g for g in w.gaps if g[1] >= wall_horizon]


# --- the rules' episodes -----------------------------------------------------------------------


def _long_stops(rule: LongStop, rows: Iterable[Downtime], now: datetime) -> list[_Episode]:
    limit = timedelta(minutes=rule.minutes)
    out = []
    for d in rows:
        if d.category not in rule.categories:
            continue
        raised = d.start + limit
        if d.end is not None and d.end <= raised:
            continue
        end = d.end  # an end is a fact: clear at once, whatever the clock says
        running = ((end or now) - d.start).total_seconds()
        evidence: dict[str, Any] = {
            "downtime_start": _iso(d.start),
            "category": d.category,
            "loss": d.loss,
            "state": d.state,
            "stop_reason": d.stop_reason,
            "limit_minutes": rule.minutes,
        }
        if end is None:
            evidence["running_minutes"] = _minutes(running)
            message = (
                f"stopped for {_minutes(running)} min ({d.category}, reason {d.stop_reason}), "
                f"longer than {rule.minutes:g} min"
            )
        else:
            evidence["duration_s"] = running
            message = (
                f"stopped for {running / 60:.1f} min ({d.category}, reason {d.stop_reason}), "
                f"longer than {rule.minutes:g} min; ended {_iso(end)}"
            )
        out.append(_Episode(raised, end, message, evidence))
    return out


def _frequent_stops(rule: FrequentStops, rows: Iterable[Downtime], now: datetime) -> list[_Episode]:
    """Condition at t: more than ``count`` stops started in ``(t - minutes, t]``.

    With stop starts s_0 <= s_1 <= ... it holds exactly on the union of
    ``[s_(i+count), s_i + minutes)``; each maximal interval of that union is one episode.
    """
    window = timedelta(minutes=rule.minutes)
    starts = sorted(d.start for d in rows if d.category in rule.categories and d.start <= now)
    k = rule.count
    spans = [
        (starts[i + k], starts[i] + window)
        for i in range(len(starts) - k)
        if starts[i + k] < starts[i] + window
    ]
    merged: list[list[datetime]] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    out = []
    for lo, hi in merged:
        cleared = hi if hi <= now else None
        until = hi if cleared is not None else now
        involved = [s for s in starts if lo - window < s <= until]
        evidence: dict[str, Any] = {
            "stops": len(involved),
            "stop_starts": [_iso(s) for s in involved[-50:]],
            "limit": k,
            "window_minutes": rule.minutes,
        }
        message = (
            f"{len(involved)} stops ({', '.join(rule.categories)}) within "
            f"{rule.minutes:g}-minute windows, more than {k}"
        )
        out.append(_Episode(lo, cleared, message, evidence))
    return out


def _oee_below(
    rule: OeeBelow, minutes: Mapping[datetime, _Minute], now: datetime
) -> list[_Episode]:
    """Condition at the end of each minute: OEE over the last ``minutes`` complete minutes.

    OEE (ISO 22400) = sum(ideal cycle x good) / sum(PBT). No figure (and no alert) when the
    window is incomplete (a minute missing), when PBT is 0 (nothing planned), or when the ideal
    cycle time of a minute is unknown; an active alert clears then.
    """
    step = timedelta(seconds=WINDOW_S)
    span = rule.minutes * step
    out: list[_Episode] = []
    current: _Episode | None = None
    worst = math.inf
    window: deque[tuple[datetime, _Minute]] = deque()  # the minutes in (ts - span, ts]
    pbt = good_ideal = 0.0
    known = 0  # minutes of the window with a known ideal cycle time
    for ts in sorted(minutes):
        end = ts + step
        if end > now:
            break
        m = minutes[ts]
        window.append((ts, m))
        pbt += m.pbt_s
        if m.good_ideal_s is not None:
            good_ideal += m.good_ideal_s
            known += 1
        while window[0][0] <= ts - span:
            _, old = window.popleft()
            pbt -= old.pbt_s
            if old.good_ideal_s is not None:
                good_ideal -= old.good_ideal_s
                known -= 1
        complete = len(window) == rule.minutes and known == rule.minutes
        oee = good_ideal / pbt if complete and pbt > 1e-9 else None
        if oee is not None and oee < rule.threshold:
            worst = min(worst, oee)
            evidence = {
                "oee": round(oee, 6),
                "min_oee": round(worst, 6),
                "threshold": rule.threshold,
                "window_minutes": rule.minutes,
                "pbt_s": round(pbt, 3),
                "good_ideal_s": round(good_ideal, 3),
                "window_end": _iso(end),
            }
            message = f"OEE {oee:.1%} over the last {rule.minutes} min, below {rule.threshold:.0%}"
            raised = current.raised if current is not None else end
            current = _Episode(raised, None, message, evidence)
        elif current is not None:
            out.append(_Episode(current.raised, end, current.message, current.evidence))
            current, worst = None, math.inf
    if current is not None:
        out.append(current)
    return out


def _silences(rule: Silent, w: _Watch, wall: datetime | None) -> list[_Episode]:
    limit = timedelta(seconds=rule.seconds)
    out = []
    for before, after in w.gaps:
        if after - before > limit:
            out.append(
                _Episode(
                    before + limit,
                    after,
                    f"no event for {(after - before).total_seconds():.0f} s "
                    f"(limit {rule.seconds:g} s) until {_iso(after)}",
                    {
                        "last_event_ingest_ts": _iso(before),
                        "silent_s": (after - before).total_seconds(),
                        "limit_s": rule.seconds,
                    },
                )
            )
    if wall is not None and w.last_ingest is not None and wall - w.last_ingest > limit:
        out.append(
            _Episode(
                w.last_ingest + limit,
                None,
                f"no event since {_iso(w.last_ingest)} (limit {rule.seconds:g} s)",
                {"last_event_ingest_ts": _iso(w.last_ingest), "limit_s": rule.seconds},
            )
        )
    return out
