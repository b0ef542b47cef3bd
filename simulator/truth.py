"""Ground truth: what the simulated plant did, for tests to compare the pipelines against.

:class:`Truth` is filled by :class:`simulator.engine.Plant` as it advances: every state interval
per asset (they tile ``[start, end)`` with no gap or overlap; see below for the last one), the
units counted in each, the
final accumulator values, every lot movement (the genealogy edges), the raw and opening lots,
every batch transition, alarm and resettable-counter reset. ``write_jsonl`` / ``read_jsonl``
store it as one JSON object per line with a ``record`` field naming its type.

A unit counted at instant ``t`` belongs to the interval whose state holds at ``t`` (the state is
Execute in mode Produce); the last, still open interval ``[start, end)`` also owns the counts
made at ``end`` itself.

The plant simulates ``(start, end]``: the tick at ``end`` is part of the history, so a state
change at ``end`` itself is too. Its interval is the last one and is empty, ``[end, end)``, yet
it is kept: it holds the state the plant wrote at ``end`` (what a client of the plant saw last)
and the units counted at ``end``. Dropping it would lose both: the state writes would no longer
replay to the intervals and the intervals' counts would not add up to :attr:`Truth.counts`.
Every other interval is non-empty.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Final

__all__ = [
    "AlarmRecord",
    "BatchStep",
    "CounterReset",
    "LotMovement",
    "RawLot",
    "StateInterval",
    "Truth",
]


@dataclass(frozen=True, slots=True)
class StateInterval:
    """One asset in one (state, mode, stop reason, blocked, starved) over ``[start, end)``."""

    asset: str
    start: datetime
    end: datetime
    state: str
    mode: str
    stop_reason: str  # "" when none
    blocked: bool
    starved: bool
    processed: int  # units counted in the interval (defective included)
    defective: int

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True)
class LotMovement:
    """A material actual: a lot consumed or produced by a batch or packaging order."""

    ts: datetime
    asset: str
    direction: str  # "consumed" | "produced"
    lot: str
    material: str
    quantity: float
    unit: str
    batch_id: str


@dataclass(frozen=True, slots=True)
class RawLot:
    """A lot the plant did not make: an opening-stock lot or a supplier receipt."""

    ts: datetime
    lot: str
    material: str
    quantity: float
    unit: str
    origin: str  # "opening" | "receipt"


@dataclass(frozen=True, slots=True)
class BatchStep:
    """An ISA-88 transition of a procedure, unit procedure, operation or phase."""

    ts: datetime
    asset: str
    batch_id: str
    recipe_id: str
    recipe_version: str
    procedure: str
    unit_procedure: str | None
    operation: str | None
    phase: str | None
    transition: str


@dataclass(frozen=True, slots=True)
class AlarmRecord:
    ts: datetime
    asset: str
    alarm: str
    severity: int
    active: bool


@dataclass(frozen=True, slots=True)
class CounterReset:
    """``ProcessedCountResettable`` of ``asset`` went back to 0 at ``ts`` (shift start, demand)."""

    ts: datetime
    asset: str
    reason: str  # "shift" | "demand"


class OpenInterval:
    """The current, still growing interval of one asset (mutable; the engine counts into it)."""

    __slots__ = (
        "asset",
        "blocked",
        "defective",
        "mode",
        "processed",
        "start",
        "starved",
        "state",
        "stop_reason",
    )

    def __init__(
        self,
        asset: str,
        start: datetime,
        state: str,
        mode: str,
        stop_reason: str,
        blocked: bool,
        starved: bool,
    ) -> None:
        self.asset = asset
        self.start = start
        self.state = state
        self.mode = mode
        self.stop_reason = stop_reason
        self.blocked = blocked
        self.starved = starved
        self.processed = 0
        self.defective = 0

    def close(self, end: datetime) -> StateInterval:
        return StateInterval(
            asset=self.asset,
            start=self.start,
            end=end,
            state=self.state,
            mode=self.mode,
            stop_reason=self.stop_reason,
            blocked=self.blocked,
            starved=self.starved,
            processed=self.processed,
            defective=self.defective,
        )


_RECORDS: Final[Mapping[str, type[Any]]] = {
    "interval": StateInterval,
    "movement": LotMovement,
    "raw_lot": RawLot,
    "batch": BatchStep,
    "alarm": AlarmRecord,
    "counter_reset": CounterReset,
}
_DATETIME_FIELDS: Final = frozenset({"ts", "start", "end"})


@dataclass
class Truth:
    """What the simulator did between ``start`` and ``end``."""

    start: datetime
    end: datetime
    closed: list[StateInterval] = field(default_factory=list)
    movements: list[LotMovement] = field(default_factory=list)
    raw_lots: list[RawLot] = field(default_factory=list)
    batch_steps: list[BatchStep] = field(default_factory=list)
    alarms: list[AlarmRecord] = field(default_factory=list)
    counter_resets: list[CounterReset] = field(default_factory=list)
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Final accumulator values per asset: (ProcessedCount, DefectiveCount)."""
    open: dict[str, OpenInterval] = field(default_factory=dict)

    def intervals(self, asset: str | None = None) -> list[StateInterval]:
        """Every interval (the open ones end at ``end``), by asset then time.

        An open interval that starts at ``end`` (the state changed at the last tick) is kept,
        empty: see the module docstring.
        """
        out = [i for i in self.closed if asset is None or i.asset == asset]
        out.extend(o.close(self.end) for a, o in self.open.items() if asset is None or a == asset)
        out.sort(key=lambda i: (i.asset, i.start))
        return out

    def assets(self) -> list[str]:
        return sorted({i.asset for i in self.closed} | set(self.open) | set(self.counts))

    def produced_lots(self) -> set[str]:
        return {m.lot for m in self.movements if m.direction == "produced"}

    def lot_depths(self) -> dict[str, int]:
        """Genealogy depth of every lot: 0 for raw/opening lots, else 1 + deepest input lot.

        A produced lot's inputs are the lots consumed under the same ``batch_id``.
        """
        inputs: dict[str, set[str]] = defaultdict(set)
        outputs: dict[str, set[str]] = defaultdict(set)
        for m in self.movements:
            (inputs if m.direction == "consumed" else outputs)[m.batch_id].add(m.lot)
        parents: dict[str, set[str]] = defaultdict(set)
        for batch, lots in outputs.items():
            for lot in lots:
                parents[lot] |= inputs.get(batch, set()) - {lot}
        depth: dict[str, int] = {}

        def visit(lot: str, seen: frozenset[str]) -> int:
            if lot in depth:
                return depth[lot]
            ps = [p for p in parents.get(lot, ()) if p not in seen]
            d = 1 + max(visit(p, seen | {lot}) for p in ps) if ps else 0
            depth[lot] = d
            return d

        for lot in {m.lot for m in self.movements} | {r.lot for r in self.raw_lots}:
            visit(lot, frozenset())
        return depth

    # --- files ---

    def records(self) -> Iterable[dict[str, Any]]:
        yield {
            "record": "meta",
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
        }
        groups: list[tuple[str, Iterable[Any]]] = [
            ("interval", self.intervals()),
            ("movement", self.movements),
            ("raw_lot", self.raw_lots),
            ("batch", self.batch_steps),
            ("alarm", self.alarms),
            ("counter_reset", self.counter_resets),
        ]
        for name, items in groups:
            for item in items:
                row = asdict(item)
                for key in _DATETIME_FIELDS & row.keys():
                    row[key] = row[key].isoformat()
                yield {"record": name, **row}
        for asset, (processed, defective) in sorted(self.counts.items()):
            yield {
                "record": "count",
                "asset": asset,
                "processed": processed,
                "defective": defective,
            }

    def write_jsonl(self, path: Path | str) -> None:
        """Write the truth as JSON lines (the open intervals closed at ``end``)."""
        with Path(path).open("w", encoding="utf-8") as fh:
            for row in self.records():
                fh.write(json.dumps(row, separators=(",", ":")) + "\n")

    @classmethod
    def read_jsonl(cls, path: Path | str) -> Truth:
        """Read what :meth:`write_jsonl` wrote (every interval comes back closed)."""
        truth: Truth | None = None
        with Path(path).open(encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                kind = row.pop("record")
                if kind == "meta":
                    truth = cls(
                        start=datetime.fromisoformat(row["start"]),
                        end=datetime.fromisoformat(row["end"]),
                    )
                    continue
                if truth is None:
                    msg = f"{path}: the first line of a truth file is its meta record"
                    raise ValueError(msg)
                if kind == "count":
                    truth.counts[row["asset"]] = (row["processed"], row["defective"])
                    continue
                record_type = _RECORDS[kind]
                names = {f.name for f in fields(record_type)}
                for key in _DATETIME_FIELDS & names:
                    row[key] = datetime.fromisoformat(row[key])
                item = record_type(**row)
                lists: dict[str, list[Any]] = {
                    "interval": truth.closed,
                    "movement": truth.movements,
                    "raw_lot": truth.raw_lots,
                    "batch": truth.batch_steps,
                    "alarm": truth.alarms,
                    "counter_reset": truth.counter_resets,
                }
                lists[kind].append(item)
        if truth is None:
            msg = f"{path}: empty truth file"
            raise ValueError(msg)
        return truth
