"""The expectation suites, as code: one per event kind (``events.<kind>``) and per derived table
(``table.<name>``), and the limits they check against.

Every check has a stable snake_case name (the ``expectation`` column of ``dq_results``) and is
one GX expectation over a column of the window frame (:mod:`pipelines.quality.frames`, which
computes the derived columns in polars: skew, backward time steps, counter deltas, instrument
ranges; and :func:`oee_frame` / :func:`downtime_frame` here for the tables).

Event suites (every kind):

=============================  ==================================================================
``schema_valid``               the message decoded by the contract (``valid``); the unexpected
                               percent is the share of rejected messages
``fields_well_typed``          no field of a rejected message had the wrong JSON type
``<field>_not_null``           event_id, asset, ts, ingest_ts and the kind's required fields
``asset_is_isa95_path``        1 to 5 path segments of ``[A-Za-z0-9_.-]``
``schema_version_supported``   1 <= schema_version <= the contract's version
``event_id_unique``            no event id twice in the window
``ts_within_ingest_policy``    source time in [ingest - 7 days, ingest + 5 min] (the
                               connector's policy; a time from 2000-01-01 fails)
``ts_monotonic``               the source time never goes back within a series (asset; and
                               signal / counter / alarm), across windows
=============================  ==================================================================

Kind checks: states -- ``state_in_packml_set`` (the 17 PackML names), ``mode_not_empty``,
``stop_reason_format``; counters -- ``value_non_negative``, ``counter_never_decreases`` (a fall
must be a reset of a resettable counter or a rollover, as pipelines.accounting.counters reads
them), ``rollover_positive``; process values -- ``quality_in_set``, ``unit_not_empty``,
``status_code_in_range``, ``value_above_range_low`` / ``value_below_range_high`` (the
instrument range where known, see :func:`limits_of`); alarms -- ``severity_in_range``; batch --
``transition_in_set``; materials -- ``direction_in_set``, ``quantity_positive``,
``unit_not_empty``.

Table suites: ``table.oee_minutes`` -- ``seconds_sum_to_60`` (closure), ``availability_in_0_1``,
``quality_in_0_1``, ``performance_non_negative``, ``hourly_performance_at_most_1`` (per asset
and hour: Σ ideal_s / Σ production_s; a single minute may exceed 1 -- its counts can land a
minute after the seconds that made them, and the OEE views flag it ``performance_over_1`` --
but an hour with at least :data:`HOUR_PERFORMANCE_MIN_S` of production, and enough for
:data:`HOUR_PERFORMANCE_MIN_CYCLES` ideal cycles, may not exceed 1 by more than
:data:`PERFORMANCE_TOLERANCE`: that means a wrong ideal cycle time),
``processed_at_least_defective``, ``ideal_cycle_s_positive``; ``table.downtime_events`` --
``end_not_before_start``, ``category_in_set``, ``loss_in_set``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any, Final

import polars as pl

from asbuilt import events as ev
from asbuilt.plant import PlantModel
from pipelines.accounting.model import CATEGORIES
from pipelines.downtime.downtime import LOSSES
from pipelines.quality.frames import KINDS, MAX_SKEW_AHEAD_S, Limits
from pipelines.quality.gx import Check, Suite, expectations

__all__ = [
    "DEFAULT_UNIT_RANGES",
    "HOUR_PERFORMANCE_MIN_CYCLES",
    "HOUR_PERFORMANCE_MIN_S",
    "OEE_TABLE_COLUMNS",
    "PERFORMANCE_TOLERANCE",
    "TABLES",
    "downtime_frame",
    "event_suite",
    "limits_of",
    "oee_frame",
    "table_suite",
]

X = expectations

DEFAULT_UNIT_RANGES: Final[dict[str, tuple[float | None, float | None]]] = {
    "Cel": (-273.15, None),
    "K": (0.0, None),
    "%": (0.0, 100.0),
    "%RH": (0.0, 100.0),
    "mg": (0.0, None),
    "g": (0.0, None),
    "kg": (0.0, None),
}
"""Physical limits by unit (UCUM codes), used where no instrument range is known, and cutting
the ranges derived from the plant model. Not for speeds (``{rpm}``): a rotation can be reported
signed (its direction), and the simulator's idle noise around 0 rpm goes below 0."""

RANGE_NOISE_SIGMAS: Final = 10.0
RANGE_MARGIN: Final = 0.5

PERFORMANCE_TOLERANCE: Final = 0.05
HOUR_PERFORMANCE_MIN_S: Final = 600.0
HOUR_PERFORMANCE_MIN_CYCLES: Final = 20.0
"""An hour's performance is judged only with production time for this many ideal cycles: a
count is recorded when its unit (or batch) completes, so one unit more or less in the hour moves
the figure by ideal_cycle_s / production_s -- at most 5 % here. A batch machine (a 30-minute
cycle) is therefore never judged per hour."""

TABLES: Final = ("oee_minutes", "downtime_events")

_REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    "states": ("state", "mode"),
    "counters": ("counter", "value", "resettable"),
    "process_values": ("signal", "value", "unit", "quality", "status_code"),
    "alarms": ("alarm", "severity", "message", "active", "acked"),
    "batch": ("batch_id", "recipe_id", "recipe_version", "procedure", "transition"),
    "materials": ("direction", "lot", "material", "quantity", "unit"),
}


def limits_of(plant: PlantModel | None, max_ahead_s: float | None = MAX_SKEW_AHEAD_S) -> Limits:
    """The process-value limits of a plant model.

    The plant model has no instrument ranges; its signals have a nominal value, a noise and an
    idle value, so the range of a signal is the span of nominal and idle widened on each side by
    the larger of :data:`RANGE_NOISE_SIGMAS` noise sigmas and :data:`RANGE_MARGIN` of the
    larger magnitude, and cut to the unit's physical limits (:data:`DEFAULT_UNIT_RANGES`). A
    simulated value (Gaussian noise) never leaves it; a transmitter stuck at full scale or a
    value in the wrong unit does. ``max_ahead_s``: how far a source time may run ahead of its
    ingest time (None: no limit).
    """
    signals: dict[tuple[str, str], tuple[float | None, float | None]] = {}
    if plant is not None:
        for path, asset in plant.assets.items():
            for s in asset.signals:
                idle = s.nominal if s.idle is None else s.idle
                lo, hi = min(s.nominal, idle), max(s.nominal, idle)
                margin = max(
                    RANGE_NOISE_SIGMAS * s.noise, RANGE_MARGIN * max(abs(lo), abs(hi)), 1.0
                )
                low, high = lo - margin, hi + margin
                phys_low, phys_high = DEFAULT_UNIT_RANGES.get(s.unit, (None, None))
                if phys_low is not None:
                    low = max(low, phys_low)
                if phys_high is not None:
                    high = min(high, phys_high)
                signals[(path, s.name)] = (low, high)
    return Limits(signals=signals, units=dict(DEFAULT_UNIT_RANGES), max_ahead_s=max_ahead_s)


def _not_null(*columns: str) -> list[Check]:
    return [Check(f"{c}_not_null", X.ExpectColumnValuesToNotBeNull(column=c)) for c in columns]


def _in_set(name: str, column: str, values: Iterable[Any]) -> Check:
    return Check(name, X.ExpectColumnValuesToBeInSet(column=column, value_set=list(values)))


def _between(name: str, column: str, low: float | None, high: float | None, **kw: Any) -> Check:
    return Check(
        name, X.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high, **kw)
    )


def _null(name: str, column: str) -> Check:
    return Check(name, X.ExpectColumnValuesToBeNull(column=column))


def _at_least(name: str, a: str, b: str) -> Check:
    """``a >= b`` row by row; rows where either is null are not judged."""
    return Check(
        name,
        X.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=a, column_B=b, or_equal=True, ignore_row_if="either_value_is_missing"
        ),
    )


def _lengths(name: str, column: str, low: int, high: int) -> Check:
    return Check(
        name, X.ExpectColumnValueLengthsToBeBetween(column=column, min_value=low, max_value=high)
    )


def event_suite(kind: str, limits: Limits | None = None) -> Suite:
    """The suite ``events.<kind>`` (see the module docstring). Of ``limits`` the suite uses the
    ingest-time policy; the instrument ranges are per-row columns of the frame
    (:func:`pipelines.quality.frames.window_frame`)."""
    lim = limits or Limits()
    return _event_suite(kind, lim.max_behind_s, lim.max_ahead_s)


@cache
def _event_suite(kind: str, max_behind_s: float, max_ahead_s: float | None) -> Suite:
    if kind not in KINDS:
        msg = f"no event suite for {kind!r}; kinds: {', '.join(KINDS)}"
        raise ValueError(msg)
    checks: list[Check] = [
        _in_set("schema_valid", "valid", [True]),
        _null("fields_well_typed", "bad_fields"),
        *_not_null("event_id", "asset", "ts", "ingest_ts"),
        *_not_null(*_REQUIRED[kind]),
        Check(
            "asset_is_isa95_path",
            X.ExpectColumnValuesToMatchRegex(
                column="asset", regex=r"^[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+){0,4}$"
            ),
        ),
        _between("schema_version_supported", "schema_version", 1, ev.SCHEMA_VERSION),
        Check("event_id_unique", X.ExpectColumnValuesToBeUnique(column="event_id")),
        _between(
            "ts_within_ingest_policy",
            "skew_s",
            None if max_ahead_s is None else -max_ahead_s,
            max_behind_s,
        ),
        _null("ts_monotonic", "ts_backwards_s"),
    ]
    if kind == "states":
        checks += [
            _in_set("state_in_packml_set", "state", ev.PACKML_STATES),
            _lengths("mode_not_empty", "mode", 1, 256),
            Check(
                "stop_reason_format",
                X.ExpectColumnValuesToMatchRegex(
                    column="stop_reason", regex=r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$"
                ),
            ),
        ]
    elif kind == "counters":
        checks += [
            _between("value_non_negative", "value", 0, None),
            _null("counter_never_decreases", "decrease_unexplained"),
            _between("rollover_positive", "rollover", 1, None),
        ]
    elif kind == "process_values":
        checks += [
            _in_set("quality_in_set", "quality", ("good", "uncertain", "bad")),
            _lengths("unit_not_empty", "unit", 1, 32),
            _between("status_code_in_range", "status_code", 0, 0xFFFF_FFFF),
            _at_least("value_above_range_low", "value", "range_low"),
            _at_least("value_below_range_high", "range_high", "value"),
        ]
    elif kind == "alarms":
        checks += [_between("severity_in_range", "severity", 1, 1000)]
    elif kind == "batch":
        checks += [
            _in_set(
                "transition_in_set",
                "transition",
                ("started", "held", "restarted", "completed", "aborted", "stopped"),
            )
        ]
    elif kind == "materials":
        checks += [
            _in_set("direction_in_set", "direction", ("consumed", "produced")),
            _between("quantity_positive", "quantity", 0, None, strict_min=True),
            _lengths("unit_not_empty", "unit", 1, 32),
        ]
    return Suite(f"events.{kind}", tuple(checks))


@cache
def table_suite(name: str) -> Suite:
    """The suite ``table.<name>`` over one UTC hour of a derived table (see the module doc)."""
    if name == "oee_minutes":
        return Suite(
            "table.oee_minutes",
            (
                *_not_null("asset", "ts"),
                _between("seconds_sum_to_60", "seconds_sum", 60 - 1e-6, 60 + 1e-6),
                _between("availability_in_0_1", "availability", 0, 1),
                _between("quality_in_0_1", "quality", 0, 1),
                _between("performance_non_negative", "performance", 0, None),
                _between(
                    "hourly_performance_at_most_1",
                    "hour_performance",
                    0,
                    1 + PERFORMANCE_TOLERANCE,
                ),
                _at_least("processed_at_least_defective", "processed", "defective"),
                _between("ideal_cycle_s_positive", "ideal_cycle_s", 0, None, strict_min=True),
            ),
        )
    if name == "downtime_events":
        return Suite(
            "table.downtime_events",
            (
                *_not_null("asset", "ts"),
                _at_least("end_not_before_start", "end_ts", "start_ts"),
                _in_set(
                    "category_in_set", "category", [c for c in CATEGORIES if c != "production"]
                ),
                _in_set("loss_in_set", "loss", LOSSES),
            ),
        )
    msg = f"no table suite for {name!r}; tables: {', '.join(TABLES)}"
    raise ValueError(msg)


# --- table frames ------------------------------------------------------------------------------

_SECONDS: Final = tuple(f"{c}_s" for c in CATEGORIES)
OEE_TABLE_COLUMNS: Final = (
    "ts",
    "asset",
    *_SECONDS,
    "processed",
    "defective",
    "rework",
    "ideal_cycle_s",
)
"""The ``oee_minutes`` columns the table suite reads (in :func:`oee_frame` row order)."""
DOWNTIME_TABLE_COLUMNS: Final = ("asset", "start_ts", "end_ts", "category", "loss")

_UTC: Final = pl.Datetime("us", "UTC")


def oee_frame(rows: Sequence[Sequence[Any]]) -> pl.DataFrame:
    """The frame of ``oee_minutes`` rows (:data:`OEE_TABLE_COLUMNS`) with the per-row ratios
    (availability = production / (60 - planned downtime - not scheduled), performance = ideal /
    production, quality = good / processed; null where the base is 0) and the asset's hourly
    performance (null below :data:`HOUR_PERFORMANCE_MIN_S` of production or
    :data:`HOUR_PERFORMANCE_MIN_CYCLES` ideal cycles)."""
    schema: dict[str, Any] = {"ts": _UTC, "asset": pl.Utf8}
    schema |= {c: pl.Float64 for c in _SECONDS}
    schema |= {"processed": pl.Int64, "defective": pl.Int64, "rework": pl.Int64}
    schema |= {"ideal_cycle_s": pl.Float64}
    f = pl.DataFrame([tuple(r) for r in rows], schema=schema, orient="row")
    pbt = 60.0 - pl.col("planned_downtime_s") - pl.col("not_scheduled_s")
    ideal = pl.col("ideal_cycle_s") * pl.col("processed")
    prod = pl.col("production_s")
    f = f.with_columns(
        seconds_sum=pl.sum_horizontal(*_SECONDS),
        availability=pl.when(pbt > 0).then(prod / pbt),
        performance=pl.when(prod > 0).then(ideal / prod),
        quality=pl.when(pl.col("processed") > 0).then(
            (pl.col("processed") - pl.col("defective")) / pl.col("processed")
        ),
        _ideal=ideal,
    )
    hour = f.group_by("asset").agg(
        _hp=pl.col("_ideal").sum() / pl.col("production_s").sum(),
        _hs=pl.col("production_s").sum(),
        _cycle=pl.col("ideal_cycle_s").max(),
        _known=pl.col("_ideal").is_not_null().all(),
    )
    judged = (
        (pl.col("_hs") >= HOUR_PERFORMANCE_MIN_S)
        & (pl.col("_hs") >= HOUR_PERFORMANCE_MIN_CYCLES * pl.col("_cycle"))
        & pl.col("_known")
    )
    return (
        f.join(hour, on="asset", how="left")
        .with_columns(hour_performance=pl.when(judged).then(pl.col("_hp")))
        .drop("_ideal", "_hp", "_hs", "_cycle", "_known")
    )


def downtime_frame(rows: Sequence[Sequence[Any]]) -> pl.DataFrame:
    """The frame of ``downtime_events`` rows (:data:`DOWNTIME_TABLE_COLUMNS`); ``ts`` is the
    start (the examples' time)."""
    schema: dict[str, Any] = {
        "asset": pl.Utf8,
        "start_ts": _UTC,
        "end_ts": _UTC,
        "category": pl.Utf8,
        "loss": pl.Utf8,
    }
    f = pl.DataFrame([tuple(r) for r in rows], schema=schema, orient="row")
    return f.with_columns(ts=pl.col("start_ts"))
