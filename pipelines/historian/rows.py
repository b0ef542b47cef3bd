"""Contract events -> rows of the raw hypertables (sql/001_raw_events.sql). Pure.

One table per event type; every table's natural key is ``(asset, ts, event_id)``, so writing a
row twice (a replay, a duplicate delivery) stores it once (``ON CONFLICT DO NOTHING``).

A row is built from :func:`msgspec.structs.astuple` (the struct's fields in declaration order,
made in C) picked apart by an :func:`operator.itemgetter` -- about a quarter of a microsecond
per event, which matters at 100k events/s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from operator import itemgetter
from typing import Any, Final

import msgspec

from asbuilt import events as ev

Row = tuple[Any, ...]

KEY: Final = ("asset", "ts", "event_id")

TABLE_OF: Final[Mapping[type[ev.Event], str]] = {
    ev.StateChange: "equipment_states",
    ev.CounterSample: "counter_samples",
    ev.ProcessValue: "process_values",
    ev.Alarm: "alarms",
    ev.BatchEvent: "batch_events",
    ev.MaterialMovement: "material_movements",
}
"""The raw table of each event type."""

_COMMON: Final = ("ts", "asset", "event_id")
_TAIL: Final = ("ingest_ts", "schema_version")

COLUMNS: Final[Mapping[str, tuple[str, ...]]] = {
    "equipment_states": (
        *_COMMON, "state", "mode", "stop_reason", "blocked", "starved", *_TAIL
    ),
    "counter_samples": (*_COMMON, "counter", "value", "resettable", "rollover", *_TAIL),
    "process_values": (
        *_COMMON, "signal", "value", "unit", "quality", "status_code", *_TAIL
    ),
    "alarms": (*_COMMON, "alarm", "severity", "message", "active", "acked", *_TAIL),
    "batch_events": (
        *_COMMON, "batch_id", "recipe_id", "recipe_version", "procedure", "unit_procedure",
        "operation", "phase", "transition", "parameters", *_TAIL,
    ),
    "material_movements": (
        *_COMMON, "direction", "lot", "material", "quantity", "unit", "batch_id", *_TAIL
    ),
}  # fmt: skip
"""Each raw table's columns, in row order (every column is an event field of the same name)."""


def _picker(event_type: type[ev.Event], columns: tuple[str, ...]) -> Callable[[Any], Row]:
    fields = event_type.__struct_fields__
    missing = [c for c in columns if c not in fields]
    if missing:  # a contract change the tables do not follow: fail at import, not at runtime
        msg = f"{event_type.__name__} has no field(s) {missing} for its raw table"
        raise TypeError(msg)
    getter = itemgetter(*(fields.index(c) for c in columns))
    astuple = msgspec.structs.astuple
    return lambda event: getter(astuple(event))


_PICK: Final[Mapping[type[ev.Event], Callable[[Any], Row]]] = {
    t: _picker(t, COLUMNS[table]) for t, table in TABLE_OF.items()
}
_ROUTE: Final[Mapping[type[ev.Event], tuple[str, Callable[[Any], Row]]]] = {
    t: (TABLE_OF[t], _PICK[t]) for t in TABLE_OF
}


def row(event: ev.Event) -> Row:
    """The row of ``event`` in its table's :data:`COLUMNS` order."""
    return _PICK[type(event)](event)


def table_row(event: ev.Event) -> tuple[str, Row]:
    """``(table, row)`` of ``event``: the item the historian's multi-table sink takes."""
    table, pick = _ROUTE[type(event)]
    return table, pick(event)
