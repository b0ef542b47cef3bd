"""The types of the accounting core: time categories, classified segments and minute rows.

Every second of an asset's time is in exactly one :data:`Category`. The ISO 22400-2 time
elements are sums of categories (:data:`ISO_ELEMENTS`):

============  =====================================================================
element       categories
============  =====================================================================
APT           production
AUST          setup
ADET          breakdown, minor_stop
ADOT          external, idle, unknown
PBT           APT + AUST + ADET + ADOT
planned down  planned_downtime
not scheduled not_scheduled
============  =====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, TypeAlias, get_args

Category: TypeAlias = Literal[
    "production",  # value-adding: Execute in Produce                         (APT)
    "setup",  # setup, changeover, cleaning, adjustment                       (AUST)
    "breakdown",  # equipment failure, unplanned stop                         (ADET)
    "minor_stop",  # short stop, jam cleared by the operator                  (ADET)
    "external",  # starved or blocked by a neighbour                          (ADOT)
    "idle",  # available but not running: no order, waiting                  (ADOT)
    "unknown",  # no data, or a state the mapping does not know               (ADOT)
    "planned_downtime",  # planned maintenance, breaks                        (outside PBT)
    "not_scheduled",  # no shift                                              (outside PBT)
]
CATEGORIES: Final[tuple[Category, ...]] = get_args(Category)

ISO_ELEMENTS: Final[dict[str, tuple[Category, ...]]] = {
    "apt": ("production",),
    "aust": ("setup",),
    "adet": ("breakdown", "minor_stop"),
    "adot": ("external", "idle", "unknown"),
    "planned_downtime": ("planned_downtime",),
    "not_scheduled": ("not_scheduled",),
}

WINDOW_S: Final = 60
"""The OEE window: one minute, aligned to the minute in UTC."""


@dataclass(frozen=True, slots=True)
class Segment:
    """One asset over ``[start, end)`` in one category, with the state that put it there.

    ``end`` is None while the segment is still open (the asset is in it now). ``shift`` is the
    name of the shift instance the segment lies in (segments are split at shift and break
    boundaries), None outside every shift.
    """

    asset: str
    start: datetime
    end: datetime | None
    category: Category
    state: str  # PackML state name, "" when unknown (no data yet)
    mode: str
    stop_reason: str | None
    shift: str | None


@dataclass(frozen=True, slots=True)
class MinuteRow:
    """One asset's minute ``[ts, ts + 60 s)``: seconds per category and counts.

    The seconds of the categories sum to :data:`WINDOW_S` (time accounting closure).
    ``processed`` is PQ, ``defective`` SQ, ``rework`` RQ; good (GQ) = processed - defective.
    ``ideal_cycle_s`` (PRU) is None when the plant model does not know it. ``revision`` is 0 for
    the first computation and counts corrections; ``corrected_at`` is the ingest time of the
    late event that caused the latest correction (deterministic: a replay writes the same row).
    """

    asset: str
    ts: datetime
    seconds: dict[Category, float]
    processed: int
    defective: int
    rework: int
    ideal_cycle_s: float | None
    shift: str | None
    shift_start: datetime | None
    mapping_version: str
    revision: int = 0
    corrected_at: datetime | None = None

    @property
    def good(self) -> int:
        return self.processed - self.defective
