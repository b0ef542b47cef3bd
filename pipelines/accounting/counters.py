"""Cumulative counters → increments, never negative, never double.

A machine reports running totals (PackTags ``ProdProcessedCount[].AccCount``); OEE needs how
many units each sample adds. :func:`increment` decides from the previous sample of the same
counter (in event-time order) and the new one:

- no previous sample: the first value is a **baseline**, not production (a counter reading
  1,234,567 when asbuilt starts did not make 1,234,567 units now) -- increment 0;
- the value grew: the difference;
- the value fell, and the counter has a known ``rollover`` limit and the old value was near it
  (in the top tenth of the range): a **rollover**, ``limit - old + new + 1`` (the counter went
  old → limit → 0 → new);
- the value fell on a **resettable** counter: a reset to 0, then counting up to ``new``: ``new``;
- the value fell on a non-resettable accumulator: the device restarted or was replaced; its new
  value is a new **baseline** -- increment 0. Units counted between the restart and this sample
  are lost rather than risk counting an unrelated total twice (never double).

Counter names get a role through :data:`DEFAULT_ROLES`: ``processed`` → PQ, ``defective`` → SQ,
``rework`` → RQ. Other counters (``processed_resettable`` ...) are ignored unless a role is
configured for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal, TypeAlias

__all__ = ["DEFAULT_ROLES", "ROLES", "Role", "increment", "is_rollover"]

Role: TypeAlias = Literal["processed", "defective", "rework"]
ROLES: Final[tuple[Role, ...]] = ("processed", "defective", "rework")

DEFAULT_ROLES: Final[Mapping[str, Role]] = {
    "processed": "processed",
    "defective": "defective",
    "rework": "rework",
}
"""Counter name → role (PQ, SQ, RQ). Counters not listed are ignored by OEE."""

NEAR_LIMIT: Final = 0.1
"""A fall is a rollover only if the old value was within this fraction of the range of the
limit (and new < old): a reset from 63,000 to 5 on a 65,535 counter reads as a rollover, a reset
from 30,000 to 5 as a reset."""


def is_rollover(old: int, new: int, rollover: int | None) -> bool:
    """True if ``old`` → ``new`` (a fall) is a wrap-around at ``rollover``."""
    if rollover is None or new >= old:
        return False
    return old >= rollover - rollover * NEAR_LIMIT and new <= rollover * NEAR_LIMIT


def increment(old: int | None, new: int, *, resettable: bool, rollover: int | None = None) -> int:
    """Units counted between the previous sample ``old`` (None: none) and ``new``; see above."""
    if old is None:
        return 0
    if new >= old:
        return new - old
    if is_rollover(old, new, rollover):
        assert rollover is not None
        return rollover - old + new + 1
    if resettable:
        return new
    return 0
