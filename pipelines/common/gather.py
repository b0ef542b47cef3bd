"""Gather a keyed stream into lists for at most a time or a size: :func:`gather`.

Bytewax's own ``collect`` restarts its timeout at every item, so a steady trickle of items less
than ``timeout`` apart is held until ``max_size`` -- minutes for a sink that gathers the minute
rows of a big plant. Here the wait starts with the first item of a list: no item waits longer
than ``wait`` (plus the time until the worker next looks). The list is Bytewax state, so items
gathered but not yet emitted are in the snapshot: a crash loses none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

import bytewax.operators as op
from bytewax.dataflow import Stream
from bytewax.operators import StatefulLogic

V = TypeVar("V")

__all__ = ["gather"]


@dataclass
class _Gathered(Generic[V]):
    items: list[V] = field(default_factory=list)
    due: datetime | None = None  # when the list goes out, set by its first item


class _GatherLogic(StatefulLogic[V, list[V], _Gathered[V]]):
    def __init__(self, wait: timedelta, max_size: int, state: _Gathered[V]) -> None:
        self.wait = wait
        self.max_size = max_size
        self.state = state

    def on_item(self, value: V) -> tuple[list[list[V]], bool]:
        state = self.state
        if not state.items:
            state.due = datetime.now(UTC) + self.wait
        state.items.append(value)
        if len(state.items) >= self.max_size:
            return [state.items], StatefulLogic.DISCARD
        return [], StatefulLogic.RETAIN

    def on_notify(self) -> tuple[list[list[V]], bool]:
        return ([self.state.items] if self.state.items else []), StatefulLogic.DISCARD

    def on_eof(self) -> tuple[list[list[V]], bool]:
        return self.on_notify()

    def notify_at(self) -> datetime | None:
        return self.state.due

    def snapshot(self) -> _Gathered[V]:
        return _Gathered(list(self.state.items), self.state.due)  # items are not mutated


def gather(
    step_id: str, up: Stream[tuple[str, V]], wait: timedelta, max_size: int
) -> Stream[tuple[str, list[V]]]:
    """Per key, lists of the items of ``up``: a list goes out ``wait`` after its first item
    arrived, or when it holds ``max_size`` items, whichever comes first."""
    if max_size < 1:
        msg = f"max_size must be at least 1, not {max_size}"
        raise ValueError(msg)

    def build(resume: _Gathered[V] | None) -> _GatherLogic[V]:
        return _GatherLogic(wait, max_size, resume if resume is not None else _Gathered())

    return op.stateful(step_id, up, build)
