"""OPC UA events (batch, material, alarm occurrences) → asbuilt events or dead letters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asyncua import ua

from asbuilt import events as ev
from connectors.opcua.events import translate_event
from connectors.opcua.translate import TimestampPolicy

pytestmark = pytest.mark.unit

RECEIVED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
TIME = RECEIVED - timedelta(seconds=3)
POLICY = TimestampPolicy()
GRAN = "acme/basel/osd/gran"
GRAN_NODE = ua.NodeId("Gran", 2)
SOURCES = {GRAN_NODE: GRAN}

# One subscription selects the fields of all three event types: a field the event's own type
# does not have arrives as None.
_ALL_FIELDS = [
    "AssetPath",
    "BatchId",
    "RecipeId",
    "RecipeVersion",
    "Procedure",
    "UnitProcedure",
    "Operation",
    "Phase",
    "Transition",
    "Parameters",
    "Direction",
    "Lot",
    "Material",
    "Quantity",
    "Unit",
    "Alarm",
    "Active",
    "Acked",
]


def fields(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict.fromkeys(_ALL_FIELDS)
    base |= {
        "EventId": b"\x01\x02",
        "EventType": ua.NodeId(1001, 2),
        "SourceNode": GRAN_NODE,
        "SourceName": GRAN,
        "Time": TIME,
        "ReceiveTime": RECEIVED,
        "Message": ua.LocalizedText(""),
        "Severity": 500,
        "AssetPath": GRAN,
    }
    return base | kw


def batch(**kw: Any) -> dict[str, Any]:
    return fields(
        **(
            dict(
                BatchId="B-2024-0042",
                RecipeId="MR-PARA-500",
                RecipeVersion="3",
                Procedure="Paracetamol 500 mg",
                UnitProcedure="Granulation",
                Operation="Wet granulation",
                Phase="Spray",
                Transition="started",
                Parameters='{"spray_rate": 120.5, "binder": "PVP K30"}',
            )
            | kw
        )
    )


def material(**kw: Any) -> dict[str, Any]:
    return fields(
        **(
            dict(
                Direction="consumed",
                Lot="L-API-7",
                Material="Paracetamol API",
                Quantity=250.0,
                Unit="kg",
                BatchId="B-2024-0042",
            )
            | kw
        )
    )


def alarm(**kw: Any) -> dict[str, Any]:
    return fields(
        **(
            dict(
                Alarm="HighInletAirTemp",
                Active=True,
                Acked=False,
                Severity=700,
                Message=ua.LocalizedText("Inlet air temperature high"),
            )
            | kw
        )
    )


def run(f: dict[str, Any], received: datetime = RECEIVED) -> list[ev.Event | ev.DeadLetter]:
    return translate_event(f, SOURCES, received, POLICY)


def one(f: dict[str, Any]) -> ev.Event:
    [out] = run(f)
    assert not isinstance(out, ev.DeadLetter), out
    return out


def dead_only(f: dict[str, Any]) -> ev.DeadLetter:
    [out] = run(f)
    assert isinstance(out, ev.DeadLetter), out
    return out


def test_a_batch_event_becomes_a_batch_event_with_parsed_parameters() -> None:
    e = one(batch())
    assert isinstance(e, ev.BatchEvent)
    assert (e.asset, e.ts, e.ingest_ts) == (GRAN, TIME, RECEIVED)
    assert (e.batch_id, e.recipe_id, e.recipe_version) == ("B-2024-0042", "MR-PARA-500", "3")
    assert (e.procedure, e.unit_procedure, e.operation, e.phase) == (
        "Paracetamol 500 mg",
        "Granulation",
        "Wet granulation",
        "Spray",
    )
    assert e.transition == "started"
    assert e.parameters == {"spray_rate": 120.5, "binder": "PVP K30"}


def test_a_procedure_level_batch_event_has_no_lower_levels_and_no_parameters() -> None:
    e = one(
        batch(UnitProcedure="", Operation="", Phase="", Parameters="{}", Transition="completed")
    )
    assert isinstance(e, ev.BatchEvent)
    assert (e.unit_procedure, e.operation, e.phase, e.parameters) == (None, None, None, None)
    assert e.transition == "completed"


def test_a_material_event_becomes_a_material_movement() -> None:
    e = one(material())
    assert isinstance(e, ev.MaterialMovement)
    assert (e.asset, e.ts, e.direction, e.lot, e.material) == (
        GRAN,
        TIME,
        "consumed",
        "L-API-7",
        "Paracetamol API",
    )
    assert (e.quantity, e.unit, e.batch_id) == (250.0, "kg", "B-2024-0042")


def test_a_material_event_without_a_batch_has_batch_id_none() -> None:
    e = one(material(Direction="produced", BatchId="", Quantity=12))
    assert isinstance(e, ev.MaterialMovement)
    assert (e.direction, e.batch_id, e.quantity) == ("produced", None, 12.0)


def test_an_alarm_event_becomes_an_alarm() -> None:
    e = one(alarm())
    assert isinstance(e, ev.Alarm)
    assert (e.asset, e.ts, e.alarm, e.severity) == (GRAN, TIME, "HighInletAirTemp", 700)
    assert (e.message, e.active, e.acked) == ("Inlet air temperature high", True, False)


def test_an_alarm_message_given_as_plain_text_or_none_is_taken() -> None:
    a = one(alarm(Message="plain", Active=False, Acked=True))
    b = one(alarm(Message=None))
    assert isinstance(a, ev.Alarm)
    assert isinstance(b, ev.Alarm)
    assert (a.message, a.active, a.acked) == ("plain", False, True)
    assert b.message == ""


@pytest.mark.parametrize("make", [batch, material, alarm])
def test_the_asset_comes_from_the_source_node_when_there_is_no_asset_path(make: Any) -> None:
    e = one(make(AssetPath=None))
    assert e.asset == GRAN


def test_the_asset_path_field_wins_over_the_source_node() -> None:
    e = one(alarm(AssetPath="acme/basel/osd/press"))
    assert e.asset == "acme/basel/osd/press"


def test_an_event_from_an_unmapped_source_without_asset_path_is_dead_lettered() -> None:
    d = dead_only(alarm(AssetPath="", SourceNode=ua.NodeId(999, 2)))
    assert "alarm event from an unmapped source" in d.reason
    assert "HighInletAirTemp" in d.payload
    assert "EventId" not in d.payload


@pytest.mark.parametrize(
    "f",
    [
        fields(Message=ua.LocalizedText("Session activated"), EventType=ua.NodeId(2075)),
        fields(AssetPath=None, SourceNode=ua.NodeId(2253)),  # the server's own event
        {"EventType": ua.NodeId(2041), "Time": TIME, "Severity": 1},
        {},
    ],
)
def test_events_that_are_not_plant_data_are_ignored(f: dict[str, Any]) -> None:
    assert run(f) == []


@pytest.mark.parametrize(
    ("f", "what"),
    [
        (
            {k: v for k, v in batch().items() if k != "RecipeId"},
            "required field RecipeId is missing",
        ),
        (batch(Transition="paused"), "transition"),
        (batch(Parameters="{not json"), "JSONDecodeError"),
        (batch(Parameters='{"a": [1, 2]}'), "parameters"),
        (batch(Parameters="[1, 2]"), "batch event does not fit the contract"),
        (material(Direction="sideways"), "direction"),
        (material(Quantity=0.0), "quantity"),
        (material(Quantity=-5.0), "quantity"),
        (material(Quantity="lots"), "Quantity must be a number"),
        (material(Lot=""), "required field Lot is missing"),
        (alarm(Severity=5000), "severity"),
        (alarm(AssetPath="acme basel"), "asset"),
    ],
)
def test_an_event_with_incomplete_or_wrong_fields_is_dead_lettered(
    f: dict[str, Any], what: str
) -> None:
    d = dead_only(f)
    assert what in d.reason
    assert d.reason.startswith(str(f.get("AssetPath")))
    assert d.origin.startswith("opcua event")
    assert d.received_ts == RECEIVED


@pytest.mark.parametrize(
    ("time", "shown"),
    [
        (datetime(2000, 1, 1, tzinfo=UTC), "2000-01-01"),
        (RECEIVED + timedelta(days=2), "2024-05-03"),
        (None, "missing"),
        (datetime(1601, 1, 1), "missing"),  # noqa: DTZ001 - asyncua gives OPC UA "no time" naive
    ],
)
def test_an_implausible_event_time_is_dead_lettered_and_the_event_kept_at_receive_time(
    time: datetime | None, shown: str
) -> None:
    d, e = run(material(Time=time))
    assert isinstance(d, ev.DeadLetter)
    assert f"material event time {shown}" in d.reason
    assert "implausible; used receive time" in d.reason
    assert isinstance(e, ev.MaterialMovement)
    assert e.ts == RECEIVED
    assert e.lot == "L-API-7"


def test_a_naive_event_time_is_taken_as_utc() -> None:
    e = one(alarm(Time=TIME.replace(tzinfo=None)))
    assert e.ts == TIME


@pytest.mark.parametrize("make", [batch, material, alarm])
def test_the_same_event_received_twice_gets_the_same_event_id(make: Any) -> None:
    first = one(make())
    [again] = run(make(), received=RECEIVED + timedelta(minutes=5))
    assert isinstance(again, type(first))
    assert again.event_id == first.event_id


def test_different_occurrences_get_different_event_ids() -> None:
    ids = {
        one(batch()).event_id,
        one(batch(Transition="held")).event_id,
        one(batch(Phase="Dry")).event_id,
        one(batch(Time=TIME + timedelta(seconds=1))).event_id,
    }
    assert len(ids) == 4


@pytest.mark.parametrize(
    "f",
    [
        batch(Transition=None),
        batch(Transition=""),
        material(Direction=None),
        alarm(Alarm=""),
    ],
)
def test_an_asbuilt_event_missing_its_identifying_field_is_dead_lettered(
    f: dict[str, Any],
) -> None:
    d = dead_only(f)
    assert "does not fit the contract" in d.reason


@pytest.mark.parametrize(
    "f",
    [
        batch(RecipeId=None),
        batch(BatchId=None),
        batch(Procedure=None),
        material(Lot=None),
        material(Material=None),
        material(Unit=None),
    ],
)
def test_a_required_field_that_is_none_is_dead_lettered_not_stored_as_the_text_none(
    f: dict[str, Any],
) -> None:
    out = run(f)
    assert not any("'None'" in repr(e) for e in out if not isinstance(e, ev.DeadLetter)), out
    d = dead_only(f)
    assert "does not fit the contract" in d.reason
