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
from datetime import UTC, datetime
from typing import Any

from asbuilt import events as ev
from connectors.opcua.translate import TimestampPolicy

EVENT_TYPE_NAMES = ("BatchEventType", "MaterialEventType", "PlantAlarmEventType")


def _text(value: Any) -> str:
    text = getattr(value, "Text", value)  # LocalizedText or str
    return "" if text is None else str(text)


def _aware(ts: Any) -> datetime | None:
    if not isinstance(ts, datetime) or ts.year < 1602:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def translate_event(
    fields: Mapping[str, Any],
    sources: Mapping[Any, str],
    received: datetime,
    policy: TimestampPolicy,
) -> list[ev.Event | ev.DeadLetter]:
    kind = (
        "batch"
        if fields.get("Transition")
        else "material"
        if fields.get("Direction")
        else "alarm"
        if fields.get("Alarm")
        else None
    )
    if kind is None:
        return []
    origin = f"opcua event {fields.get('EventType')} from {fields.get('SourceNode')}"
    asset = fields.get("AssetPath") or sources.get(fields.get("SourceNode"))
    out: list[ev.Event | ev.DeadLetter] = []
    payload = repr({k: v for k, v in fields.items() if k != "EventId"}).encode()
    if not asset:
        return [
            ev.new_dead_letter(
                reason=f"{kind} event from an unmapped source",
                origin=origin,
                payload=payload,
                received_ts=received,
            )
        ]
    ts = _aware(fields.get("Time"))
    if not policy.plausible(ts, received):
        out.append(
            ev.new_dead_letter(
                reason=f"{asset}: {kind} event time {'missing' if ts is None else ts.isoformat()}"
                " is implausible; used receive time",
                origin=origin,
                payload=payload,
                received_ts=received,
            )
        )
        ts = received
    assert ts is not None
    try:
        if kind == "batch":
            params = fields.get("Parameters") or "{}"
            out.append(
                ev.new_batch_event(
                    asset=str(asset),
                    ts=ts,
                    batch_id=str(fields["BatchId"]),
                    recipe_id=str(fields["RecipeId"]),
                    recipe_version=str(fields["RecipeVersion"]),
                    procedure=str(fields["Procedure"]),
                    unit_procedure=fields.get("UnitProcedure") or None,
                    operation=fields.get("Operation") or None,
                    phase=fields.get("Phase") or None,
                    transition=fields["Transition"],
                    parameters=json.loads(params) or None,
                    ingest_ts=received,
                )
            )
        elif kind == "material":
            out.append(
                ev.new_material_movement(
                    asset=str(asset),
                    ts=ts,
                    direction=fields["Direction"],
                    lot=str(fields["Lot"]),
                    material=str(fields["Material"]),
                    quantity=float(fields["Quantity"]),
                    unit=str(fields["Unit"]),
                    batch_id=fields.get("BatchId") or None,
                    ingest_ts=received,
                )
            )
        else:
            out.append(
                ev.new_alarm(
                    asset=str(asset),
                    ts=ts,
                    alarm=str(fields["Alarm"]),
                    severity=int(fields.get("Severity") or 500),
                    message=_text(fields.get("Message")),
                    active=bool(fields.get("Active")),
                    acked=bool(fields.get("Acked")),
                    ingest_ts=received,
                )
            )
    except (KeyError, TypeError, ValueError, ev.InvalidEvent) as exc:
        reason = f"{asset}: {kind} event does not fit the contract: {type(exc).__name__}: {exc}"
        out.append(
            ev.new_dead_letter(reason=reason, origin=origin, payload=payload, received_ts=received)
        )
    return out
