"""The raw tables hold exactly the contract: every field of every event type has its column,
and an event decoded from the wire is stored and read back unchanged."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
import psycopg
import pytest
from psycopg.types.json import Jsonb

from asbuilt import db
from asbuilt import events as ev

pytestmark = pytest.mark.integration

TS = datetime(2026, 3, 2, 6, 0, 0, 123456, tzinfo=UTC)
ASSET = "acme/basel/osd/granulation/fbd1"
TABLE_OF: dict[type[Any], str] = {
    ev.StateChange: "equipment_states",
    ev.CounterSample: "counter_samples",
    ev.ProcessValue: "process_values",
    ev.Alarm: "alarms",
    ev.BatchEvent: "batch_events",
    ev.MaterialMovement: "material_movements",
    ev.DeadLetter: "dead_letters",
}
SAMPLES: list[ev.Event | ev.DeadLetter] = [
    ev.new_state_change(asset=ASSET, ts=TS, state="Held", mode="Produce", stop_reason="100.20"),
    ev.new_counter_sample(
        asset=ASSET, ts=TS, counter="processed", value=19_271, resettable=True, rollover=65_535
    ),
    ev.new_process_value(
        asset=ASSET, ts=TS, signal="inlet_air_temperature", value=61.5, unit="degC", status_code=0
    ),
    ev.new_alarm(
        asset=ASSET,
        ts=TS,
        alarm="filter_dp_high",
        severity=700,
        message="ΔP > 2 kPa",
        active=True,
        acked=False,
    ),
    ev.new_batch_event(
        asset=ASSET,
        ts=TS,
        batch_id="B-2026-0042",
        recipe_id="GRAN-PARA-500",
        recipe_version="3",
        procedure="granulate",
        unit_procedure="fbd1",
        operation="dry",
        phase="heat",
        transition="started",
        parameters={"inlet_setpoint_degC": 62.0, "mode": "auto"},
    ),
    ev.new_material_movement(
        asset=ASSET,
        ts=TS,
        direction="consumed",
        lot="L-API-0017",
        material="paracetamol",
        quantity=125.5,
        unit="kg",
        batch_id="B-2026-0042",
    ),
    ev.new_dead_letter(reason="invalid JSON", origin="asbuilt.v1.states[0]@7", payload=b"\xff{"),
]


def _row(event: ev.Event | ev.DeadLetter) -> dict[str, Any]:
    fields = {f: getattr(event, f) for f in event.__struct_fields__}
    fields["event_id"] = uuid.UUID(fields["event_id"])
    return {k: Jsonb(v) if isinstance(v, dict) else v for k, v in fields.items()}


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__)
def test_each_event_type_round_trips_through_its_raw_table(db_dsn: str, event: Any) -> None:
    table = TABLE_OF[type(event)]
    wire = ev.encode(event)
    if isinstance(event, ev.DeadLetter):  # not an event: the dead-letter topic has its own type
        decoded: Any = msgspec.json.decode(wire, type=ev.DeadLetter)
    else:
        decoded = ev.decode(wire, origin="test")
    assert decoded == event
    row = _row(decoded)
    with psycopg.connect(db_dsn) as conn:
        columns = {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s",
                (table,),
            )
        }
        # dead_letters also says where a Kafka message came from (002_pipelines.sql)
        source = {"topic", "partition", "offset"} if table == "dead_letters" else set()
        assert columns == set(row) | source, f"{table} and {type(event).__name__} disagree"
        key = (
            ("received_ts", "event_id") if table == "dead_letters" else ("asset", "ts", "event_id")
        )
        assert db.copy_upsert(conn, table, list(row), [list(row.values())], key) == 1
        assert db.copy_upsert(conn, table, list(row), [list(row.values())], key) == 0  # replay
        cur = conn.execute(f"SELECT {', '.join(row)} FROM {table}")
        stored = dict(zip(row, cur.fetchone() or (), strict=True))
    stored["event_id"] = str(stored["event_id"])
    assert msgspec.convert(stored, type(event)) == event
