"""OPC UA events (batch, material, alarm occurrences) → asbuilt events. Pure.

An event is recognised by its fields, as the simulator's custom types carry them
(``BatchEventType``: BatchId, Transition, …; ``MaterialEventType``: Direction, Lot, …;
``PlantAlarmEventType``: Alarm, Active, Acked, and the standard Severity). The asset is the
``AssetPath`` field, else the asset whose node is the event's ``SourceNode``. The event time is
the event's ``Time`` under the same plausibility policy as data changes. Events of other types
(a server's own audit or system events) are not plant data: they are ignored, not dead-lettered.
An asbuilt event whose fields are incomplete or wrong becomes a dead letter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from asbuilt import events as ev
from connectors.opcua.translate import TimestampPolicy, aware


def _text(value: Any) -> str:
    text = getattr(value, "Text", value)  # LocalizedText or str
    return "" if text is None else str(text)


_OWN_FIELDS = {  # a field only that kind of event carries
    "batch": ("Transition", "RecipeId", "RecipeVersion", "Procedure"),
    "material": ("Direction", "Lot", "Material", "Quantity"),
    "alarm": ("Alarm", "Active", "Acked"),
}
TYPE_KINDS = {
    "BatchEventType": "batch",
    "MaterialEventType": "material",
    "PlantAlarmEventType": "alarm",
}
EVENT_TYPE_NAMES = tuple(TYPE_KINDS)


def _present(value: Any) -> bool:
    return value is not None and value != ""


def event_kind(fields: Mapping[str, Any], types: Mapping[Any, str] | None = None) -> str | None:
    """batch / material / alarm, from the event's type when known, else from its own fields."""
    if types and fields.get("EventType") in types:
        return types[fields["EventType"]]
    for kind, own in _OWN_FIELDS.items():
        if any(_present(fields.get(name)) for name in own):
            return kind
    return None


def _required(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    if not _present(value):
        msg = f"required field {name} is missing"
        raise ValueError(msg)
    return str(value)


def _optional(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    return str(value) if _present(value) else None


def _flag(fields: Mapping[str, Any], name: str) -> bool:
    value = fields.get(name)
    if not isinstance(value, bool):
        msg = f"{name} must be a boolean, got {value!r}"
        raise TypeError(msg)
    return value


def translate_event(
    fields: Mapping[str, Any],
    sources: Mapping[Any, str],
    received: datetime,
    policy: TimestampPolicy,
    types: Mapping[Any, str] | None = None,
) -> list[ev.Event | ev.DeadLetter]:
    """One OPC UA event's fields → an asbuilt event (and dead letters), or nothing if it is not
    plant data. ``types`` maps the asbuilt event type node ids to their kind."""
    kind = event_kind(fields, types)
    if kind is None:
        return []
    origin = f"opcua event {fields.get('EventType')} from {fields.get('SourceNode')}"
    asset = fields.get("AssetPath") or sources.get(fields.get("SourceNode"))
    out: list[ev.Event | ev.DeadLetter] = []
    payload = repr({k: v for k, v in fields.items() if k != "EventId"}).encode()
    if not asset:
        reason = f"{kind} event from an unmapped source"
        return [
            ev.new_dead_letter(reason=reason, origin=origin, payload=payload, received_ts=received)
        ]
    ts = aware(fields.get("Time"))
    if not policy.plausible(ts, received):
        when = "missing" if ts is None else ts.isoformat()
        reason = f"{asset}: {kind} event time {when} is implausible; used receive time"
        out.append(
            ev.new_dead_letter(reason=reason, origin=origin, payload=payload, received_ts=received)
        )
        ts = received
    assert ts is not None
    try:
        out.append(_build(kind, str(asset), ts, fields, received))
    except (KeyError, TypeError, ValueError, OverflowError, ev.InvalidEvent) as exc:
        reason = f"{asset}: {kind} event does not fit the contract: {type(exc).__name__}: {exc}"
        out.append(
            ev.new_dead_letter(reason=reason, origin=origin, payload=payload, received_ts=received)
        )
    return out


def _build(
    kind: str, asset: str, ts: datetime, fields: Mapping[str, Any], received: datetime
) -> ev.Event:
    if kind == "batch":
        params = json.loads(_optional(fields, "Parameters") or "{}")
        if not isinstance(params, dict):
            msg = f"Parameters must be a JSON object, got {params!r}"
            raise TypeError(msg)
        return ev.new_batch_event(
            asset=asset,
            ts=ts,
            batch_id=_required(fields, "BatchId"),
            recipe_id=_required(fields, "RecipeId"),
            recipe_version=_required(fields, "RecipeVersion"),
            procedure=_required(fields, "Procedure"),
            unit_procedure=_optional(fields, "UnitProcedure"),
            operation=_optional(fields, "Operation"),
            phase=_optional(fields, "Phase"),
            transition=_required(fields, "Transition"),  # type: ignore[arg-type]  # validated
            parameters=params or None,
            ingest_ts=received,
        )
    if kind == "material":
        quantity = fields.get("Quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int | float):
            msg = f"Quantity must be a number, got {quantity!r}"
            raise TypeError(msg)
        return ev.new_material_movement(
            asset=asset,
            ts=ts,
            direction=_required(fields, "Direction"),  # type: ignore[arg-type]  # validated
            lot=_required(fields, "Lot"),
            material=_required(fields, "Material"),
            quantity=float(quantity),
            unit=_required(fields, "Unit"),
            batch_id=_optional(fields, "BatchId"),
            ingest_ts=received,
        )
    severity = fields.get("Severity")
    if isinstance(severity, bool) or not isinstance(severity, int):
        msg = f"Severity must be an integer 1..1000, got {severity!r}"
        raise TypeError(msg)
    return ev.new_alarm(
        asset=asset,
        ts=ts,
        alarm=_required(fields, "Alarm"),
        severity=severity,
        message=_text(fields.get("Message")),
        active=_flag(fields, "Active"),
        acked=_flag(fields, "Acked"),
        ingest_ts=received,
    )
