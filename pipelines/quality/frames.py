"""Window frames: the rows of one topic kind and one ingest minute as a polars frame. Pure.

The quality flow keeps, per open window, one plain tuple per message (:func:`event_row` for a
contract event, :func:`rejected_row` for a message the contract refused) and builds the frame
only when the window closes (:func:`window_frame`). Columns:

- common: ``event_id``, ``asset``, ``ts``, ``ingest_ts``, ``schema_version``, ``valid`` (decoded
  by the contract), ``origin`` (``topic[partition]@offset``), ``bad_fields`` (fields of a
  rejected message whose JSON type was wrong: they are null in the frame), ``reason`` (the dead
  letter's reason);
- the kind's own fields (:data:`KIND_FIELDS`), null where a rejected message lacks them;
- derived, in polars: ``skew_s`` (ingest - source time, seconds), ``ts_backwards_s`` (how far
  the source time went back against the previous event of the same series in Kafka order, null
  when it did not); counters: ``delta`` (against the previous sample of the same asset and
  counter) and ``decrease_unexplained`` (the delta of a fall that is neither a reset of a
  resettable counter nor a rollover, as :mod:`pipelines.accounting.counters` reads them; null
  otherwise); process values: ``range_low`` / ``range_high`` (the instrument range of
  :class:`Limits`).

A series is an asset's events of the kind -- per signal, counter or alarm where the kind has
one (each is sampled on its own). Only valid events whose source time is within the ingest
policy take part, each event id once: a message the contract refused, a source time from
2000-01-01 or a repeated event (a redelivery) is reported by its own expectation and does not
move the series (so each fault fails the check meant for it and not the next event's too).
The last time and counter value of every series are carried from window to window
(:class:`Carry`, part of the flow's snapshotted state), with the previous window's event ids: a
redelivery landing in the next window does not move the series either.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import polars as pl

from asbuilt import events as ev
from pipelines.accounting.counters import NEAR_LIMIT

__all__ = [
    "COMMON_FIELDS",
    "KINDS",
    "KIND_FIELDS",
    "MAX_RECENT_IDS",
    "MAX_SKEW_AHEAD_S",
    "MAX_SKEW_BEHIND_S",
    "OUT_OF_RANGE",
    "Carry",
    "Limits",
    "asset_minute_rows",
    "event_row",
    "raw_schema",
    "rejected_row",
    "window_frame",
]

KINDS: Final = ("states", "counters", "process_values", "alarms", "batch", "materials")
"""The event topic kinds the flow validates (asbuilt.topics.EVENT_TOPIC_KINDS)."""

MAX_SKEW_BEHIND_S: Final = 7 * 86_400.0
"""A source time may lie this far before its ingest time (the connector's policy: 7 days)."""
MAX_SKEW_AHEAD_S: Final = 300.0
"""... and this far after it (a source clock 5 minutes ahead)."""

_UTC: Final = pl.Datetime("us", "UTC")
_STR: Final = pl.Utf8

COMMON_FIELDS: Final[tuple[tuple[str, Any], ...]] = (
    ("event_id", _STR),
    ("asset", _STR),
    ("ts", _UTC),
    ("ingest_ts", _UTC),
    ("schema_version", pl.Int64),
)
_META: Final[tuple[tuple[str, Any], ...]] = (
    ("valid", pl.Boolean),
    ("origin", _STR),
    ("bad_fields", _STR),
    ("reason", _STR),
)

KIND_FIELDS: Final[Mapping[str, tuple[tuple[str, Any], ...]]] = {
    "states": (
        ("state", _STR),
        ("mode", _STR),
        ("stop_reason", _STR),
        ("blocked", pl.Boolean),
        ("starved", pl.Boolean),
    ),
    "counters": (
        ("counter", _STR),
        ("value", pl.Int64),
        ("resettable", pl.Boolean),
        ("rollover", pl.Int64),
    ),
    "process_values": (
        ("signal", _STR),
        ("value", pl.Float64),
        ("unit", _STR),
        ("quality", _STR),
        ("status_code", pl.Int64),
    ),
    "alarms": (
        ("alarm", _STR),
        ("severity", pl.Int64),
        ("message", _STR),
        ("active", pl.Boolean),
        ("acked", pl.Boolean),
    ),
    "batch": (
        ("batch_id", _STR),
        ("recipe_id", _STR),
        ("recipe_version", _STR),
        ("procedure", _STR),
        ("unit_procedure", _STR),
        ("operation", _STR),
        ("phase", _STR),
        ("transition", _STR),
    ),
    "materials": (
        ("direction", _STR),
        ("lot", _STR),
        ("material", _STR),
        ("quantity", pl.Float64),
        ("unit", _STR),
        ("batch_id", _STR),
    ),
}

_SERIES: Final[Mapping[str, str | None]] = {
    "states": None,
    "counters": "counter",
    "process_values": "signal",
    "alarms": "alarm",
    "batch": None,
    "materials": None,
}
"""The field that splits an asset's events of a kind into series (None: one series)."""


def raw_schema(kind: str) -> dict[str, Any]:
    """The column types of the rows of ``kind`` (the tuples of :func:`event_row`)."""
    return dict((*COMMON_FIELDS, *KIND_FIELDS[kind], *_META))


_EVENT_NAMES: Final = {
    kind: tuple(n for n, _ in (*COMMON_FIELDS, *KIND_FIELDS[kind])) for kind in KIND_FIELDS
}


_EVENT_CHECKS: Final = {
    kind: tuple((n, t == pl.Int64, t == _UTC) for n, t in (*COMMON_FIELDS, *KIND_FIELDS[kind]))
    for kind in KIND_FIELDS
}

OUT_OF_RANGE: Final = (
    "outside what the quality checks can hold: {fields} (an integer of 2**63 or more, or a "
    "time outside the years 1-9999 once converted to UTC); the contract allows it, check the "
    "producer"
)
"""The reason of a contract event the frame cannot hold (its row is validated as refused)."""


def _utc(ts: datetime) -> datetime | None:
    """``ts`` in UTC, or None where that is not a datetime (0001-01-01T00:00+01:00)."""
    try:
        return ts.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def event_row(kind: str, event: ev.Event, origin: str) -> tuple[Any, ...]:
    """The row of a contract event (fields of :func:`raw_schema` order).

    Why a contract event may become a refused row: the contract allows counters up to
    2**64 - 1 and any time with an offset, but a frame column is a signed 64-bit integer and
    a UTC time (and the flow windows by UTC). Such a field is null and the row is not ``valid``
    (reason :data:`OUT_OF_RANGE`): a failed expectation with its example, never a crash."""
    values = [getattr(event, n) for n in _EVENT_NAMES[kind]]
    bad: list[str] = []
    for i, (name, is_int, is_ts) in enumerate(_EVENT_CHECKS[kind]):
        v = values[i]
        if v is None:
            continue
        if (is_int and not -(2**63) <= v < 2**63) or (is_ts and _utc(v) is None):
            bad.append(name)
            values[i] = None
    if bad:
        fields = ",".join(bad)
        return (*values, False, origin, fields, OUT_OF_RANGE.format(fields=fields))
    return (*values, True, origin, None, None)


# --- lenient parsing of rejected messages -----------------------------------------------------


def _as_str(v: Any) -> tuple[Any, bool]:
    return (v, True) if isinstance(v, str) else (None, False)


def _as_int(v: Any) -> tuple[Any, bool]:
    if isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63:
        return v, True
    return None, False


def _as_float(v: Any) -> tuple[Any, bool]:
    if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
        return float(v), True
    return None, False


def _as_bool(v: Any) -> tuple[Any, bool]:
    return (v, True) if isinstance(v, bool) else (None, False)


def _as_ts(v: Any) -> tuple[Any, bool]:
    if not isinstance(v, str):
        return None, False
    try:
        ts = datetime.fromisoformat(v)
    except ValueError:
        return None, False
    if ts.tzinfo is None or ts.utcoffset() is None or _utc(ts) is None:
        return None, False
    return ts, True


_PARSERS: Final = {_STR: _as_str, pl.Int64: _as_int, pl.Float64: _as_float, pl.Boolean: _as_bool}


def _parser(dtype: Any) -> Any:
    if dtype == _UTC:
        return _as_ts
    for known, fn in _PARSERS.items():
        if dtype == known:
            return fn
    msg = f"no lenient parser for {dtype}"
    raise TypeError(msg)


_LENIENT: Final = {
    kind: tuple((n, _parser(t)) for n, t in (*COMMON_FIELDS, *KIND_FIELDS[kind]))
    for kind in KIND_FIELDS
}


def rejected_row(
    kind: str, payload: bytes | str | None, origin: str, reason: str
) -> tuple[Any, ...]:
    """The row of a message the contract refused: its JSON parsed leniently (a field that is
    missing or of the wrong type is null; wrong types are listed in ``bad_fields``)."""
    try:
        doc = json.loads(payload) if payload else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        doc = None
    if not isinstance(doc, dict):
        doc = {}
    values: list[Any] = []
    bad: list[str] = []
    for name, parse in _LENIENT[kind]:
        raw = doc.get(name)
        if raw is None:
            values.append(None)
            continue
        value, ok = parse(raw)
        if not ok:
            bad.append(name)
        values.append(value)
    return (*values, False, origin, ",".join(bad) or None, reason)


# --- limits ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """What values must stay in.

    ``signals``: ranges of process values per ``(asset, signal)`` (instrument ranges, from the
    plant model or configuration); ``units``: where none is known, per unit (physical limits).
    A bound of None is open. ``max_behind_s`` / ``max_ahead_s``: how far a source time may lie
    before / after its ingest time (the connector's policy; ``max_ahead_s`` None: any time
    ahead, for a simulated plant running faster than the wall clock).
    """

    signals: Mapping[tuple[str, str], tuple[float | None, float | None]] = field(
        default_factory=dict
    )
    units: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    max_behind_s: float = MAX_SKEW_BEHIND_S
    max_ahead_s: float | None = MAX_SKEW_AHEAD_S

    def skew_ok(self) -> pl.Expr:
        """True where ``skew_s`` (ingest - source time, s) is within the policy."""
        ok = pl.col("skew_s") <= self.max_behind_s
        if self.max_ahead_s is not None:
            ok = ok & (pl.col("skew_s") >= -self.max_ahead_s)
        return ok


# --- the window frame --------------------------------------------------------------------------


@dataclass
class Carry:
    """What one window passes to the next of its kind: per series, the last source time and
    (counters) the last value, in Kafka order."""

    last_ts: dict[str, datetime] = field(default_factory=dict)
    last_value: dict[str, int] = field(default_factory=dict)
    recent_ids: frozenset[str] = frozenset()
    """The event ids of the previous window's series (at most :data:`MAX_RECENT_IDS`, the
    newest): a redelivery of one of them in this window is left out of the series checks --
    compared with the carried newer values it would fail ``ts_monotonic`` or
    ``counter_never_decreases`` although nothing went back (``event_id_unique`` sees only its
    own window). Bounded so that the snapshotted state stays small on a busy kind."""


MAX_RECENT_IDS: Final = 20_000
"""How many event ids of the previous window a :class:`Carry` keeps (see ``recent_ids``)."""


def _series_key(kind: str) -> pl.Expr:
    sub = _SERIES[kind]
    if sub is None:
        return pl.col("asset")
    return pl.concat_str([pl.col("asset"), pl.col(sub).fill_null("")], separator="\x1f")


def window_frame(
    kind: str, rows: list[tuple[Any, ...]], carry: Carry, limits: Limits | None = None
) -> tuple[pl.DataFrame, Carry]:
    """The frame of one window of ``kind`` (rows in arrival order) and the carry for the next
    window (see the module docstring for the derived columns)."""
    frame = pl.DataFrame(rows, schema=raw_schema(kind), orient="row")
    frame = frame.with_columns(
        skew_s=(pl.col("ingest_ts") - pl.col("ts")).dt.total_microseconds() / 1e6,
        _key=_series_key(kind),
    ).with_row_index("_row")
    series = frame.filter(
        pl.col("valid")
        & pl.col("event_id").is_first_distinct()
        & pl.col("asset").is_not_null()
        & pl.col("ts").is_not_null()
        & (limits or Limits()).skew_ok()
    )
    # getattr: a carry snapshotted before recent_ids existed has none
    recent: frozenset[str] = getattr(carry, "recent_ids", frozenset())
    if recent:
        series = series.filter(~pl.col("event_id").is_in(list(recent)))
    ids = series["event_id"].tail(MAX_RECENT_IDS).to_list()
    new = Carry(dict(carry.last_ts), dict(carry.last_value), frozenset(ids))

    # monotonic source time per series, against the previous event (carried across windows)
    last_ts = pl.DataFrame(
        {"_key": list(carry.last_ts), "_carry_ts": list(carry.last_ts.values())},
        schema={"_key": _STR, "_carry_ts": _UTC},
    )
    prev = pl.col("ts").shift(1).over("_key")
    back = series.join(last_ts, on="_key", how="left").select(
        "_row",
        ts_backwards_s=pl.when(pl.coalesce(prev, "_carry_ts") > pl.col("ts")).then(
            (pl.coalesce(prev, "_carry_ts") - pl.col("ts")).dt.total_microseconds() / 1e6
        ),
    )
    frame = frame.join(back, on="_row", how="left")
    for key, ts in series.group_by("_key", maintain_order=True).agg(pl.col("ts").last()).rows():
        new.last_ts[key] = ts

    if kind == "counters":
        counts = series.filter(pl.col("value").is_not_null())
        last_value = pl.DataFrame(
            {"_key": list(carry.last_value), "_carry_v": list(carry.last_value.values())},
            schema={"_key": _STR, "_carry_v": pl.Int64},
        )
        before = pl.coalesce(pl.col("value").shift(1).over("_key"), "_carry_v")
        near = 1.0 - NEAR_LIMIT
        rollover = (
            pl.col("rollover").is_not_null()
            & (pl.col("_prev") >= pl.col("rollover") * near)
            & (pl.col("value") <= pl.col("rollover") * NEAR_LIMIT)
        )
        deltas = (
            counts.join(last_value, on="_key", how="left")
            .with_columns(_prev=before)
            .select(
                "_row",
                delta=pl.col("value") - pl.col("_prev"),
                decrease_unexplained=pl.when(
                    (pl.col("value") < pl.col("_prev"))
                    & ~pl.col("resettable").fill_null(False)
                    & ~rollover.fill_null(False)
                ).then(pl.col("value") - pl.col("_prev")),
            )
        )
        frame = frame.join(deltas, on="_row", how="left")
        for key, value in (
            counts.group_by("_key", maintain_order=True).agg(pl.col("value").last()).rows()
        ):
            new.last_value[key] = value

    if kind == "process_values":
        frame = _with_ranges(frame, limits or Limits())

    return frame.sort("_row").drop("_row", "_key"), new


def _with_ranges(frame: pl.DataFrame, limits: Limits) -> pl.DataFrame:
    sig = pl.DataFrame(
        {
            "asset": [a for a, _ in limits.signals],
            "signal": [s for _, s in limits.signals],
            "_sig_low": [r[0] for r in limits.signals.values()],
            "_sig_high": [r[1] for r in limits.signals.values()],
        },
        schema={"asset": _STR, "signal": _STR, "_sig_low": pl.Float64, "_sig_high": pl.Float64},
    )
    unit = pl.DataFrame(
        {
            "unit": list(limits.units),
            "_unit_low": [r[0] for r in limits.units.values()],
            "_unit_high": [r[1] for r in limits.units.values()],
        },
        schema={"unit": _STR, "_unit_low": pl.Float64, "_unit_high": pl.Float64},
    )
    return (
        frame.join(sig, on=["asset", "signal"], how="left", nulls_equal=False)
        .join(unit, on="unit", how="left")
        .with_columns(
            range_low=pl.coalesce("_sig_low", "_unit_low"),
            range_high=pl.coalesce("_sig_high", "_unit_high"),
        )
        .drop("_sig_low", "_sig_high", "_unit_low", "_unit_high")
    )


# --- KPI raw material --------------------------------------------------------------------------

ASSET_KIND_COLUMNS: Final = (
    "ts", "asset", "kind", "events", "rejected", "pv_good", "pv_uncertain", "pv_bad",
    "skew_s_min", "skew_s_p50", "skew_s_max", "last_ts", "last_ingest_ts",
)  # fmt: skip
"""The columns of ``dq_asset_kind_minutes`` (see sql/003_quality.sql)."""


def asset_minute_rows(kind: str, frame: pl.DataFrame, minute: datetime) -> list[tuple[Any, ...]]:
    """One ``dq_asset_kind_minutes`` row per asset of the window frame (rows without an asset
    -- unparsable messages -- are counted nowhere but in ``dead_letters``)."""
    valid = pl.col("valid")
    pv = kind == "process_values"

    def quality(q: str) -> pl.Expr:
        if not pv:
            return pl.lit(0, pl.Int64)
        return (valid & (pl.col("quality") == q)).sum().cast(pl.Int64)

    agg = (
        frame.filter(pl.col("asset").is_not_null())
        .group_by("asset", maintain_order=True)
        .agg(
            events=valid.sum().cast(pl.Int64),
            rejected=(~valid).sum().cast(pl.Int64),
            pv_good=quality("good"),
            pv_uncertain=quality("uncertain"),
            pv_bad=quality("bad"),
            skew_s_min=pl.col("skew_s").filter(valid).min(),
            skew_s_p50=pl.col("skew_s").filter(valid).median(),
            skew_s_max=pl.col("skew_s").filter(valid).max(),
            last_ts=pl.col("ts").filter(valid).max(),
            last_ingest_ts=pl.col("ingest_ts").filter(valid).max(),
        )
        .sort("asset")
    )
    return [(minute, r[0], kind, *r[1:]) for r in agg.rows()]
