"""The plant's behaviour: a deterministic, discrete-time (1 s tick) simulation with no I/O.

:class:`Plant` turns a :class:`~asbuilt.plant.PlantModel`, its seed and a start instant into
what a real plant's OPC UA servers would say: :class:`Write` (a variable takes a new value) and
:class:`Occurrence` (an event: batch, material or alarm), stamped with simulated source time.
``advance(until)`` returns everything in ``(now, until]``; the output depends only on the model,
the seed and the start, never on how the time is chunked (every random draw comes from a
per-asset generator consumed in tick order).

Tick ``k`` is the instant ``start + k s``. At each tick every asset, in model order:

1. takes its PackML transitions (a timed sequence such as Holding → Held → Unholding, or a path
   to the state its situation asks for: shift, break, maintenance, work, starved, blocked);
2. writes the variables that changed;
3. if it is in Execute and mode Produce, makes units (fractional accumulation of
   speed / ideal cycle time), with rejects, and runs down its failure / minor-stop clocks;
4. samples its due process values.

Variables of every asset (OPC UA data type in brackets): ``State`` (PackML state name)
[String], ``UnitMode`` [String], ``StopReason`` ("" when none) [String], ``Blocked``,
``Starved`` [Boolean], ``ProcessedCount``, ``DefectiveCount`` (non-resetting accumulators),
``ProcessedCountResettable`` (reset at each shift start and on demand, wraps to 0 after the
model's rollover limit) [UInt32], ``MachDesignSpeed``, ``CurMachSpeed`` (count units/min)
[Double], and one [Double] per process value signal of the asset (with a quality).
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, TypeAlias

from asbuilt.events import MODE_MAINTENANCE, MODE_MANUAL, MODE_PRODUCE, PACKML_STATES
from asbuilt.plant import (
    AssetModel,
    CalendarStatus,
    FailureMode,
    MaintenanceWindow,
    MaterialModel,
    MaterialUse,
    PhaseModel,
    PlantModel,
    ProductionLine,
    RecipeModel,
    SignalModel,
    UnitProcedureModel,
)
from simulator.truth import (
    AlarmRecord,
    BatchStep,
    CounterReset,
    LotMovement,
    OpenInterval,
    RawLot,
    Truth,
)

__all__ = [
    "REASON_BLOCKED",
    "REASON_BREAK",
    "REASON_CHANGEOVER",
    "REASON_CLEANING",
    "REASON_NO_ORDER",
    "REASON_NO_SHIFT",
    "REASON_STARVED",
    "VARIABLES",
    "Occurrence",
    "Plant",
    "Quality",
    "VariableSpec",
    "Write",
]

Quality: TypeAlias = Literal["good", "uncertain", "bad"]
Value: TypeAlias = int | float | str | bool

TICK: Final = timedelta(seconds=1)

# Reason codes the engine itself sets (the model's `reasons` must hold them; the default does).
REASON_CHANGEOVER: Final = "300.10"
REASON_CLEANING: Final = "300.20"
REASON_STARVED: Final = "600.10"
REASON_BLOCKED: Final = "600.20"
REASON_BREAK: Final = "800.10"
REASON_NO_SHIFT: Final = "800.20"
REASON_NO_ORDER: Final = "800.30"
_ENGINE_REASONS: Final = (
    REASON_CHANGEOVER,
    REASON_CLEANING,
    REASON_STARVED,
    REASON_BLOCKED,
    REASON_BREAK,
    REASON_NO_SHIFT,
    REASON_NO_ORDER,
)

_SEVERITY: Final[Mapping[str, int]] = {"abort": 800, "stop": 600, "hold": 400}


@dataclass(frozen=True, slots=True)
class Write:
    """An OPC UA variable of ``asset`` takes ``value`` at ``ts`` (simulated time, UTC)."""

    ts: datetime
    asset: str
    variable: str
    value: Value
    quality: Quality = "good"


@dataclass(frozen=True, slots=True)
class Occurrence:
    """An OPC UA event of ``asset``: ``type`` is "batch", "material" or "alarm".

    Fields -- batch: batch_id, recipe_id, recipe_version, procedure, unit_procedure, operation,
    phase (None above their level), transition, parameters (set-points when started, actual
    values when completed, else None); material: direction, lot, material, quantity, unit,
    batch_id; alarm: alarm, severity, message, active, acked, reason.
    """

    ts: datetime
    asset: str
    type: str
    fields: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class VariableSpec:
    """A variable an asset exposes: its name, OPC UA data type and engineering unit."""

    name: str
    data_type: Literal["String", "Boolean", "UInt32", "Double"]
    unit: str | None = None
    description: str = ""


VARIABLES: Final[tuple[VariableSpec, ...]] = (
    VariableSpec("State", "String", None, "PackML state name (the server maps it to a number)"),
    VariableSpec("UnitMode", "String", None, "PackML unit mode name"),
    VariableSpec("StopReason", "String", None, 'hierarchical reason code, "" when none'),
    VariableSpec("Blocked", "Boolean", None, "downstream cannot take output"),
    VariableSpec("Starved", "Boolean", None, "upstream supplies no input"),
    VariableSpec("ProcessedCount", "UInt32", None, "non-resetting accumulator"),
    VariableSpec("DefectiveCount", "UInt32", None, "non-resetting accumulator"),
    VariableSpec(
        "ProcessedCountResettable", "UInt32", None, "resets at shift start, wraps at rollover"
    ),
    VariableSpec("MachDesignSpeed", "Double", None, "count units per minute"),
    VariableSpec("CurMachSpeed", "Double", None, "count units per minute, 0 when not producing"),
)
"""The variables every asset exposes, before its process value signals."""

Status: TypeAlias = tuple[str, str, str, bool, bool]  # state, mode, reason, blocked, starved
Segment: TypeAlias = tuple[str, str, str, bool, bool, int]  # ... + duration in ticks

# PackML paths between the steady states the engine rests in (acting states in between).
_PATHS: Final[Mapping[tuple[str, str], tuple[str, ...]]] = {
    ("Execute", "Stopped"): ("Stopping",),
    ("Execute", "Idle"): ("Completing", "Complete", "Resetting"),
    ("Execute", "Suspended"): ("Suspending",),
    ("Suspended", "Execute"): ("Unsuspending",),
    ("Suspended", "Stopped"): ("Stopping",),
    ("Suspended", "Idle"): ("Stopping", "Stopped", "Resetting"),
    ("Stopped", "Execute"): ("Resetting", "Idle", "Starting"),
    ("Stopped", "Idle"): ("Resetting",),
    ("Idle", "Execute"): ("Starting",),
    ("Idle", "Stopped"): ("Stopping",),
}
_STATE_VARIABLES: Final = ("State", "UnitMode", "StopReason", "Blocked", "Starved")
_REST_POINTS: Final = frozenset({"Complete", "Stopped", "Idle", "Resetting"})
_WAIT_STATES: Final = frozenset({"Complete", "Stopped", "Idle"})
_STARTUP_FROM: Final = frozenset({"Starting", "Unholding"})
assert set(PACKML_STATES) >= {s for path in _PATHS.values() for s in path}


def _ceil_ticks(delta: timedelta) -> int:
    return -(-delta // TICK)


# --- mutable simulation state ------------------------------------------------------------------


class _Signal:
    __slots__ = ("model", "next_k", "quality", "value")

    def __init__(self, model: SignalModel) -> None:
        self.model = model
        self.next_k = 0
        self.value: float = math.nan
        self.quality: Quality = "good"


class _Lot:
    __slots__ = ("lot", "material", "remaining")

    def __init__(self, lot: str, material: str, remaining: float) -> None:
        self.lot = lot
        self.material = material
        self.remaining = remaining


class _Batch:
    __slots__ = ("id", "recipe", "started", "up_index", "waiting")

    def __init__(self, batch_id: str, recipe: RecipeModel) -> None:
        self.id = batch_id
        self.recipe = recipe
        self.up_index = 0
        self.waiting = True
        self.started = False


class _Job:
    """A unit procedure of a batch running on a unit."""

    __slots__ = (
        "batch",
        "count",
        "good",
        "held",
        "op_i",
        "ph_i",
        "phase_started",
        "progress",
        "up",
    )

    def __init__(self, batch: _Batch, up: UnitProcedureModel) -> None:
        self.batch = batch
        self.up = up
        self.op_i = 0
        self.ph_i = 0
        self.progress = 0.0
        self.count = 0  # units counted in the current quantity phase
        self.good = 0  # good units counted in quantity phases of this unit procedure
        self.phase_started = False
        self.held = False

    @property
    def phase(self) -> PhaseModel:
        return self.up.operations[self.op_i].phases[self.ph_i]


class _Cell:
    __slots__ = ("batches", "counters", "path", "recipes", "units")

    def __init__(self, path: str) -> None:
        self.path = path
        self.units: dict[str, _Machine] = {}
        self.recipes: list[RecipeModel] = []
        self.batches: list[_Batch] = []
        self.counters: dict[str, int] = {}


class _Line:
    __slots__ = (
        "caps",
        "cells",
        "levels",
        "model",
        "order_good",
        "order_id",
        "order_left",
        "order_no",
        "orders",
        "resume_in",
        "resume_out",
    )

    def __init__(self, model: ProductionLine) -> None:
        self.model = model
        self.cells: list[_Machine] = []
        self.levels = [0] * len(model.buffers)
        self.caps = [b.capacity for b in model.buffers]
        self.resume_in = [b.resume_fraction * b.capacity for b in model.buffers]
        self.resume_out = [(1.0 - b.resume_fraction) * b.capacity for b in model.buffers]
        self.order_no: int | None = None
        self.order_id = ""
        self.order_left = 0
        self.order_good = 0
        self.orders = 0


class _Machine:
    __slots__ = (
        "blocked",
        "cell",
        "clean_left",
        "clean_reason",
        "cur",
        "defect_gap",
        "defective",
        "done_order",
        "e_defective",
        "e_processed",
        "e_resettable",
        "e_speed",
        "emitted",
        "failure",
        "index",
        "interval",
        "iv_status",
        "job",
        "land",
        "line",
        "maint_next",
        "maint_reason",
        "maint_windows",
        "mode",
        "model",
        "next_pv",
        "path",
        "pending",
        "pos",
        "processed",
        "progress",
        "pv_rng",
        "reason",
        "reset_requested",
        "resettable",
        "rng",
        "rollover",
        "run_fail",
        "run_minor",
        "seq",
        "seq_end",
        "seq_i",
        "signals",
        "speed",
        "speed_left",
        "speed_value",
        "startup_left",
        "starved",
        "state",
    )

    def __init__(self, path: str, model: AssetModel, index: int, seed: int, rollover: int) -> None:
        self.path = path
        self.model = model
        self.index = index
        self.rng = random.Random(f"{seed}/{path}/behaviour")  # noqa: S311 - a simulation
        self.pv_rng = random.Random(f"{seed}/{path}/signals")  # noqa: S311
        self.rollover = rollover
        self.state = "Idle"
        self.mode = MODE_PRODUCE
        self.reason = ""
        self.blocked = False
        self.starved = False
        self.seq: tuple[Segment, ...] = ()
        self.seq_i = 0
        self.seq_end = -1
        self.land: Status | None = None
        self.pending: str | None = None
        self.failure: FailureMode | None = None
        self.run_fail = 0.0
        self.run_minor = 0.0
        self.speed = 1.0
        self.speed_left = 0.0
        self.progress = 0.0
        self.processed = 0
        self.defective = 0
        self.resettable = 0
        self.reset_requested = False
        self.defect_gap = 0
        self.startup_left = 0
        self.signals = [_Signal(s) for s in model.signals]
        self.job: _Job | None = None
        self.clean_left = 0
        self.clean_reason = REASON_CLEANING
        self.cell: _Cell | None = None
        self.line: _Line | None = None
        self.pos = 0
        self.done_order = 0
        self.maint_windows: tuple[MaintenanceWindow, ...] = ()
        self.maint_reason: str | None = None
        self.maint_next = 0
        self.emitted: dict[str, Value] = {}
        self.interval: OpenInterval | None = None
        self.cur: Status = (self.state, self.mode, self.reason, self.blocked, self.starved)
        self.iv_status: Status = self.cur
        self.e_processed = 0
        self.e_defective = 0
        self.e_resettable = 0
        self.e_speed = 0.0
        self.speed_value = 0.0
        self.next_pv = 0

    @property
    def status(self) -> Status:
        return self.cur

    def set(self, status: Status) -> None:
        self.cur = status
        self.state, self.mode, self.reason, self.blocked, self.starved = status

    def set_speed(self, speed: float) -> None:
        self.speed = speed
        self.speed_value = round(self.model.design_speed_per_min * speed, 2)


class _Inventory:
    """Lots in stock per material, first in first out; raw materials are re-ordered on demand."""

    def __init__(self, materials: tuple[MaterialModel, ...], truth: Truth) -> None:
        self.materials = {m.name: m for m in materials}
        self.stock: dict[str, deque[_Lot]] = {m.name: deque() for m in materials}
        self.receipts: dict[str, int] = {m.name: 0 for m in materials}
        self.truth = truth
        for m in materials:
            for lot in m.lots:
                self.stock[m.name].append(_Lot(lot.lot, m.name, lot.quantity))
                truth.raw_lots.append(
                    RawLot(truth.start, lot.lot, m.name, lot.quantity, m.unit, "opening")
                )

    def available(self, material: str) -> float:
        return sum(lot.remaining for lot in self.stock[material])

    def can_take(self, material: str, quantity: float) -> bool:
        if self.materials[material].kind == "raw":
            return True
        return self.available(material) >= 0.95 * quantity

    def take(self, material: str, quantity: float, ts: datetime) -> list[tuple[str, float]]:
        """Take ``quantity`` FIFO; a lot left with a sliver (< 5 %) is taken whole."""
        model = self.materials[material]
        stock = self.stock[material]
        sliver = 0.05 * quantity
        need = quantity
        taken: list[tuple[str, float]] = []
        while need > sliver or (need > 0 and model.kind == "raw"):
            if not stock:
                if model.kind != "raw":
                    break
                assert model.lot_prefix is not None
                assert model.receipt_quantity is not None
                self.receipts[material] += 1
                lot_id = f"{model.lot_prefix}-R{self.receipts[material]:04d}"
                stock.append(_Lot(lot_id, material, model.receipt_quantity))
                self.truth.raw_lots.append(
                    RawLot(ts, lot_id, material, model.receipt_quantity, model.unit, "receipt")
                )
            lot = stock[0]
            portion = min(lot.remaining, need)
            if lot.remaining - portion < sliver and model.kind != "raw":
                portion = lot.remaining
            lot.remaining -= portion
            need -= portion
            if portion > 0:
                taken.append((lot.lot, portion))
            if lot.remaining <= 1e-9:
                stock.popleft()
        return taken

    def add(self, material: str, lot: str, quantity: float) -> None:
        self.stock[material].append(_Lot(lot, material, quantity))


# --- the plant ---------------------------------------------------------------------------------


class Plant:
    """The simulated plant from ``start`` (timezone-aware) on; see the module docstring."""

    def __init__(self, model: PlantModel, start: datetime) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            msg = f"start {start.isoformat()} is naive; give a timezone-aware datetime"
            raise ValueError(msg)
        missing = [r for r in _ENGINE_REASONS if r not in model.reasons]
        if missing:
            msg = f"the plant model's reasons lack the codes the engine sets: {missing}"
            raise ValueError(msg)
        self.model = model
        self.start = start.astimezone(UTC)
        self._k = 0
        self._now = self.start
        self.truth = Truth(start=self.start, end=self.start)
        self._inventory = _Inventory(model.materials, self.truth)
        self._machines: list[_Machine] = []
        self._by_path: dict[str, _Machine] = {}
        for i, (path, asset) in enumerate(model.assets.items()):
            m = _Machine(path, asset, i, model.seed, model.rollover(path))
            m.maint_windows = model.calendar.maintenance_windows(path)
            self._machines.append(m)
            self._by_path[path] = m
        self._cells: list[_Cell] = []
        cells_by_key: dict[str, _Cell] = {}
        for area in model.areas:
            for pc in area.process_cells:
                cell = _Cell(f"{model.enterprise}/{model.site}/{area.name}/{pc.name}")
                for unit in pc.units:
                    machine = self._by_path[f"{cell.path}/{unit.name}"]
                    machine.cell = cell
                    cell.units[unit.name] = machine
                cells_by_key[f"{area.name}/{pc.name}"] = cell
                self._cells.append(cell)
        for recipe in model.recipes:
            cells_by_key[recipe.cell].recipes.append(recipe)
        self._lines: list[_Line] = []
        for lm in model.lines_expanded:
            line = _Line(lm)
            for pos, asset in enumerate(lm.cells):
                machine = self._by_path[f"{lm.path}/{asset.name}"]
                machine.line = line
                machine.pos = pos
                machine.clean_reason = REASON_CHANGEOVER
                line.cells.append(machine)
            self._lines.append(line)
        self._cal = model.calendar.status(self.start)
        self._cal_next = _ceil_ticks(model.calendar.next_change(self.start) - self.start)
        self._initial: list[Write] = []
        for m in self._machines:
            self._init_machine(m)

    # --- public API ---

    @property
    def now(self) -> datetime:
        """The simulated instant everything up to which has been returned."""
        return self._now

    def assets(self) -> list[str]:
        """Every asset path, in model order."""
        return [m.path for m in self._machines]

    def variables(self, asset: str) -> list[VariableSpec]:
        """The variables ``asset`` exposes (the fixed ones, then its process values)."""
        model = self._by_path[asset].model
        signals = [VariableSpec(s.name, "Double", s.unit, "process value") for s in model.signals]
        return [*VARIABLES, *signals]

    def initial(self) -> list[Write]:
        """The value of every variable of every asset at ``start``."""
        return list(self._initial)

    def reset_counter(self, asset: str) -> None:
        """Reset ``asset``'s ProcessedCountResettable at the next tick (an operator's demand)."""
        self._by_path[asset].reset_requested = True

    def advance(self, until: datetime) -> list[Write | Occurrence]:
        """Simulate ``(now, until]``; return what happened, by time. ``now`` becomes ``until``."""
        if until.tzinfo is None or until.utcoffset() is None:
            msg = f"until {until.isoformat()} is naive; give a timezone-aware datetime"
            raise ValueError(msg)
        if until < self._now:
            msg = f"until {until.isoformat()} is before now {self._now.isoformat()}"
            raise ValueError(msg)
        last = (until - self.start) // TICK
        out: list[Write | Occurrence] = []
        for k in range(self._k + 1, last + 1):
            self._tick(k, out)
        self._k = max(self._k, last)
        self._now = until.astimezone(UTC)
        self.truth.end = self._now
        for m in self._machines:
            self.truth.counts[m.path] = (m.processed, m.defective)
        return out

    # --- set-up ---

    def _init_machine(self, m: _Machine) -> None:
        m.run_fail = self._draw_fail(m)
        m.run_minor = self._draw_minor(m)
        m.set_speed(1.0)
        m.speed_left = self._draw_speed_episode(m, reduced=False)
        m.defect_gap = self._draw_gap(m)
        self._update_maintenance(m, 0)
        status = self._rest_status(m)
        m.set(status)
        m.iv_status = status
        m.interval = OpenInterval(m.path, self.start, *status)
        self.truth.open[m.path] = m.interval
        ts = self.start
        design = round(m.model.design_speed_per_min, 3)
        values: list[tuple[str, Value]] = [
            ("State", m.state),
            ("UnitMode", m.mode),
            ("StopReason", m.reason),
            ("Blocked", m.blocked),
            ("Starved", m.starved),
            ("ProcessedCount", 0),
            ("DefectiveCount", 0),
            ("ProcessedCountResettable", 0),
            ("MachDesignSpeed", design),
            ("CurMachSpeed", 0.0),
        ]
        for name, value in values:
            m.emitted[name] = value
            self._initial.append(Write(ts, m.path, name, value))
        for s in m.signals:
            value, quality = self._sample(m, s)
            s.value, s.quality, s.next_k = value, quality, s.model.period_s
            self._initial.append(Write(ts, m.path, s.model.name, value, quality))
        m.next_pv = min((s.next_k for s in m.signals), default=1 << 62)

    def _rest_status(self, m: _Machine) -> Status:
        if m.maint_reason is not None:
            return ("Stopped", MODE_MAINTENANCE, m.maint_reason, False, False)
        if self._cal.shift is None:
            return ("Idle", MODE_PRODUCE, REASON_NO_SHIFT, False, False)
        if self._cal.in_break:
            return ("Stopped", MODE_PRODUCE, REASON_BREAK, False, False)
        return ("Idle", MODE_PRODUCE, REASON_NO_ORDER, False, False)

    # --- random draws (each from the asset's own generator) ---

    @staticmethod
    def _draw_fail(m: _Machine) -> float:
        return m.rng.expovariate(1.0 / m.model.mtbf_s)

    @staticmethod
    def _draw_minor(m: _Machine) -> float:
        rate = m.model.minor_stops.rate_per_h
        return m.rng.expovariate(rate / 3600.0) if rate > 0 else math.inf

    @staticmethod
    def _draw_speed_episode(m: _Machine, *, reduced: bool) -> float:
        share = m.model.reduced_speed_share
        mean = m.model.speed_episode_s
        if share <= 0:
            return math.inf if not reduced else 0.0
        if share >= 1:
            return math.inf if reduced else 0.0
        if not reduced:
            mean = mean * (1.0 - share) / share
        return m.rng.expovariate(1.0 / mean)

    @staticmethod
    def _draw_gap(m: _Machine) -> int:
        p = m.model.reject_rate
        if p <= 0:
            return 1 << 62
        if p >= 1:
            return 0
        return int(math.log(1.0 - m.rng.random()) / math.log(1.0 - p))

    @staticmethod
    def _draw_repair(m: _Machine, failure: FailureMode) -> int:
        mean = failure.mttr_s or m.model.mttr_s
        sigma = 0.5
        return max(1, round(m.rng.lognormvariate(math.log(mean) - sigma * sigma / 2, sigma)))

    # --- calendar ---

    def _update_calendar(self, k: int, ts: datetime) -> None:
        if k < self._cal_next:
            return
        cal = self.model.calendar
        old = self._cal
        self._cal = new = cal.status(ts)
        self._cal_next = _ceil_ticks(cal.next_change(ts) - self.start)
        if new.shift is not None and new.shift_start != old.shift_start:
            for m in self._machines:
                m.resettable = 0
                self.truth.counter_resets.append(CounterReset(ts, m.path, "shift"))

    def _update_maintenance(self, m: _Machine, k: int) -> None:
        if not m.maint_windows:
            m.maint_next = 1 << 62
            return
        at = self.start + k * TICK
        reason, nxt = self.model.calendar.maintenance_status(m.maint_windows, at)
        m.maint_reason = reason
        m.maint_next = _ceil_ticks(nxt - self.start)

    def _calendar_allows(self, m: _Machine) -> bool:
        cal: CalendarStatus = self._cal
        return cal.shift is not None and not cal.in_break and m.maint_reason is None

    # --- one tick ---

    def _tick(self, k: int, out: list[Write | Occurrence]) -> None:
        ts = self.start + k * TICK
        self._update_calendar(k, ts)
        for cell in self._cells:
            self._schedule_cell(cell, ts, out)
        for line in self._lines:
            self._line_step(line, ts, out)
        for m in self._machines:
            self._step(m, k, ts, out)

    def _step(self, m: _Machine, k: int, ts: datetime, out: list[Write | Occurrence]) -> None:
        if k >= m.maint_next:
            self._update_maintenance(m, k)
        prev_state = m.state
        # 1. transitions
        if m.seq_end >= 0 and k >= m.seq_end:
            self._next_segment(m, k, ts, out)
        if m.seq_end < 0:
            if m.pending is not None:
                self._begin_stop(m, k, ts, out)
            else:
                target = self._target(m)
                if target != m.status:
                    self._go(m, target, k, ts, out)
        # 2. state writes and truth
        status = m.cur
        if status is not m.iv_status and status != m.iv_status:
            iv = m.interval
            assert iv is not None
            m.iv_status = status
            self.truth.closed.append(iv.close(ts))
            m.interval = iv = OpenInterval(m.path, ts, *status)
            self.truth.open[m.path] = iv
            em = m.emitted
            values: tuple[Value, ...] = status
            for name, value in zip(_STATE_VARIABLES, values, strict=True):
                if em[name] != value:
                    em[name] = value
                    out.append(Write(ts, m.path, name, value))
            if prev_state != m.state:
                self._on_state_change(m, prev_state, ts, out)
        # 3. production
        producing = m.state == "Execute" and m.mode == MODE_PRODUCE
        if producing:
            self._produce(m, ts, out)
            m.run_fail -= 1.0
            m.run_minor -= 1.0
            m.speed_left -= 1.0
            if m.run_fail <= 0:
                m.pending = "failure"
            elif m.run_minor <= 0:
                m.pending = "minor"
                m.run_minor = self._draw_minor(m)
            if m.speed_left <= 0:
                if m.speed < 1.0:
                    m.set_speed(1.0)
                    m.speed_left = self._draw_speed_episode(m, reduced=False)
                else:
                    lo, hi = m.model.speed_factor
                    m.set_speed(m.rng.uniform(lo, hi))
                    m.speed_left = self._draw_speed_episode(m, reduced=True)
        elif m.state == "Execute" and m.clean_left > 0:
            m.clean_left -= 1
        if m.reset_requested:
            m.reset_requested = False
            m.resettable = 0
            self.truth.counter_resets.append(CounterReset(ts, m.path, "demand"))
        if m.e_processed != m.processed:
            m.e_processed = m.processed
            out.append(Write(ts, m.path, "ProcessedCount", m.processed))
        if m.e_defective != m.defective:
            m.e_defective = m.defective
            out.append(Write(ts, m.path, "DefectiveCount", m.defective))
        if m.e_resettable != m.resettable:
            m.e_resettable = m.resettable
            out.append(Write(ts, m.path, "ProcessedCountResettable", m.resettable))
        speed = m.speed_value if producing else 0.0
        if m.e_speed != speed:
            m.e_speed = speed
            out.append(Write(ts, m.path, "CurMachSpeed", speed))
        # 4. process values
        if k >= m.next_pv:
            nxt = 1 << 62
            for s in m.signals:
                if k >= s.next_k:
                    s.next_k = k + s.model.period_s
                    value, quality = self._sample(m, s)
                    if value != s.value or quality != s.quality:
                        s.value, s.quality = value, quality
                        out.append(Write(ts, m.path, s.model.name, value, quality))
                nxt = min(nxt, s.next_k)
            m.next_pv = nxt

    def _sample(self, m: _Machine, s: _Signal) -> tuple[float, Quality]:
        sm = s.model
        producing = m.state == "Execute" and m.mode == MODE_PRODUCE
        base = sm.nominal if producing or sm.idle is None else sm.idle
        value = round(base + m.pv_rng.gauss(0.0, sm.noise), sm.decimals) if sm.noise else base
        quality: Quality = "good"
        if m.failure is not None and m.failure.quality != "good":
            quality = m.failure.quality
        elif m.pv_rng.random() < sm.uncertain_rate:
            quality = "uncertain"
        return float(value), quality

    # --- PackML sequences ---

    def _next_segment(
        self, m: _Machine, k: int, ts: datetime, out: list[Write | Occurrence]
    ) -> None:
        while m.seq_i < len(m.seq):
            seg = m.seq[m.seq_i]
            m.seq_i += 1
            if seg[5] > 0:
                m.set(seg[:5])
                m.seq_end = k + seg[5]
                return
        assert m.land is not None
        m.set(m.land)
        m.seq, m.seq_i, m.seq_end, m.land = (), 0, -1, None
        if m.failure is not None:
            self._alarm(m, m.failure, ts, out, active=False)
            m.failure = None

    def _begin(
        self,
        m: _Machine,
        segs: list[Segment],
        land: Status,
        k: int,
        ts: datetime,
        out: list[Write | Occurrence],
    ) -> None:
        m.seq, m.seq_i, m.land = tuple(segs), 0, land
        self._next_segment(m, k, ts, out)

    def _begin_stop(self, m: _Machine, k: int, ts: datetime, out: list[Write | Occurrence]) -> None:
        kind, m.pending = m.pending, None
        tt = m.model.transitions
        mode = m.mode
        if kind == "minor":
            ms = m.model.minor_stops
            reason = ms.reasons[m.rng.randrange(len(ms.reasons))]
            duration = max(1, round(m.rng.uniform(*ms.duration_s)))
            segs: list[Segment] = [
                ("Suspending", mode, reason, False, False, tt.suspending),
                ("Suspended", mode, reason, False, False, duration),
                ("Unsuspending", mode, reason, False, False, tt.unsuspending),
            ]
            self._begin(m, segs, ("Execute", mode, "", False, False), k, ts, out)
            return
        failures = m.model.failures
        fm = m.rng.choices(failures, weights=[f.weight for f in failures])[0]
        repair = self._draw_repair(m, fm)
        m.run_fail = self._draw_fail(m)
        r = fm.reason
        if fm.response == "hold":
            segs = [
                ("Holding", mode, r, False, False, tt.holding),
                ("Held", mode, r, False, False, repair),
                ("Unholding", mode, r, False, False, tt.unholding),
            ]
            land: Status = ("Execute", mode, "", False, False)
        elif fm.response == "abort":
            segs = [
                ("Aborting", mode, r, False, False, tt.aborting),
                ("Aborted", mode, r, False, False, repair),
                ("Clearing", mode, r, False, False, tt.clearing),
            ]
            land = ("Stopped", mode, r, False, False)
        else:
            segs = [
                ("Stopping", mode, r, False, False, tt.stopping),
                ("Stopped", mode, r, False, False, repair),
            ]
            land = ("Stopped", mode, r, False, False)
        m.failure = fm
        self._alarm(m, fm, ts, out, active=True)
        self._begin(m, segs, land, k, ts, out)

    def _go(
        self, m: _Machine, target: Status, k: int, ts: datetime, out: list[Write | Occurrence]
    ) -> None:
        state, mode = m.state, m.mode
        t_state, t_mode, t_reason, t_blocked, t_starved = target
        if state == t_state and (state != "Execute" or mode == t_mode):
            m.set(target)
            return
        if t_state == "Execute" and mode != t_mode and state in ("Execute", "Suspended"):
            names = (*_PATHS[(state, "Idle")], "Idle", "Starting")
        else:
            names = _PATHS[(state, t_state)]
        tt = m.model.transitions
        # The acting states carry the cause: the target's reason, or the latched one on the way
        # back to Execute; setup work (Manual) keeps its reason until the machine comes to rest.
        reason = m.reason if t_state == "Execute" and not t_reason else t_reason
        seg_reason = m.reason if mode != MODE_PRODUCE and m.reason else reason
        segs: list[Segment] = []
        seg_mode = t_mode if state in _REST_POINTS else mode  # modes change at rest
        for name in names:
            if name in _REST_POINTS:
                seg_mode, seg_reason = t_mode, reason
            duration = tt.wait if name in _WAIT_STATES else getattr(tt, name.lower())
            flagged = name == "Suspending"
            segs.append(
                (
                    name,
                    seg_mode,
                    seg_reason,
                    t_blocked and flagged,
                    t_starved and flagged,
                    duration,
                )
            )
        self._begin(m, segs, target, k, ts, out)

    def _target(self, m: _Machine) -> Status:
        if m.maint_reason is not None:
            return ("Stopped", MODE_MAINTENANCE, m.maint_reason, False, False)
        cal = self._cal
        if cal.shift is None:
            return ("Idle", MODE_PRODUCE, REASON_NO_SHIFT, False, False)
        if cal.in_break:
            return ("Stopped", MODE_PRODUCE, REASON_BREAK, False, False)
        if m.clean_left > 0:
            return ("Execute", MODE_MANUAL, m.clean_reason, False, False)
        line = m.line
        if line is None:
            if m.job is None:
                return ("Idle", MODE_PRODUCE, REASON_NO_ORDER, False, False)
            return ("Execute", MODE_PRODUCE, "", False, False)
        if line.order_no is None or m.done_order >= line.order_no:
            return ("Idle", MODE_PRODUCE, REASON_NO_ORDER, False, False)
        i = m.pos
        starved = False
        if i > 0:
            level = line.levels[i - 1]
            need = m.model.input_ratio
            if m.starved:
                up_done = line.cells[i - 1].done_order >= line.order_no
                starved = level < need or (level < line.resume_in[i - 1] and not up_done)
            else:
                starved = level < need
        blocked = False
        if i < len(line.levels):
            out_level = line.levels[i]
            blocked = out_level > line.resume_out[i] if m.blocked else out_level >= line.caps[i]
        if starved or blocked:
            reason = REASON_STARVED if starved else REASON_BLOCKED
            state = "Suspended" if m.state in ("Execute", "Suspended") else "Idle"
            return (state, MODE_PRODUCE, reason, blocked, starved)
        return ("Execute", MODE_PRODUCE, "", False, False)

    def _on_state_change(
        self, m: _Machine, prev: str, ts: datetime, out: list[Write | Occurrence]
    ) -> None:
        if m.state == "Execute" and prev in _STARTUP_FROM and m.mode == MODE_PRODUCE:
            lo, hi = m.model.startup_rejects
            if hi > 0:
                m.startup_left = m.rng.randint(lo, hi)
        job = m.job
        if job is not None and prev == "Execute" and job.phase_started and not job.held:
            job.held = True
            self._batch_event(m, job, ts, out, "held", level="phase")

    def _alarm(
        self,
        m: _Machine,
        fm: FailureMode,
        ts: datetime,
        out: list[Write | Occurrence],
        *,
        active: bool,
    ) -> None:
        text = self.model.reasons.get(fm.reason, fm.reason)
        severity = _SEVERITY[fm.response]
        name = f"{m.model.name}.{fm.reason}"
        message = f"{text} ({fm.reason}) on {m.path}" + ("" if active else ": cleared")
        out.append(
            Occurrence(
                ts,
                m.path,
                "alarm",
                {
                    "alarm": name,
                    "severity": severity,
                    "message": message,
                    "active": active,
                    "acked": not active,
                    "reason": fm.reason,
                },
            )
        )
        self.truth.alarms.append(AlarmRecord(ts, m.path, name, severity, active))

    # --- production ---

    def _make_units(self, m: _Machine, limit: int) -> tuple[int, int]:
        m.progress += m.speed / m.model.ideal_cycle_s
        n = int(m.progress)
        if n > limit:
            n = max(limit, 0)
            m.progress = min(m.progress - n, 1.0)
        else:
            m.progress -= n
        if n <= 0:
            return 0, 0
        d = 0
        rest = n
        if m.startup_left:
            s = min(n, m.startup_left)
            m.startup_left -= s
            d += s
            rest -= s
        if rest and m.model.reject_rate > 0:
            while rest > m.defect_gap:
                rest -= m.defect_gap + 1
                d += 1
                m.defect_gap = self._draw_gap(m)
            m.defect_gap -= rest
        self._count(m, n, d)
        return n, d

    def _count(self, m: _Machine, n: int, d: int) -> None:
        m.processed += n
        m.defective += d
        m.resettable = (m.resettable + n) % (m.rollover + 1)
        iv = m.interval
        assert iv is not None
        iv.processed += n
        iv.defective += d

    def _produce(self, m: _Machine, ts: datetime, out: list[Write | Occurrence]) -> None:
        line = m.line
        if line is not None:
            i = m.pos
            ratio = m.model.input_ratio
            limit = (line.order_left if i == 0 else line.levels[i - 1]) // ratio
            if i < len(line.levels):
                limit = min(limit, line.caps[i] - line.levels[i])
            n, d = self._make_units(m, limit)
            if n:
                if i == 0:
                    line.order_left -= n * ratio
                else:
                    line.levels[i - 1] -= n * ratio
                if i < len(line.levels):
                    line.levels[i] += n - d
                else:
                    line.order_good += n - d
            return
        job = m.job
        if job is not None:
            self._run_phase(m, job, ts, out)

    # --- batches (process cells) ---

    def _batch_event(
        self,
        m: _Machine,
        job: _Job,
        ts: datetime,
        out: list[Write | Occurrence],
        transition: str,
        *,
        level: str,
        parameters: Mapping[str, float | str] | None = None,
    ) -> None:
        batch = job.batch
        recipe = batch.recipe
        up = job.up.name if level in ("unit_procedure", "operation", "phase") else None
        op = job.up.operations[job.op_i].name if level in ("operation", "phase") else None
        phase = job.phase.name if level == "phase" else None
        fields: dict[str, object] = {
            "batch_id": batch.id,
            "recipe_id": recipe.id,
            "recipe_version": str(recipe.version),
            "procedure": recipe.procedure,
            "unit_procedure": up,
            "operation": op,
            "phase": phase,
            "transition": transition,
            "parameters": dict(parameters) if parameters is not None else None,
        }
        out.append(Occurrence(ts, m.path, "batch", fields))
        self.truth.batch_steps.append(
            BatchStep(
                ts,
                m.path,
                batch.id,
                recipe.id,
                str(recipe.version),
                recipe.procedure,
                up,
                op,
                phase,
                transition,
            )
        )

    def _material(
        self,
        m: _Machine,
        ts: datetime,
        out: list[Write | Occurrence],
        direction: str,
        lot: str,
        material: str,
        quantity: float,
        batch_id: str,
    ) -> None:
        unit = self._inventory.materials[material].unit
        q = round(quantity, 3)
        if q <= 0:
            return
        out.append(
            Occurrence(
                ts,
                m.path,
                "material",
                {
                    "direction": direction,
                    "lot": lot,
                    "material": material,
                    "quantity": q,
                    "unit": unit,
                    "batch_id": batch_id,
                },
            )
        )
        self.truth.movements.append(
            LotMovement(ts, m.path, direction, lot, material, q, unit, batch_id)
        )

    def _consume(
        self,
        m: _Machine,
        uses: tuple[MaterialUse, ...],
        scale: float,
        ts: datetime,
        out: list[Write | Occurrence],
        batch_id: str,
    ) -> None:
        for use in uses:
            for lot, q in self._inventory.take(use.material, use.quantity * scale, ts):
                self._material(m, ts, out, "consumed", lot, use.material, q, batch_id)

    def _unit_free(self, m: _Machine) -> bool:
        return m.job is None and m.clean_left == 0 and m.seq_end < 0 and self._calendar_allows(m)

    def _schedule_cell(self, cell: _Cell, ts: datetime, out: list[Write | Occurrence]) -> None:
        inv = self._inventory
        for batch in cell.batches:
            if not batch.waiting:
                continue
            up = batch.recipe.unit_procedures[batch.up_index]
            unit = cell.units[up.unit]
            if self._unit_free(unit) and all(
                inv.can_take(u.material, u.quantity) for u in up.consumes
            ):
                self._assign(unit, batch, up, ts, out)
        for recipe in cell.recipes:
            active = sum(1 for b in cell.batches if b.recipe is recipe)
            if active >= recipe.max_in_progress:
                continue
            last = recipe.unit_procedures[-1].produces
            if (
                recipe.max_stock is not None
                and last is not None
                and inv.available(last.material) >= recipe.max_stock
            ):
                continue
            up = recipe.unit_procedures[0]
            unit = cell.units[up.unit]
            if not self._unit_free(unit):
                continue
            if not all(inv.can_take(u.material, u.quantity) for u in up.consumes):
                continue
            n = cell.counters.get(recipe.id, 0) + 1
            cell.counters[recipe.id] = n
            batch = _Batch(f"{recipe.batch_prefix}-{n:05d}", recipe)
            cell.batches.append(batch)
            self._assign(unit, batch, up, ts, out)

    def _assign(
        self,
        unit: _Machine,
        batch: _Batch,
        up: UnitProcedureModel,
        ts: datetime,
        out: list[Write | Occurrence],
    ) -> None:
        batch.waiting = False
        unit.job = _Job(batch, up)
        self._consume(unit, up.consumes, 1.0, ts, out, batch.id)

    def _run_phase(
        self, m: _Machine, job: _Job, ts: datetime, out: list[Write | Occurrence]
    ) -> None:
        phase = job.phase
        if not job.phase_started:
            job.phase_started = True
            if job.op_i == 0 and job.ph_i == 0:
                if not job.batch.started:
                    job.batch.started = True
                    self._batch_event(m, job, ts, out, "started", level="procedure")
                self._batch_event(m, job, ts, out, "started", level="unit_procedure")
            if job.ph_i == 0:
                self._batch_event(m, job, ts, out, "started", level="operation")
            setpoints = {name: p.setpoint for name, p in phase.parameters.items()}
            self._batch_event(m, job, ts, out, "started", level="phase", parameters=setpoints)
        elif job.held:
            job.held = False
            self._batch_event(m, job, ts, out, "restarted", level="phase")
        if phase.quantity is not None:
            n, d = self._make_units(m, phase.quantity - job.count)
            job.count += n
            job.good += n - d
            done = job.count >= phase.quantity
        else:
            job.progress += m.speed
            done = job.progress >= (phase.duration_s or 0.0)
        if done:
            self._complete_phase(m, job, ts, out)

    def _complete_phase(
        self, m: _Machine, job: _Job, ts: datetime, out: list[Write | Occurrence]
    ) -> None:
        phase = job.phase
        actuals = {
            name: round(
                min(max(p.setpoint + m.rng.gauss(0.0, p.noise), p.low), p.high)
                if p.noise
                else p.setpoint,
                3,
            )
            for name, p in phase.parameters.items()
        }
        self._batch_event(m, job, ts, out, "completed", level="phase", parameters=actuals)
        op = job.up.operations[job.op_i]
        job.progress, job.count, job.phase_started, job.held = 0.0, 0, False, False
        if job.ph_i + 1 < len(op.phases):
            job.ph_i += 1
            return
        self._batch_event(m, job, ts, out, "completed", level="operation")
        if job.op_i + 1 < len(job.up.operations):
            job.op_i += 1
            job.ph_i = 0
            return
        self._complete_unit_procedure(m, job, ts, out)

    def _complete_unit_procedure(
        self, m: _Machine, job: _Job, ts: datetime, out: list[Write | Occurrence]
    ) -> None:
        batch = job.batch
        self._batch_event(m, job, ts, out, "completed", level="unit_procedure")
        produces = job.up.produces
        if produces is not None:
            has_quantity = any(p.quantity is not None for o in job.up.operations for p in o.phases)
            if has_quantity:
                quantity = float(job.good)
            else:
                quantity = produces.quantity * m.rng.uniform(*produces.yield_range)
            quantity = round(quantity, 3)
            if quantity > 0:
                self._material(
                    m, ts, out, "produced", batch.id, produces.material, quantity, batch.id
                )
                self._inventory.add(produces.material, batch.id, quantity)
        if m.model.counting == "batch":
            self._count(m, 1, 1 if m.rng.random() < m.model.reject_rate else 0)
        m.job = None
        m.clean_left = m.model.changeover_s
        batch.up_index += 1
        if batch.up_index >= len(batch.recipe.unit_procedures):
            self._batch_event(m, job, ts, out, "completed", level="procedure")
            assert m.cell is not None
            m.cell.batches.remove(batch)
        else:
            batch.waiting = True

    # --- packaging lines ---

    def _line_step(self, line: _Line, ts: datetime, out: list[Write | Occurrence]) -> None:
        cells = line.cells
        if line.order_no is not None:
            order_no = line.order_no
            for i, c in enumerate(cells):
                if c.done_order >= order_no:
                    continue
                if i == 0:
                    drained = line.order_left < c.model.input_ratio
                else:
                    drained = (
                        cells[i - 1].done_order >= order_no
                        and line.levels[i - 1] < c.model.input_ratio
                    )
                if not drained:
                    break
                c.done_order = order_no
                if i > 0:
                    line.levels[i - 1] = 0  # line clearance: leftovers are reconciled
                c.clean_left = c.model.changeover_s
                if i == len(cells) - 1:
                    material = line.model.order.produces
                    if line.order_good > 0:
                        self._material(
                            c,
                            ts,
                            out,
                            "produced",
                            line.order_id,
                            material,
                            float(line.order_good),
                            line.order_id,
                        )
                        self._inventory.add(material, line.order_id, float(line.order_good))
                    line.order_no = None
        first = cells[0]
        if line.order_no is None and first.clean_left == 0 and self._calendar_allows(first):
            order = line.model.order
            primary = order.consumes[0]
            inv = self._inventory
            available = inv.available(primary.material)
            raw = inv.materials[primary.material].kind == "raw"
            if not raw and available < order.min_fraction * primary.quantity:
                return
            quantity = primary.quantity if raw else min(primary.quantity, available)
            line.orders += 1
            line.order_no = line.orders
            line.order_id = f"{order.id_prefix}-{line.model.name}-{line.orders:05d}"
            line.order_good = 0
            taken = inv.take(primary.material, quantity, ts)
            total = 0.0
            for lot, q in taken:
                total += q
                self._material(first, ts, out, "consumed", lot, primary.material, q, line.order_id)
            line.order_left = int(total)
            self._consume(
                first, order.consumes[1:], total / primary.quantity, ts, out, line.order_id
            )
