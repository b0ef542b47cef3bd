"""The plant model: one YAML file, validated into frozen pydantic models.

It is the plant's master data, read by the simulator (what to simulate) and by the pipelines
(assets, ideal cycle times, the shift calendar, stop reasons).

The file describes an ISA-95 equipment hierarchy (``enterprise/site/area/cell/asset``), how each
machine behaves (ideal cycle time, speed losses, MTBF/MTTR, minor stops, rejects, process
values, stop reason codes), the shift calendar, the ISA-88 master recipes and the materials with
their opening lots. Machines are described once per *kind* (``kinds:``) and referenced by the
assets, which may override any field of their kind. A packaging area declares ``lines: N`` and
one ``line_template``; the template is replicated ``N`` times (``line1`` ... ``lineN``), which is
how the plant scales from ~15 to hundreds of assets.

:func:`load_plant` reads and validates a file and raises :class:`PlantModelError` naming the
file, the field and what is wrong. :func:`default_plant` is the bundled oral-solid-dose plant
(``asbuilt/plant.yaml``).
"""

from __future__ import annotations

import fnmatch
import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from asbuilt.errors import ConfigError
from asbuilt.events import StateNumbering

__all__ = [
    "DEFAULT_PLANT",
    "MAX_ASSETS",
    "WEEKDAYS",
    "AreaModel",
    "AssetModel",
    "BreakModel",
    "BufferModel",
    "CalendarModel",
    "CalendarStatus",
    "FailureMode",
    "LineTemplate",
    "LotModel",
    "MaintenanceWindow",
    "MaterialModel",
    "MaterialUse",
    "MinorStops",
    "OperationModel",
    "PackagingOrder",
    "ParameterModel",
    "PhaseModel",
    "PlantModel",
    "PlantModelError",
    "ProcessCellModel",
    "ProductionLine",
    "RecipeModel",
    "ShiftModel",
    "SignalModel",
    "TransitionTimes",
    "UnitProcedureModel",
    "default_plant",
    "load_plant",
    "parse_plant",
]

DEFAULT_PLANT: Final = Path(__file__).with_name("plant.yaml")
MAX_ASSETS: Final = 5_000
"""A guard against a typo such as ``lines: 100000``; the simulator is sized for ~500 assets."""

WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_SEGMENT = r"[A-Za-z0-9_.-]+"
_SEGMENT_RE: Final = re.compile(rf"^{_SEGMENT}$")
_REASON_RE: Final = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
_SIGNAL_RE: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_RESERVED_VARIABLES: Final = frozenset(
    {
        "State",
        "UnitMode",
        "StopReason",
        "Blocked",
        "Starved",
        "ProcessedCount",
        "DefectiveCount",
        "ProcessedCountResettable",
        "MachDesignSpeed",
        "CurMachSpeed",
    }
)


class PlantModelError(ConfigError):
    """The plant model file is missing, not YAML, or breaks a rule (the message says where)."""


def _segment(value: str, what: str) -> str:
    if not _SEGMENT_RE.match(value):
        msg = (
            f"{what} {value!r} is not a valid ISA-95 path segment: "
            "use letters, digits, '_', '.' or '-' (no '/' or spaces)"
        )
        raise ValueError(msg)
    return value


def _parse_time(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        msg = (
            f"time {value!r} was read as a number (YAML reads 6:00 as 360): "
            "write times as quoted strings, e.g. '06:00'"
        )
        raise ValueError(msg)
    return value


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


Name = Annotated[str, Field(min_length=1, max_length=128)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Seconds = Annotated[float, Field(gt=0.0)]
ClockTime = Annotated[time, Field(description="local wall-clock time 'HH:MM'")]


# --- machine behaviour -------------------------------------------------------------------------


class SignalModel(_Frozen):
    """A process value: sampled every ``period_s`` as ``nominal`` + Gaussian noise."""

    name: Name
    unit: Annotated[str, Field(min_length=1, max_length=32)]
    nominal: float
    noise: Annotated[float, Field(ge=0.0)] = 0.0
    period_s: Annotated[int, Field(ge=1)] = 5
    idle: float | None = None  # value while the machine does not produce; None: nominal
    decimals: Annotated[int, Field(ge=0, le=9)] = 2
    uncertain_rate: Fraction = 0.002  # share of samples with quality "uncertain"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _SIGNAL_RE.match(value):
            msg = f"signal name {value!r} must start with a letter and hold only [A-Za-z0-9_]"
            raise ValueError(msg)
        if value in _RESERVED_VARIABLES:
            msg = f"signal name {value!r} is reserved for a PackML variable"
            raise ValueError(msg)
        return value


class FailureMode(_Frozen):
    """One way a machine breaks down: its reason code, weight and PackML response."""

    reason: Name
    weight: Annotated[float, Field(gt=0.0)] = 1.0
    response: Literal["hold", "abort", "stop"] = "abort"
    mttr_s: Seconds | None = None  # overrides the machine's mttr_s
    quality: Literal["good", "uncertain", "bad"] = "good"  # process values while it lasts


class MinorStops(_Frozen):
    """Short stops (Suspended): ``rate_per_h`` per hour of run time, durations in a range."""

    rate_per_h: Annotated[float, Field(ge=0.0)] = 0.0
    duration_s: tuple[Seconds, Seconds] = (10.0, 90.0)
    reasons: tuple[Name, ...] = ("500.10",)

    @model_validator(mode="after")
    def _check(self) -> MinorStops:
        if self.duration_s[0] > self.duration_s[1]:
            msg = f"duration_s {self.duration_s} is not a (low, high) range"
            raise ValueError(msg)
        if self.rate_per_h > 0 and not self.reasons:
            msg = "minor stops need at least one reason code"
            raise ValueError(msg)
        return self


class TransitionTimes(_Frozen):
    """Seconds spent in PackML acting states (and in Idle/Complete when passing through)."""

    starting: Annotated[int, Field(ge=0)] = 10
    resetting: Annotated[int, Field(ge=0)] = 5
    stopping: Annotated[int, Field(ge=0)] = 3
    aborting: Annotated[int, Field(ge=0)] = 2
    clearing: Annotated[int, Field(ge=0)] = 5
    holding: Annotated[int, Field(ge=0)] = 2
    unholding: Annotated[int, Field(ge=0)] = 3
    suspending: Annotated[int, Field(ge=0)] = 1
    unsuspending: Annotated[int, Field(ge=0)] = 1
    completing: Annotated[int, Field(ge=0)] = 5
    wait: Annotated[int, Field(ge=0)] = 2


class AssetModel(_Frozen):
    """One machine (work unit / work cell), fully resolved from its kind and its overrides."""

    name: Name
    kind: Name
    description: str = ""
    ideal_cycle_s: Seconds  # per count unit (per batch when counting == "batch")
    count_unit: Annotated[str, Field(min_length=1, max_length=32)] = "1"
    counting: Literal["unit", "batch"] = "unit"
    input_ratio: Annotated[int, Field(ge=1)] = 1  # upstream units consumed per unit (lines)
    speed_factor: tuple[Fraction, Fraction] = (0.8, 0.95)  # reduced-speed range
    reduced_speed_share: Fraction = 0.15  # share of run time below design speed
    speed_episode_s: Seconds = 900.0  # mean length of a reduced-speed episode
    mtbf_s: Seconds = 14_400.0  # mean run time between failures
    mttr_s: Seconds = 900.0  # mean time to repair
    failures: tuple[FailureMode, ...] = (FailureMode(reason="100.10"),)
    minor_stops: MinorStops = MinorStops()
    reject_rate: Fraction = 0.0
    startup_rejects: tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]] = (0, 0)
    changeover_s: Annotated[int, Field(ge=0)] = 0  # cleaning / changeover between batches
    signals: tuple[SignalModel, ...] = ()
    transitions: TransitionTimes = TransitionTimes()
    state_numbering: StateNumbering | None = None  # None: the plant's default
    counter_rollover: Annotated[int, Field(ge=1)] | None = None  # None: the plant's default

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _segment(value, "asset name")

    @model_validator(mode="after")
    def _check(self) -> AssetModel:
        if self.speed_factor[0] > self.speed_factor[1] or self.speed_factor[0] <= 0:
            msg = f"speed_factor {self.speed_factor} must be a range (low, high) in (0, 1]"
            raise ValueError(msg)
        if self.startup_rejects[0] > self.startup_rejects[1]:
            msg = f"startup_rejects {self.startup_rejects} is not a (low, high) range"
            raise ValueError(msg)
        if not self.failures:
            msg = "a machine needs at least one failure mode (set mtbf_s very high to avoid them)"
            raise ValueError(msg)
        names = [s.name for s in self.signals]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            msg = f"signal names {dupes} appear more than once"
            raise ValueError(msg)
        return self

    @property
    def design_speed_per_min(self) -> float:
        """Design speed in count units per minute (PackTags ``MachDesignSpeed``)."""
        return 60.0 / self.ideal_cycle_s


# --- equipment hierarchy -----------------------------------------------------------------------


class ProcessCellModel(_Frozen):
    """A process cell (ISA-88) whose units run batches from master recipes."""

    name: Name
    units: tuple[AssetModel, ...] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _segment(value, "process cell name")


class BufferModel(_Frozen):
    """An accumulation buffer between two cells of a line, in the upstream cell's units."""

    capacity: Annotated[int, Field(ge=1)]
    resume_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.3
    # a starved cell restarts once the buffer holds resume_fraction x capacity; a blocked one
    # once it has drained to (1 - resume_fraction) x capacity


class MaterialUse(_Frozen):
    """A material consumed or produced, in the material's unit."""

    material: Name
    quantity: Annotated[float, Field(gt=0.0)]
    yield_range: tuple[Fraction, Fraction] = (1.0, 1.0)  # produced: actual / nominal quantity


class PackagingOrder(_Frozen):
    """What one packaging order of a line consumes (the first entry feeds the first cell)."""

    id_prefix: Name = "PK"
    consumes: tuple[MaterialUse, ...] = Field(min_length=1)
    produces: Name  # the finished-goods material; quantity = good count of the last cell
    min_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 0.25
    # an order starts only once this fraction of the first material is in stock


class LineTemplate(_Frozen):
    """One packaging line: cells in material-flow order with a buffer between neighbours."""

    name_format: str = "line{n}"
    cells: tuple[AssetModel, ...] = Field(min_length=1)
    buffers: tuple[BufferModel, ...] = ()
    order: PackagingOrder

    @model_validator(mode="after")
    def _check(self) -> LineTemplate:
        if len(self.buffers) != len(self.cells) - 1:
            msg = (
                f"a line of {len(self.cells)} cells needs {len(self.cells) - 1} buffers "
                f"(one between each pair of neighbours), got {len(self.buffers)}"
            )
            raise ValueError(msg)
        if "{n}" not in self.name_format:
            msg = f"name_format {self.name_format!r} must contain '{{n}}'"
            raise ValueError(msg)
        return self


class AreaModel(_Frozen):
    """An ISA-95 area: process cells (batch) and/or ``lines`` copies of a line template."""

    name: Name
    process_cells: tuple[ProcessCellModel, ...] = ()
    lines: Annotated[int, Field(ge=0)] = 0
    line_template: LineTemplate | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _segment(value, "area name")

    @model_validator(mode="after")
    def _check(self) -> AreaModel:
        if self.lines and self.line_template is None:
            msg = f"lines: {self.lines} needs a line_template"
            raise ValueError(msg)
        if not self.lines and not self.process_cells:
            msg = "an area needs process_cells or lines"
            raise ValueError(msg)
        return self


# --- calendar ----------------------------------------------------------------------------------

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class BreakModel(_Frozen):
    start: ClockTime
    end: ClockTime

    @field_validator("start", "end", mode="before")
    @classmethod
    def _times(cls, value: object) -> object:
        return _parse_time(value)


class ShiftModel(_Frozen):
    """A shift starting on ``days`` at ``start`` (local); ``end <= start`` crosses midnight."""

    name: Name
    days: tuple[Weekday, ...] = Field(min_length=1)
    start: ClockTime
    end: ClockTime
    breaks: tuple[BreakModel, ...] = ()

    @field_validator("start", "end", mode="before")
    @classmethod
    def _times(cls, value: object) -> object:
        return _parse_time(value)

    def minutes(self) -> tuple[int, int]:
        """(start, length) in minutes; the length is in (0, 1440]."""
        s = self.start.hour * 60 + self.start.minute
        e = self.end.hour * 60 + self.end.minute
        return s, (e - s) % 1440 or 1440

    @model_validator(mode="after")
    def _check(self) -> ShiftModel:
        for t in (self.start, self.end, *(x for b in self.breaks for x in (b.start, b.end))):
            if t.second or t.microsecond:
                msg = f"time {t.isoformat()} of shift {self.name!r}: use whole minutes"
                raise ValueError(msg)
        s, length = self.minutes()
        spans = []
        for b in self.breaks:
            off = (b.start.hour * 60 + b.start.minute - s) % 1440
            blen = (b.end.hour * 60 + b.end.minute - b.start.hour * 60 - b.start.minute) % 1440
            if blen == 0 or off + blen > length:
                msg = (
                    f"break {b.start:%H:%M}-{b.end:%H:%M} is not inside shift {self.name!r} "
                    f"({self.start:%H:%M}-{self.end:%H:%M})"
                )
                raise ValueError(msg)
            spans.append((off, off + blen, b))
        spans.sort(key=lambda x: x[0])
        for (_, e1, b1), (s2, _, b2) in itertools.pairwise(spans):
            if s2 < e1:
                msg = (
                    f"breaks {b1.start:%H:%M}-{b1.end:%H:%M} and {b2.start:%H:%M}-{b2.end:%H:%M} "
                    f"of shift {self.name!r} overlap"
                )
                raise ValueError(msg)
        return self


class MaintenanceWindow(_Frozen):
    """Planned maintenance (unit mode Maintenance) for the assets matching ``assets`` (glob)."""

    assets: Name  # fnmatch pattern over asset paths, e.g. "acme/basel/packaging/line2/*"
    days: tuple[Weekday, ...] = Field(min_length=1)
    start: ClockTime
    end: ClockTime
    reason: Name = "400.10"

    @field_validator("start", "end", mode="before")
    @classmethod
    def _times(cls, value: object) -> object:
        return _parse_time(value)


@dataclass(frozen=True, slots=True)
class CalendarStatus:
    """The calendar at one instant: the shift instance (name, start) or None, and a break flag."""

    shift: str | None
    shift_start: datetime | None
    in_break: bool


class CalendarModel(_Frozen):
    """Shifts with breaks, in a time zone; outside every shift is no-shift time."""

    timezone: Name = "Europe/Zurich"
    shifts: tuple[ShiftModel, ...] = Field(min_length=1)
    maintenance: tuple[MaintenanceWindow, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            msg = f"unknown time zone {value!r} (use an IANA name such as 'Europe/Zurich')"
            raise ValueError(msg) from exc
        return value

    @model_validator(mode="after")
    def _no_overlap(self) -> CalendarModel:
        week = 7 * 1440
        spans: list[tuple[int, int, str]] = []
        for shift in self.shifts:
            s, length = shift.minutes()
            for day in shift.days:
                a = WEEKDAYS.index(day) * 1440 + s
                label = f"{shift.name!r} ({day} {shift.start:%H:%M}-{shift.end:%H:%M})"
                if a + length <= week:
                    spans.append((a, a + length, label))
                else:  # sunday night into monday morning
                    spans.append((a, week, label))
                    spans.append((0, a + length - week, label))
        spans.sort()
        for (_, e1, l1), (s2, _, l2) in itertools.pairwise(spans):
            if s2 < e1:
                msg = f"shifts {l1} and {l2} overlap"
                raise ValueError(msg)
        return self

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def _local(self, day: date, t: time) -> datetime:
        return datetime.combine(day, t, tzinfo=self.zone).astimezone(UTC)

    def shift_instances(self, day: date) -> Iterator[tuple[str, datetime, datetime, list[Any]]]:
        """Shifts starting on local ``day``: (name, start, end, [(break start, end)]), in UTC."""
        wd = WEEKDAYS[day.weekday()]
        for shift in self.shifts:
            if wd not in shift.days:
                continue
            s, length = shift.minutes()
            start = self._local(day, shift.start)
            end = self._local(day + timedelta(days=(s + length) // 1440), shift.end)
            breaks = []
            for b in shift.breaks:
                off = (b.start.hour * 60 + b.start.minute - s) % 1440
                blen = (b.end.hour * 60 + b.end.minute - b.start.hour * 60 - b.start.minute) % 1440
                bstart = self._local(day + timedelta(days=(s + off) // 1440), b.start)
                bend = self._local(day + timedelta(days=(s + off + blen) // 1440), b.end)
                breaks.append((bstart, bend))
            yield shift.name, start, end, breaks

    def status(self, at: datetime) -> CalendarStatus:
        """Which shift (if any) ``at`` falls in, and whether it is a break."""
        local_day = at.astimezone(self.zone).date()
        for offset in (-1, 0):
            for name, start, end, breaks in self.shift_instances(local_day + timedelta(offset)):
                if start <= at < end:
                    in_break = any(b0 <= at < b1 for b0, b1 in breaks)
                    return CalendarStatus(name, start, in_break)
        return CalendarStatus(None, None, False)

    def next_change(self, at: datetime) -> datetime:
        """The first shift or break boundary after ``at`` (at most 8 days ahead)."""
        local_day = at.astimezone(self.zone).date()
        best = at + timedelta(days=8)
        for offset in range(-1, 9):
            for _, start, end, breaks in self.shift_instances(local_day + timedelta(offset)):
                for t in (start, end, *(x for b in breaks for x in b)):
                    if at < t < best:
                        best = t
        return best

    def maintenance_windows(self, asset: str) -> tuple[MaintenanceWindow, ...]:
        return tuple(w for w in self.maintenance if fnmatch.fnmatchcase(asset, w.assets))

    def maintenance_status(
        self, windows: tuple[MaintenanceWindow, ...], at: datetime
    ) -> tuple[str | None, datetime]:
        """(reason of the window ``at`` is in or None, the next boundary after ``at``)."""
        local_day = at.astimezone(self.zone).date()
        reason: str | None = None
        best = at + timedelta(days=8)
        for offset in range(-1, 9):
            day = local_day + timedelta(offset)
            if not windows:
                break
            for w in windows:
                if WEEKDAYS[day.weekday()] not in w.days:
                    continue
                ws = w.start.hour * 60 + w.start.minute
                wlen = (w.end.hour * 60 + w.end.minute - ws) % 1440 or 1440
                start = self._local(day, w.start)
                end = self._local(day + timedelta(days=(ws + wlen) // 1440), w.end)
                if start <= at < end:
                    reason = w.reason
                for t in (start, end):
                    if at < t < best:
                        best = t
        return reason, best


# --- materials and recipes ---------------------------------------------------------------------


class LotModel(_Frozen):
    lot: Name
    quantity: Annotated[float, Field(gt=0.0)]


class MaterialModel(_Frozen):
    """An ISA-95 material definition with its opening lots.

    ``raw`` materials are received from suppliers: when their lots run out a new receipt lot
    of ``receipt_quantity`` appears (``<lot_prefix>-R0001`` ...). Other materials exist only as
    opening lots or as lots the plant produced.
    """

    name: Name
    kind: Literal["raw", "intermediate", "finished"]
    unit: Annotated[str, Field(min_length=1, max_length=32)]
    lots: tuple[LotModel, ...] = ()
    lot_prefix: Name | None = None
    receipt_quantity: Annotated[float, Field(gt=0.0)] | None = None

    @model_validator(mode="after")
    def _check(self) -> MaterialModel:
        if self.kind == "raw" and (self.lot_prefix is None or self.receipt_quantity is None):
            msg = f"raw material {self.name!r} needs lot_prefix and receipt_quantity"
            raise ValueError(msg)
        return self


class ParameterModel(_Frozen):
    """A phase parameter: set-point with its limits."""

    setpoint: float
    low: float
    high: float
    unit: Annotated[str, Field(min_length=1, max_length=32)] = "1"
    noise: Annotated[float, Field(ge=0.0)] = 0.0  # spread of the actual value

    @model_validator(mode="after")
    def _check(self) -> ParameterModel:
        if not self.low <= self.setpoint <= self.high:
            msg = f"set-point {self.setpoint} is outside its limits [{self.low}, {self.high}]"
            raise ValueError(msg)
        return self


class PhaseModel(_Frozen):
    """A recipe phase: runs ``duration_s`` at design speed, or until ``quantity`` is counted."""

    name: Name
    duration_s: Seconds | None = None
    quantity: Annotated[int, Field(ge=1)] | None = None
    parameters: Mapping[str, ParameterModel] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> PhaseModel:
        if (self.duration_s is None) == (self.quantity is None):
            msg = f"phase {self.name!r} needs exactly one of duration_s and quantity"
            raise ValueError(msg)
        return self


class OperationModel(_Frozen):
    name: Name
    phases: tuple[PhaseModel, ...] = Field(min_length=1)


class UnitProcedureModel(_Frozen):
    name: Name
    unit: Name  # an asset name of the recipe's process cell
    operations: tuple[OperationModel, ...] = Field(min_length=1)
    consumes: tuple[MaterialUse, ...] = ()
    produces: MaterialUse | None = None


class RecipeModel(_Frozen):
    """An ISA-88 master recipe (id + version) for one process cell."""

    id: Name
    version: Annotated[int, Field(ge=1)]
    procedure: Name
    cell: Name  # "<area>/<process cell>"
    batch_prefix: Name
    max_in_progress: Annotated[int, Field(ge=1)] = 1  # batches of this recipe at once
    max_stock: Annotated[float, Field(gt=0.0)] | None = None
    # no new batch while the stock of the last unit procedure's product is at least this
    unit_procedures: tuple[UnitProcedureModel, ...] = Field(min_length=1)


# --- the plant ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProductionLine:
    """One expanded packaging line: its path, cell assets (in flow order) and buffers."""

    path: str
    area: str
    name: str
    cells: tuple[AssetModel, ...]
    buffers: tuple[BufferModel, ...]
    order: PackagingOrder


def _merge_kinds(data: Any) -> Any:
    """Resolve ``kind:`` references: each asset is its kind's fields updated by its own."""
    if not isinstance(data, dict):
        return data
    kinds = data.get("kinds") or {}
    if not isinstance(kinds, dict):
        return data

    def resolve(asset: Any) -> Any:
        if not isinstance(asset, dict) or "kind" not in asset:
            return asset
        kind = asset["kind"]
        if kind not in kinds:
            msg = (
                f"asset {asset.get('name')!r}: unknown kind {kind!r} "
                f"(the kinds are {', '.join(sorted(map(str, kinds)))})"
            )
            raise ValueError(msg)
        base = kinds[kind]
        return {**base, **asset} if isinstance(base, dict) else asset

    areas = data.get("areas")
    if not isinstance(areas, list):
        return data
    new_areas = []
    for area in areas:
        if not isinstance(area, dict):
            new_areas.append(area)
            continue
        area = dict(area)
        cells = area.get("process_cells")
        if isinstance(cells, list):
            area["process_cells"] = [
                {**c, "units": [resolve(u) for u in c.get("units") or []]}
                if isinstance(c, dict)
                else c
                for c in cells
            ]
        template = area.get("line_template")
        if isinstance(template, dict) and isinstance(template.get("cells"), list):
            area["line_template"] = {**template, "cells": [resolve(c) for c in template["cells"]]}
        new_areas.append(area)
    return {**data, "areas": new_areas}


class PlantModel(_Frozen):
    """The whole plant. Build it with :func:`load_plant` / :func:`parse_plant`."""

    enterprise: Name
    site: Name
    seed: int = 0
    state_numbering: StateNumbering = "opcua"
    counter_rollover: Annotated[int, Field(ge=1)] = 65_535
    calendar: CalendarModel
    reasons: Mapping[str, str] = Field(min_length=1)
    kinds: Mapping[str, Any] = Field(default_factory=dict)  # raw templates, see _merge_kinds
    areas: tuple[AreaModel, ...] = Field(min_length=1)
    materials: tuple[MaterialModel, ...] = ()
    recipes: tuple[RecipeModel, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _expand(cls, data: Any) -> Any:
        return _merge_kinds(data)

    @field_validator("enterprise", "site")
    @classmethod
    def _names(cls, value: str) -> str:
        return _segment(value, "enterprise/site name")

    @field_validator("reasons")
    @classmethod
    def _reasons(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        for code in value:
            if not _REASON_RE.match(code):
                msg = f"reason code {code!r} is not hierarchical dotted form such as '100.20'"
                raise ValueError(msg)
            if "." in code and code.rsplit(".", 1)[0] not in value:
                msg = f"reason code {code!r} has no parent {code.rsplit('.', 1)[0]!r}"
                raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _check(self) -> PlantModel:
        assets = self.assets  # raises on duplicates / too many
        for path, asset in assets.items():
            codes = [f.reason for f in asset.failures] + list(asset.minor_stops.reasons)
            for code in codes:
                if code not in self.reasons:
                    msg = f"asset {path}: reason code {code!r} is not in reasons"
                    raise ValueError(msg)
        for window in self.calendar.maintenance:
            if not any(fnmatch.fnmatchcase(p, window.assets) for p in assets):
                msg = f"maintenance window {window.assets!r} matches no asset"
                raise ValueError(msg)
            if window.reason not in self.reasons:
                msg = f"maintenance window {window.assets!r}: unknown reason {window.reason!r}"
                raise ValueError(msg)
        self._check_materials()
        return self

    def _check_materials(self) -> None:
        materials = {m.name: m for m in self.materials}
        lots = [lot.lot for m in self.materials for lot in m.lots]
        dupes = sorted({x for x in lots if lots.count(x) > 1})
        if dupes:
            msg = f"lots {dupes} are declared more than once"
            raise ValueError(msg)

        def known(use: MaterialUse | str, where: str) -> None:
            name = use if isinstance(use, str) else use.material
            if name not in materials:
                msg = f"{where}: unknown material {name!r}"
                raise ValueError(msg)

        cells = {f"{a.name}/{c.name}": c for a in self.areas for c in a.process_cells}
        ids = [(r.id, r.version) for r in self.recipes]
        if len(set(ids)) != len(ids):
            msg = "two recipes share the same id and version"
            raise ValueError(msg)
        for recipe in self.recipes:
            where = f"recipe {recipe.id} v{recipe.version}"
            if recipe.cell not in cells:
                msg = f"{where}: unknown process cell {recipe.cell!r} (use '<area>/<cell>')"
                raise ValueError(msg)
            units = {u.name: u for u in cells[recipe.cell].units}
            for up in recipe.unit_procedures:
                if up.unit not in units:
                    msg = f"{where}, {up.name}: unit {up.unit!r} is not in {recipe.cell}"
                    raise ValueError(msg)
                for use in up.consumes:
                    known(use, f"{where}, {up.name}")
                if up.produces is not None:
                    known(up.produces, f"{where}, {up.name}")
                for op in up.operations:
                    for phase in op.phases:
                        if phase.quantity is not None and units[up.unit].counting != "unit":
                            msg = (
                                f"{where}, {up.name}, {phase.name}: a quantity phase needs a "
                                f"unit that counts units, {up.unit!r} counts batches"
                            )
                            raise ValueError(msg)
        for area in self.areas:
            if area.line_template is not None:
                for use in area.line_template.order.consumes:
                    known(use, f"area {area.name} line order")
                known(area.line_template.order.produces, f"area {area.name} line order")

    # --- derived views (cached: the model is frozen) ---

    @cached_property
    def lines_expanded(self) -> tuple[ProductionLine, ...]:
        """Every packaging line, replicated from its area's template."""
        out = []
        for area in self.areas:
            template = area.line_template
            if template is None:
                continue
            for n in range(1, area.lines + 1):
                name = _segment(template.name_format.format(n=n), "line name")
                out.append(
                    ProductionLine(
                        path=f"{self.enterprise}/{self.site}/{area.name}/{name}",
                        area=area.name,
                        name=name,
                        cells=template.cells,
                        buffers=template.buffers,
                        order=template.order,
                    )
                )
        return tuple(out)

    @cached_property
    def assets(self) -> Mapping[str, AssetModel]:
        """Every asset by ISA-95 path, in model order (process cells first, then lines)."""
        out: dict[str, AssetModel] = {}

        def add(path: str, asset: AssetModel) -> None:
            if path in out:
                msg = f"asset path {path} appears more than once"
                raise ValueError(msg)
            out[path] = asset

        for area in self.areas:
            for cell in area.process_cells:
                for unit in cell.units:
                    add(f"{self.enterprise}/{self.site}/{area.name}/{cell.name}/{unit.name}", unit)
        for line in self.lines_expanded:
            for asset in line.cells:
                add(f"{line.path}/{asset.name}", asset)
        if len(out) > MAX_ASSETS:
            msg = f"{len(out)} assets is more than the simulator's limit of {MAX_ASSETS}"
            raise ValueError(msg)
        return out

    def numbering(self, asset: str) -> StateNumbering:
        """The PackML state numbering ``asset`` exposes."""
        return self.assets[asset].state_numbering or self.state_numbering

    def rollover(self, asset: str) -> int:
        """The largest value of ``asset``'s resettable counter before it wraps to 0."""
        return self.assets[asset].counter_rollover or self.counter_rollover

    def with_lines(self, lines: int) -> PlantModel:
        """This model with every line template replicated ``lines`` times (validated)."""
        data = self.model_dump(mode="python")
        for area in data["areas"]:
            if area["line_template"] is not None:
                area["lines"] = lines
        return PlantModel.model_validate(data)


def _format_error(source: str, exc: ValidationError) -> str:
    lines = [f"{source}: the plant model is invalid ({exc.error_count()} problem(s))"]
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"  {loc}: {message}")
    return "\n".join(lines)


def parse_plant(text: str, source: str = "<string>") -> PlantModel:
    """Validate the YAML ``text`` of a plant model; :class:`PlantModelError` says what is wrong."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        msg = f"{source}: not valid YAML: {exc}"
        raise PlantModelError(msg) from exc
    if not isinstance(data, dict):
        msg = f"{source}: a plant model is a YAML mapping, got {type(data).__name__}"
        raise PlantModelError(msg)
    try:
        return PlantModel.model_validate(data)
    except ValidationError as exc:
        raise PlantModelError(_format_error(source, exc)) from exc


def load_plant(path: Path | str) -> PlantModel:
    """Read and validate a plant model file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"{p}: cannot read the plant model: {exc}"
        raise PlantModelError(msg) from exc
    return parse_plant(text, str(p))


def default_plant() -> PlantModel:
    """The bundled oral-solid-dose plant (``asbuilt/plant.yaml``)."""
    return load_plant(DEFAULT_PLANT)
