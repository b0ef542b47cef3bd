"""OPC UA notifications → asbuilt events. Pure: no I/O, no clock of its own.

**Timestamps** (the event time of every event):

1. the notification's ``SourceTimestamp`` when it is plausible;
2. else the ``ServerTimestamp`` when that is plausible;
3. else the time the connector received the notification.

Plausible = not more than ``max_future`` ahead of the receive time (a device clock running
ahead) and not more than ``max_age`` behind it (a device clock reset, e.g. to 2000-01-01). When
the source timestamp is missing or implausible the event still goes out with the substitute, and
a dead letter records what was replaced, so the fault is counted and visible and nothing is lost.

**Values**: a state, mode, stop reason, interlock or counter whose status is not Good, whose type
is wrong or whose value is impossible (an unknown PackML number, a negative count) becomes a dead
letter with the reason; a process value keeps its quality (good / uncertain / bad) and is sent.

**Machine state**: PackML state, unit mode, stop reason and the blocked/starved interlocks are
separate nodes that a device changes together. :class:`StateAssembler` merges the parts that share
a source timestamp into one ``StateChange`` carrying the value of every part as of that instant,
waiting ``settle_s`` for parts that arrive late or out of order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from asbuilt import events as ev
from connectors.opcua.nodemap import Signal

GOOD = 0x00000000
_SEVERITY_MASK = 0xC0000000


@dataclass(frozen=True, slots=True)
class Notification:
    """One data change as received (the transport's DataValue, flattened)."""

    signal: Signal
    value: Any
    status_code: int
    source_ts: datetime | None
    server_ts: datetime | None
    received: datetime


@dataclass(frozen=True, slots=True)
class TimestampPolicy:
    max_future: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(days=7)

    def plausible(self, ts: datetime | None, received: datetime) -> bool:
        if ts is None:
            return False
        try:
            return received - self.max_age <= ts <= received + self.max_future
        except OverflowError:  # a bound beyond year 9999 is no bound
            return (ts - received <= self.max_future) and (received - ts <= self.max_age)


def aware(ts: Any) -> datetime | None:
    """A transport timestamp as a timezone-aware datetime; None for none (OPC UA's "no time"
    is 1601-01-01) or for anything that is not a datetime."""
    if not isinstance(ts, datetime) or ts.year < 1602:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def event_time(n: Notification, policy: TimestampPolicy) -> tuple[datetime, str | None]:
    """The event time of a notification and, when it is not the source timestamp, why."""
    if policy.plausible(n.source_ts, n.received):
        assert n.source_ts is not None
        return n.source_ts, None
    what = "missing" if n.source_ts is None else f"implausible ({n.source_ts.isoformat()})"
    if policy.plausible(n.server_ts, n.received):
        assert n.server_ts is not None
        return n.server_ts, f"source timestamp {what}; used the server timestamp"
    return (
        n.received,
        f"source timestamp {what} and no plausible server timestamp; used receive time",
    )


def _dead(n: Notification, reason: str) -> ev.DeadLetter:
    payload = (
        f"value={n.value!r} status=0x{n.status_code:08X} source_ts={n.source_ts} "
        f"server_ts={n.server_ts} signal={n.signal.kind}:{n.signal.name}"
    )
    return ev.new_dead_letter(
        reason=f"{n.signal.asset}: {reason}",
        origin=f"opcua {n.signal.ref}",
        payload=payload.encode(),
        received_ts=n.received,
    )


def _status_name(code: int) -> str:
    from asyncua import ua

    try:
        return str(ua.StatusCode(ua.UInt32(code)).name)
    except Exception:  # noqa: BLE001 - an unknown code is still worth naming by number
        return f"0x{code:08X}"


def _fits(value: Any, contract_type: Any) -> bool:
    """True when ``value`` passes the event contract's validation of ``contract_type``."""
    try:
        msgspec.convert(value, contract_type)
    except msgspec.ValidationError:
        return False
    return True


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def state_part(n: Notification) -> tuple[str, Any] | str:
    """(field, value) of a state-kind notification, or the reason it cannot be used."""
    kind, value = n.signal.kind, n.value
    if kind == "state":
        if _is_int(value):
            name = ev.packml_state_name(value, n.signal.numbering)
            if name is None:
                return f"unknown PackML state number {value} in the {n.signal.numbering} numbering"
            return "state", name
        if isinstance(value, str) and value in ev.PACKML_STATES:
            return "state", value
        return f"a PackML state must be a number or a state name, got {value!r}"
    if kind == "mode":
        if _is_int(value):
            mode = ev.unit_mode_name(value)
            return ("mode", mode) if mode else f"unknown unit mode number {value}"
        if isinstance(value, str) and value and _fits(value, ev.Name):
            return "mode", value
        return f"a unit mode must be a number or a name of 1-256 characters, got {value!r}"
    if kind == "stop_reason":
        code = str(value) if _is_int(value) else value
        if code is None or code == "" or code == "0":  # PackTags StopReason 0: no reason
            return "stop_reason", None
        if isinstance(code, str) and _fits(code, ev.ReasonCode):
            return "stop_reason", code
        return f"a stop reason must be a code like 100.20 (at most 64 characters), got {value!r}"
    if isinstance(value, bool):
        return kind, value
    return f"{kind} must be a boolean, got {value!r}"


def translate(
    n: Notification, policy: TimestampPolicy
) -> tuple[ev.Event | None, tuple[str, Any] | None, list[ev.DeadLetter]]:
    """One notification → (an event, or a state part for the assembler) and dead letters."""
    ts, ts_problem = event_time(n, policy)
    dead = [_dead(n, ts_problem)] if ts_problem else []
    kind = n.signal.kind
    severity = n.status_code & _SEVERITY_MASK
    if kind == "process_value":
        if not isinstance(n.value, int | float) or isinstance(n.value, bool):
            return None, None, [*dead, _dead(n, f"{n.signal.name}: not a number: {n.value!r}")]
        if not math.isfinite(float(n.value)):
            return None, None, [*dead, _dead(n, f"{n.signal.name}: not a finite number")]
        event: ev.Event = ev.new_process_value(
            asset=n.signal.asset,
            ts=ts,
            signal=n.signal.name,
            value=float(n.value),
            unit=n.signal.unit,
            status_code=n.status_code,
            ingest_ts=n.received,
        )
        return event, None, dead
    if severity != GOOD:
        what = n.signal.name or kind
        reason = f"{what}: status {_status_name(n.status_code)}, value not used"
        return None, None, [*dead, _dead(n, reason)]
    if kind == "counter":
        if not _is_int(n.value) or n.value < 0:
            reason = f"counter {n.signal.name}: not a non-negative integer: {n.value!r}"
            return None, None, [*dead, _dead(n, reason)]
        event = ev.new_counter_sample(
            asset=n.signal.asset,
            ts=ts,
            counter=n.signal.name,
            value=n.value,
            resettable=n.signal.resettable,
            rollover=n.signal.rollover,
            ingest_ts=n.received,
        )
        return event, None, dead
    part = state_part(n)
    if isinstance(part, str):
        return None, None, [*dead, _dead(n, part)]
    return None, part, dead


@dataclass(slots=True)
class _Group:
    """The parts of one asset that carry one source timestamp, while the group is open."""

    parts: dict[str, Any]
    touched: float  # monotonic seconds of the last part added
    received: datetime  # when its first part arrived: the StateChange's ingest_ts


@dataclass(slots=True)
class _Known:
    """What an asset's state parts were as of its last closed group."""

    snapshot: dict[str, Any] = field(default_factory=dict)
    since: dict[str, datetime] = field(default_factory=dict)  # event time of each value
    closed: datetime | None = None  # the newest group closed (emitted, or lacking a part)


@dataclass
class StateAssembler:
    """Merge state parts sharing (asset, source timestamp) into one StateChange.

    Every timestamp of an asset is an open group until ``settle_s`` of wall time has passed
    since its last part; :meth:`flush` then closes it, oldest first. :meth:`add` only collects,
    it never emits. Why wait even when a newer timestamp has already arrived: a server cuts its
    publish responses by time, not by instant, so the parts of one instant can arrive in two
    responses, and a part of instant T after a part of a later T' (a simulator running 300x
    fast puts two changes 7 ms apart). Closing T when T' shows up sent T with a stale part (a
    unit mode change lost, setup counted as production).

    A group goes out with the asset's state *as of its instant*: the snapshot of the last
    closed group with the parts of every group up to and including this one applied in
    timestamp order, so a late part of T changes T and every later group, never an earlier one.
    An older group still open holds back the newer ones, so an asset's StateChanges go out in
    timestamp order.

    A part at or before the asset's last closed group is not a change: it is a value that has
    held since then, as a server re-sends current values after (re)subscribing, each with the
    source timestamp of its last change (or a part that came later than ``settle_s``). It
    updates the snapshot (so the next group carries it, unless the snapshot already has a newer
    value of that part) and makes no StateChange of its own; the emitted history is never
    rewritten, which would put two different StateChanges at one instant.
    """

    settle_s: float = 0.2
    # The state parts each asset's node map provides: a group goes out only once all are known
    # (a value re-sent after a restart must not be paired with an assumed default).
    required: Mapping[str, frozenset[str]] = field(default_factory=dict)
    _known: dict[str, _Known] = field(default_factory=dict)
    _open: dict[str, dict[datetime, _Group]] = field(default_factory=dict)  # asset -> ts -> group

    def add(
        self, asset: str, part: tuple[str, Any], ts: datetime, received: datetime, now: float
    ) -> list[ev.StateChange | ev.DeadLetter]:
        """Collect one part; ``now`` is monotonic seconds. Returns nothing today (a list, so a
        caller can treat add and flush alike); :meth:`flush` emits."""
        name, value = part
        known = self._known.setdefault(asset, _Known())
        if known.closed is not None and ts <= known.closed:
            if ts >= known.since.get(name, ts):  # an older value never replaces a newer one
                known.snapshot[name] = value
                known.since[name] = ts
            return []
        groups = self._open.setdefault(asset, {})
        group = groups.get(ts)
        if group is None:
            groups[ts] = _Group({name: value}, now, received)
        else:
            group.parts[name] = value
            group.touched = now
        return []

    def flush(self, now: float, force: bool = False) -> list[ev.StateChange | ev.DeadLetter]:
        """Close, oldest first, each asset's groups that have settled (all of them on ``force``,
        e.g. when the connection is lost): the StateChanges and dead letters that makes."""
        out: list[ev.StateChange | ev.DeadLetter] = []
        for asset in list(self._open):
            groups = self._open[asset]
            while groups:
                ts = min(groups)
                group = groups[ts]
                if not force and now - group.touched < self.settle_s:
                    break  # the newer groups wait: an asset's changes go out in time order
                del groups[ts]
                out += self._close(asset, ts, group)
            if not groups:
                del self._open[asset]
        return out

    def _close(
        self, asset: str, ts: datetime, group: _Group
    ) -> list[ev.StateChange | ev.DeadLetter]:
        known = self._known[asset]
        for name, value in group.parts.items():
            known.snapshot[name] = value
            known.since[name] = ts
        known.closed = ts
        snap = known.snapshot
        needed = self.required.get(asset, frozenset({"state"})) | {"state"}
        if not needed <= snap.keys():  # nothing to say until every mapped part is known
            return []
        try:
            change = ev.new_state_change(
                asset=asset,
                ts=ts,
                state=snap["state"],
                mode=snap.get("mode") or ev.MODE_PRODUCE,  # a map with no mode node: Produce
                stop_reason=snap.get("stop_reason"),
                blocked=bool(snap.get("blocked", False)),
                starved=bool(snap.get("starved", False)),
                ingest_ts=group.received,
            )
        except ev.InvalidEvent as exc:  # state_part validates; this is the last line of defence
            return [
                ev.new_dead_letter(
                    reason=f"{asset}: machine state does not fit the contract: {exc}",
                    origin=f"opcua state of {asset}",
                    payload=repr(snap).encode(),
                    received_ts=group.received,
                )
            ]
        return [change]
