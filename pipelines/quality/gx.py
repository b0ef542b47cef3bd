"""great-expectations at the boundary: suites as data, one validation per window, result rows.

This is the only module that imports ``great_expectations`` (~3-7 s to import, ~35 ms per
validation whatever the row count): import it once per process, validate whole windows, never
events. GX runs on pandas only, so a polars frame is converted with ``to_pandas()`` here and
nowhere else.

A :class:`Suite` is a name and a tuple of :class:`Check` (a stable snake_case name and a GX
expectation instance). :meth:`Validator.validate` runs the whole suite over one frame in ONE GX
validation (result format ``COMPLETE``, so GX returns the row index of every unexpected value)
and turns the outcome into :class:`DqResult` rows, the rows of ``dq_results``:

- one row per check with ``asset = ''`` (the whole window): success, element and unexpected
  counts, GX's observed value, up to :data:`MAX_EXAMPLES` examples;
- for each FAILED check, one row per asset among its unexpected rows (the asset's share of the
  count, its own examples), so a dashboard or an alert names the asset. A failed aggregate
  expectation (no row index, e.g. a column maximum) has only its ``''`` row.

An example is ``{"event_id", "asset", "ts", "value", "origin"}``, taken from those frame columns
when present; ``value`` is the value of the check's column (for a column pair: both values). An
expectation GX could not evaluate (a missing column, a type GX refuses) fails with the exception
message as observed value: a broken suite shows as failures, never as a crashed flow.
"""

from __future__ import annotations

import logging
import math
import threading
import warnings
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import great_expectations as gx
import polars as pl
from great_expectations.data_context.types.base import ProgressBarsConfig

logger = logging.getLogger(__name__)

# GX's pair expectations read tz-aware pandas columns with ``.values``, which pandas deprecates
# loudly; the values are UTC either way.
warnings.filterwarnings("ignore", message="Series.values returning an ndarray that drops")

__all__ = [
    "DQ_RESULT_COLUMNS",
    "MAX_EXAMPLES",
    "Check",
    "DqResult",
    "Suite",
    "Validator",
    "expectations",
    "jsonable",
    "validator",
]

expectations: Any = gx.expectations
"""``gx.expectations``: suites build their checks from it (so they need not import GX)."""

MAX_EXAMPLES: Final = 5
"""Examples kept per result row."""

DQ_RESULT_COLUMNS: Final[tuple[str, ...]] = (
    "window_start",
    "window_end",
    "suite",
    "expectation",
    "asset",
    "success",
    "element_count",
    "unexpected_count",
    "observed_value",
    "examples",
    "expectation_type",
    "kwargs",
    "validated_at",
)
"""The columns of ``dq_results`` in table order (= :class:`DqResult` field order)."""

_EXAMPLE_FIELDS: Final = ("event_id", "asset", "ts", "origin")


@dataclass(frozen=True)
class Check:
    """One named expectation: ``name`` is the ``expectation`` column (stable, snake_case)."""

    name: str
    expectation: Any  # a gx.expectations.Expectation instance


@dataclass(frozen=True)
class Suite:
    """A named set of checks: ``name`` is the ``suite`` column (``events.<kind>``,
    ``table.<name>``)."""

    name: str
    checks: tuple[Check, ...]


@dataclass(frozen=True)
class DqResult:
    """One ``dq_results`` row (fields in table order, :data:`DQ_RESULT_COLUMNS`)."""

    window_start: datetime
    window_end: datetime
    suite: str
    expectation: str
    asset: str
    success: bool
    element_count: int
    unexpected_count: int
    observed_value: Any
    examples: list[dict[str, Any]]
    expectation_type: str
    kwargs: dict[str, Any]
    validated_at: datetime

    def row(self) -> tuple[Any, ...]:
        """The values in :data:`DQ_RESULT_COLUMNS` order (jsonb columns still Python)."""
        return (
            self.window_start, self.window_end, self.suite, self.expectation, self.asset,
            self.success, self.element_count, self.unexpected_count, self.observed_value,
            self.examples, self.expectation_type, self.kwargs, self.validated_at,
        )  # fmt: skip


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: datetimes as ISO text, numpy/pandas scalars as Python,
    NaN/NaT/inf as None (jsonb has no such numbers)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date):
        try:
            return value.isoformat()
        except ValueError:  # pandas NaT
            return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalar
    if callable(item):
        try:
            return jsonable(item())
        except (TypeError, ValueError):
            pass
    iso = getattr(value, "isoformat", None)  # pandas Timestamp
    if callable(iso):
        try:
            return str(iso())
        except ValueError:
            return None
    if str(value) in ("NaT", "nan", "<NA>"):
        return None
    return str(value)


def _columns_of(kwargs: dict[str, Any]) -> tuple[str, ...]:
    if "column" in kwargs:
        return (str(kwargs["column"]),)
    if "column_A" in kwargs and "column_B" in kwargs:
        return (str(kwargs["column_A"]), str(kwargs["column_B"]))
    if "column_list" in kwargs:
        return tuple(str(c) for c in kwargs["column_list"])
    return ()


def _exception(info: Any) -> str | None:
    """The message of an exception GX caught while evaluating, if any. ``exception_info`` is
    one info dict, or (when a metric failed) a dict of them keyed by metric id."""
    if not isinstance(info, dict):
        return None
    if "raised_exception" in info:
        return str(info.get("exception_message")) if info.get("raised_exception") else None
    for sub in info.values():
        if isinstance(sub, dict) and sub.get("raised_exception"):
            return str(sub.get("exception_message"))
    return None


class _Compiled:
    """A suite registered in the context once: its validation definition and check names."""

    def __init__(self, validator: Validator, suite: Suite) -> None:
        names = [c.name for c in suite.checks]
        if len(set(names)) != len(names):
            msg = f"suite {suite.name!r} has two checks of the same name: {names}"
            raise ValueError(msg)
        # two suites of one name (different limits) may meet in a process: GX names are unique
        gx_name = f"{suite.name}#{len(validator._compiled)}"
        gx_suite = gx.ExpectationSuite(name=gx_name)
        for check in suite.checks:
            expectation = check.expectation.copy(deep=True)
            expectation.meta = {**(expectation.meta or {}), "check": check.name}
            gx_suite.add_expectation(expectation)
        gx_suite = validator.context.suites.add(gx_suite)
        self.definition = validator.context.validation_definitions.add(
            gx.ValidationDefinition(name=gx_name, data=validator.batch, suite=gx_suite)
        )
        self.order = {name: i for i, name in enumerate(names)}
        self.suite = suite  # keeps the id the cache uses alive


class Validator:
    """One ephemeral GX context, reused for every validation of the process.

    Suites are registered on first use and kept (by identity: build them once, as
    :mod:`pipelines.quality.suites` does). Not thread-safe beyond a lock around each
    validation; the flow validates on its single worker thread.
    """

    def __init__(self) -> None:
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = self.context.data_sources.add_pandas("asbuilt")
        asset = source.add_dataframe_asset("window")
        self.batch = asset.add_batch_definition_whole_dataframe("whole")
        self._compiled: dict[int, _Compiled] = {}
        self._lock = threading.Lock()

    def _compile(self, suite: Suite) -> _Compiled:
        compiled = self._compiled.get(id(suite))
        if compiled is None:
            compiled = self._compiled[id(suite)] = _Compiled(self, suite)
        return compiled

    def validate(
        self,
        suite: Suite,
        frame: pl.DataFrame,
        window: tuple[datetime, datetime],
        now: datetime,
    ) -> list[DqResult]:
        """Validate ``frame`` (one window) with ``suite``: the result rows, in the suite's check
        order, each check's ``''`` row followed by its per-asset rows (see the module doc)."""
        with self._lock:
            compiled = self._compile(suite)
            pdf = frame.to_pandas()
            outcome = compiled.definition.run(
                batch_parameters={"dataframe": pdf},
                result_format={"result_format": "COMPLETE"},
            )
        start, end = window
        assets = frame["asset"].to_list() if "asset" in frame.columns else None
        per_asset = Counter(assets) if assets is not None else Counter()
        fields = [f for f in _EXAMPLE_FIELDS if f in frame.columns]
        columns: dict[str, list[Any]] = {f: frame[f].to_list() for f in fields}
        out: list[tuple[int, list[DqResult]]] = []
        for res in outcome.results:
            config: Any = res.expectation_config
            name = str((config.meta or {}).get("check", config.type))
            kwargs = {k: jsonable(v) for k, v in config.kwargs.items() if k != "batch_id"}
            result = dict(res.result or {})
            success = bool(res.success)
            observed = result.get("observed_value")
            problem = _exception(res.exception_info)
            if problem is not None:
                success = False
                observed = {"exception": problem}
            element_count = int(result.get("element_count") or len(frame))
            unexpected = int(result.get("unexpected_count") or 0)
            indices = [int(i) for i in result.get("unexpected_index_list") or []]
            value_cols = [c for c in _columns_of(config.kwargs) if c in frame.columns]
            values = {c: frame[c] for c in value_cols}

            def example(i: int, value_cols: list[str] = value_cols, values: Any = values) -> Any:
                ex: dict[str, Any] = {f: jsonable(columns[f][i]) for f in fields}
                if len(value_cols) == 1:
                    ex["value"] = jsonable(values[value_cols[0]][i])
                elif value_cols:
                    ex["value"] = {c: jsonable(values[c][i]) for c in value_cols}
                return ex

            rows = [
                DqResult(
                    start, end, suite.name, name, "", success, element_count,
                    unexpected, jsonable(observed), [example(i) for i in indices[:MAX_EXAMPLES]],
                    config.type, kwargs, now,
                )
            ]  # fmt: skip
            if not success and assets is not None and indices:
                by_asset: dict[str, list[int]] = {}
                for i in indices:
                    by_asset.setdefault(str(assets[i] or ""), []).append(i)
                for asset, idx in sorted(by_asset.items()):
                    if not asset:
                        continue  # no asset known (an unparsable message): the '' row has it
                    rows.append(
                        DqResult(
                            start, end, suite.name, name, asset, False, per_asset[asset], len(idx),
                            None, [example(i) for i in idx[:MAX_EXAMPLES]], config.type,
                            kwargs, now,
                        )
                    )  # fmt: skip
            out.append((compiled.order.get(name, len(compiled.order)), rows))
        out.sort(key=lambda pair: pair[0])
        return [r for _, rows in out for r in rows]


_VALIDATOR: list[Validator] = []


def validator() -> Validator:
    """The process's one :class:`Validator` (created on first use)."""
    if not _VALIDATOR:
        _VALIDATOR.append(Validator())
    return _VALIDATOR[0]
