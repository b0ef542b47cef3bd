"""The event contract: round trips, deterministic ids, dead letters, PackML mappings."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from asbuilt import events as ev
from asbuilt.events import DeadLetter, Event

pytestmark = pytest.mark.unit

ASSET = "acme/basel/b1/line3/filler"
TS = datetime(2024, 5, 1, 8, 0, 0, 123456, tzinfo=UTC)
INGEST = datetime(2024, 5, 1, 8, 0, 0, 456789, tzinfo=UTC)


def one_of_each() -> list[Event]:
    return [
        ev.new_state_change(
            asset=ASSET,
            ts=TS,
            state="Suspended",
            mode=ev.MODE_PRODUCE,
            stop_reason="100.20",
            starved=True,
            ingest_ts=INGEST,
        ),
        ev.new_counter_sample(
            asset=ASSET,
            ts=TS,
            counter="processed",
            value=19_271,
            resettable=False,
            rollover=2**31 - 1,
            ingest_ts=INGEST,
        ),
        ev.new_process_value(
            asset="acme/basel/b1/granulation/dryer1",
            ts=TS,
            signal="inlet_air_temperature",
            value=61.25,
            unit="Cel",
            status_code=0,
            ingest_ts=INGEST,
        ),
        ev.new_alarm(
            asset=ASSET,
            ts=TS,
            alarm="LowAirPressure",
            severity=700,
            message="Air pressure below 5.5 bar",
            active=True,
            acked=False,
            ingest_ts=INGEST,
        ),
        ev.new_batch_event(
            asset="acme/basel/b1/granulation",
            ts=TS,
            batch_id="B-2024-0042",
            recipe_id="GRAN-API-200",
            recipe_version="3",
            procedure="Granulate",
            unit_procedure="Dry",
            operation="FluidBedDry",
            phase="Heat",
            transition="started",
            parameters={"setpoint_c": 60.0, "profile": "gentle"},
            ingest_ts=INGEST,
        ),
        ev.new_material_movement(
            asset="acme/basel/b1/granulation/dryer1",
            ts=TS,
            direction="consumed",
            lot="L-778",
            material="API-200",
            quantity=12.5,
            unit="kg",
            batch_id="B-2024-0042",
            ingest_ts=INGEST,
        ),
    ]


def valid_json(kind: str = "state") -> dict[str, Any]:
    event = next(e for e in one_of_each() if type(e).__struct_config__.tag == kind)
    result: dict[str, Any] = json.loads(ev.encode(event))
    return result


def dead(data: bytes | None, origin: str = "asbuilt.v1.states[0]@1") -> DeadLetter:
    result = ev.decode(data, origin)
    assert isinstance(result, DeadLetter), result
    assert result.origin == origin
    return result


# --- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("event", one_of_each(), ids=lambda e: type(e).__name__)
def test_every_event_type_round_trips(event: Event) -> None:
    data = ev.encode(event)
    assert ev.decode(data, "test") == event
    assert json.loads(data)["kind"] == type(event).__struct_config__.tag
    assert ev.key(event) == event.asset.encode()


def test_one_of_each_covers_the_union() -> None:
    assert {type(e) for e in one_of_each()} == set(ev.EVENT_TYPES)


def test_wire_carries_the_common_fields_in_utc() -> None:
    event = ev.new_state_change(
        asset=ASSET,
        ts=datetime(2024, 5, 1, 10, 0, tzinfo=timezone(timedelta(hours=2))),
        state="Execute",
        mode=ev.MODE_PRODUCE,
    )
    wire = json.loads(ev.encode(event))
    assert wire["schema_version"] == ev.SCHEMA_VERSION == 1
    assert wire["ts"] == "2024-05-01T08:00:00Z"
    assert wire["ingest_ts"].endswith("Z")
    assert wire["asset"] == ASSET


def test_state_change_size_is_about_two_hundred_bytes() -> None:
    # the Kafka budget assumes small events; a field added by mistake shows here
    assert 200 <= len(ev.encode(one_of_each()[0])) <= 320


def test_ingest_ts_defaults_to_now_aware() -> None:
    before = datetime.now(UTC)
    event = ev.new_counter_sample(asset=ASSET, ts=TS, counter="defective", value=0, resettable=True)
    assert event.ingest_ts.tzinfo is not None
    assert before <= event.ingest_ts <= datetime.now(UTC)


def test_older_fields_missing_take_defaults() -> None:
    wire = valid_json("state")
    for optional in ("stop_reason", "blocked", "starved"):
        del wire[optional]
    event = ev.decode(json.dumps(wire).encode(), "test")
    assert isinstance(event, ev.StateChange)
    assert (event.stop_reason, event.blocked, event.starved) == (None, False, False)


def test_unknown_fields_are_ignored() -> None:
    wire = valid_json("counter") | {"added_later": 1}
    assert isinstance(ev.decode(json.dumps(wire).encode(), "test"), ev.CounterSample)


# --- event ids ---------------------------------------------------------------------------------

segments = st.from_regex(r"[A-Za-z0-9_.-]{1,12}", fullmatch=True)
assets = st.lists(segments, min_size=1, max_size=5).map("/".join)
offsets = st.integers(min_value=-23 * 60, max_value=23 * 60).map(
    lambda m: timezone(timedelta(minutes=m))
)
aware = st.datetimes(  # hypothesis takes naive bounds and attaches `timezones`
    min_value=datetime(1970, 1, 1),  # noqa: DTZ001
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=offsets,
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)


def test_event_id_is_a_pinned_uuid5() -> None:
    # pins the id algorithm: changing it is a breaking change (a new topic version)
    eid = ev.make_event_id("counter", ASSET, TS, "processed", 42)
    assert eid == "803c1d86-12ea-54cf-b73d-0579cc20e6e2"
    assert eid[14] == "5"  # uuid version 5


@given(kind=st.sampled_from(["state", "counter"]), asset=assets, ts=aware, disc=st.lists(scalars))
def test_event_id_is_deterministic(kind: str, asset: str, ts: datetime, disc: list[Any]) -> None:
    assert ev.make_event_id(kind, asset, ts, *disc) == ev.make_event_id(kind, asset, ts, *disc)


@given(asset=assets, ts=aware, offset=offsets)
def test_event_id_depends_on_the_instant_not_the_time_zone(
    asset: str, ts: datetime, offset: timezone
) -> None:
    assert ev.make_event_id("state", asset, ts) == ev.make_event_id(
        "state", asset, ts.astimezone(offset)
    )


@given(asset=assets, ts1=aware, ts2=aware)
def test_event_id_changes_with_ts(asset: str, ts1: datetime, ts2: datetime) -> None:
    assume(ts1 != ts2)
    assert ev.make_event_id("counter", asset, ts1, "processed", 1) != ev.make_event_id(
        "counter", asset, ts2, "processed", 1
    )


@given(a1=assets, a2=assets, ts=aware)
def test_event_id_changes_with_asset(a1: str, a2: str, ts: datetime) -> None:
    assume(a1 != a2)
    assert ev.make_event_id("state", a1, ts, "Idle") != ev.make_event_id("state", a2, ts, "Idle")


@given(asset=assets, ts=aware, d1=scalars, d2=scalars)
def test_event_id_changes_with_a_discriminator(asset: str, ts: datetime, d1: Any, d2: Any) -> None:
    assume(json.dumps(d1) != json.dumps(d2))  # 1 and 1.0, True and 1 are different already
    assume(not (type(d1) is type(d2) and d1 == d2))  # 0.0 == -0.0 but dumps differently
    assert ev.make_event_id("counter", asset, ts, "c", d1) != ev.make_event_id(
        "counter", asset, ts, "c", d2
    )


def test_event_id_distinguishes_types_and_kinds() -> None:
    ids = {
        ev.make_event_id("counter", ASSET, TS, "1"),
        ev.make_event_id("counter", ASSET, TS, 1),
        ev.make_event_id("counter", ASSET, TS, 1.0),
        ev.make_event_id("counter", ASSET, TS, True),
        ev.make_event_id("counter", ASSET, TS, None),
        ev.make_event_id("counter", ASSET, TS),
        ev.make_event_id("state", ASSET, TS, "1"),
        ev.make_event_id("counter", ASSET, TS, "a", "b"),
        ev.make_event_id("counter", ASSET, TS, "a/b"),
    }
    assert len(ids) == 9


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_event_id_refuses_non_finite_numbers(number: float) -> None:
    with pytest.raises(ev.InvalidEvent, match="finite"):
        ev.make_event_id("process_value", ASSET, TS, "t", number)


def test_event_id_of_a_mapping_ignores_key_order() -> None:
    assert ev.make_event_id("batch", ASSET, TS, {"a": 1.0, "b": "x"}) == ev.make_event_id(
        "batch", ASSET, TS, {"b": "x", "a": 1.0}
    )


def test_naive_ts_is_refused_by_the_id() -> None:
    with pytest.raises(ev.InvalidEvent, match="naive"):
        ev.make_event_id("state", ASSET, datetime(2024, 5, 1))  # noqa: DTZ001 - the point


def test_factories_give_the_same_id_for_the_same_fact_ingested_twice() -> None:
    first = ev.new_counter_sample(
        asset=ASSET, ts=TS, counter="processed", value=7, resettable=False, ingest_ts=INGEST
    )
    again = ev.new_counter_sample(
        asset=ASSET,
        ts=TS.astimezone(timezone(timedelta(hours=2))),
        counter="processed",
        value=7,
        resettable=False,
        ingest_ts=INGEST + timedelta(minutes=5),
    )
    assert first.event_id == again.event_id
    assert first.ts == again.ts
    assert again.ts.tzinfo is UTC


def test_factories_give_different_ids_for_different_facts() -> None:
    events = one_of_each()
    assert len({e.event_id for e in events}) == len(events)
    changed = ev.new_state_change(
        asset=ASSET,
        ts=TS,
        state="Suspended",
        mode=ev.MODE_PRODUCE,
        stop_reason="100.21",  # a corrected reason is a new, attributable record
        starved=True,
        ingest_ts=INGEST,
    )
    assert changed.event_id != events[0].event_id


# --- factories refuse what the wire would refuse -----------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"asset": "acme//line"}, "$.asset"),
        ({"asset": "a/b/c/d/e/f"}, "$.asset"),
        ({"mode": ""}, "$.mode"),
        ({"stop_reason": "100..2"}, "$.stop_reason"),
        ({"ts": datetime(2024, 5, 1)}, "naive"),  # noqa: DTZ001 - the point
        ({"ingest_ts": datetime(2024, 5, 1)}, "naive"),  # noqa: DTZ001
    ],
)
def test_state_change_factory_refuses_bad_values(kwargs: dict[str, Any], fragment: str) -> None:
    args: dict[str, Any] = {"asset": ASSET, "ts": TS, "state": "Idle", "mode": "Produce"}
    with pytest.raises(ev.InvalidEvent) as info:
        ev.new_state_change(**(args | kwargs))
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_process_value_factory_refuses_non_finite(value: float) -> None:
    with pytest.raises(ev.InvalidEvent, match="finite"):
        ev.new_process_value(
            asset=ASSET, ts=TS, signal="t", value=value, unit="Cel", status_code=0x80000000
        )


def test_counter_and_material_factories_refuse_out_of_range() -> None:
    with pytest.raises(ev.InvalidEvent, match=r"\$\.value"):
        ev.new_counter_sample(asset=ASSET, ts=TS, counter="good", value=-1, resettable=False)
    with pytest.raises(ev.InvalidEvent, match=r"\$\.quantity"):
        ev.new_material_movement(
            asset=ASSET, ts=TS, direction="produced", lot="L", material="M", quantity=0, unit="kg"
        )
    with pytest.raises(ev.InvalidEvent, match=r"\$\.severity"):
        ev.new_alarm(
            asset=ASSET, ts=TS, alarm="A", severity=1001, message="", active=True, acked=False
        )


def test_process_value_quality_follows_the_status_code() -> None:
    pv = ev.new_process_value(
        asset=ASSET, ts=TS, signal="t", value=1.0, unit="Cel", status_code=0x40920000
    )
    assert pv.quality == "uncertain"


# --- dead letters ------------------------------------------------------------------------------


def with_field(event_kind: str, **fields: Any) -> bytes:
    return json.dumps(valid_json(event_kind) | fields).encode()


def without_field(kind: str, name: str) -> bytes:
    wire = valid_json(kind)
    del wire[name]
    return json.dumps(wire).encode()


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        pytest.param(b"", ["empty"], id="empty"),
        pytest.param(None, ["empty"], id="none"),
        pytest.param(b'{"kind": "state",', ["invalid JSON"], id="truncated"),
        pytest.param(b"not json at all", ["invalid JSON", "malformed"], id="garbage"),
        pytest.param(
            json.dumps(valid_json("state")).encode() + b" trailing", ["invalid JSON"], id="trailing"
        ),
        pytest.param(with_field("process_value", value="NaN"), ["$.value"], id="nan-string"),
        pytest.param(b"null", ["Expected `object`"], id="null"),
        pytest.param(b"[1, 2]", ["Expected `object`"], id="array"),
        pytest.param(b"42", ["Expected `object`"], id="number"),
        pytest.param(b"[" * 100_000, ["Expected `object`"], id="deep-array"),
        pytest.param(b'{"a":' * 100_000, ["invalid JSON", "deeply"], id="deep-object"),
        pytest.param(without_field("state", "kind"), ["`kind`"], id="no-kind"),
        pytest.param(with_field("state", kind="temperature"), ["$.kind"], id="unknown-kind"),
        pytest.param(with_field("state", kind=1), ["$.kind"], id="kind-not-str"),
        pytest.param(without_field("state", "event_id"), ["`event_id`"], id="no-id"),
        pytest.param(with_field("state", event_id="x"), ["$.event_id"], id="bad-id"),
        pytest.param(
            with_field("state", ts="2024-05-01T08:00:00"), ["$.ts", "timezone"], id="naive-ts"
        ),
        pytest.param(
            with_field("state", ingest_ts="2024-05-01T08:00:00"),
            ["$.ingest_ts", "timezone"],
            id="naive-ingest-ts",
        ),
        pytest.param(with_field("state", ts="yesterday"), ["$.ts"], id="ts-not-a-date"),
        pytest.param(with_field("state", ts=1714550400), ["$.ts"], id="ts-epoch"),
        pytest.param(with_field("state", asset=""), ["$.asset"], id="asset-empty"),
        pytest.param(with_field("state", asset="acme//b1"), ["$.asset"], id="asset-empty-seg"),
        pytest.param(with_field("state", asset="/acme"), ["$.asset"], id="asset-leading-slash"),
        pytest.param(with_field("state", asset="acme/"), ["$.asset"], id="asset-trailing-slash"),
        pytest.param(with_field("state", asset="a/b/c/d/e/f"), ["$.asset"], id="asset-6-segs"),
        pytest.param(with_field("state", asset="acme/line 3"), ["$.asset"], id="asset-space"),
        pytest.param(with_field("state", asset="acme/\u00e9"), ["$.asset"], id="asset-non-ascii"),
        pytest.param(with_field("state", state="Running"), ["$.state"], id="not-packml"),
        pytest.param(with_field("state", state=6), ["$.state"], id="state-number"),
        pytest.param(with_field("state", blocked="yes"), ["$.blocked"], id="bool-as-str"),
        pytest.param(with_field("counter", value="12"), ["$.value", "int"], id="int-as-str"),
        pytest.param(with_field("counter", value=1.5), ["$.value"], id="int-as-float"),
        pytest.param(with_field("counter", value=-1), ["$.value", ">= 0"], id="negative"),
        pytest.param(with_field("counter", rollover=0), ["$.rollover"], id="rollover-0"),
        pytest.param(with_field("process_value", quality="ok"), ["$.quality"], id="quality"),
        pytest.param(
            with_field("process_value", status_code=-1), ["$.status_code"], id="status-neg"
        ),
        pytest.param(
            with_field("process_value", status_code=2**32), ["$.status_code"], id="status-big"
        ),
        pytest.param(with_field("alarm", severity=0), ["$.severity"], id="severity-0"),
        pytest.param(with_field("alarm", severity=1001), ["$.severity"], id="severity-1001"),
        pytest.param(with_field("batch", transition="paused"), ["$.transition"], id="transition"),
        pytest.param(with_field("batch", parameters={"x": [1]}), ["$.parameters"], id="param-list"),
        pytest.param(with_field("material", quantity=0), ["$.quantity"], id="quantity-0"),
        pytest.param(with_field("material", direction="moved"), ["$.direction"], id="direction"),
        pytest.param(with_field("state", schema_version=0), ["$.schema_version"], id="version-0"),
        pytest.param(
            with_field("state", schema_version="1"), ["$.schema_version"], id="version-str"
        ),
        pytest.param(
            with_field("state", schema_version=2), ["schema_version 2", "newer"], id="newer"
        ),
        pytest.param(
            json.dumps({"kind": "state", "schema_version": 2, "new_shape": True}).encode(),
            ["schema_version 2", "newer"],
            id="newer-other-shape",
        ),
    ],
)
def test_bad_input_becomes_a_dead_letter_saying_why(
    data: bytes | None, fragments: list[str]
) -> None:
    letter = dead(data)
    for fragment in fragments:
        assert fragment in letter.reason, letter.reason
    assert letter.payload_size == len(data or b"")
    assert letter.received_ts.tzinfo is not None


def test_non_utf8_bytes_become_a_dead_letter_with_a_readable_payload() -> None:
    outside = dead(b"\xff\xfe{}")
    assert "invalid JSON" in outside.reason
    assert outside.payload == "\\xff\\xfe{}"
    inside = dead(b'{"kind": "state", "asset": "acme/\xff"}')
    assert "UTF-8" in inside.reason
    assert "acme/\\xff" in inside.payload


def test_huge_garbage_is_cut_but_counted() -> None:
    data = random.Random(7).randbytes(3 * ev.DEAD_LETTER_PAYLOAD_LIMIT)
    letter = dead(data)
    assert letter.payload_truncated
    assert letter.payload_size == len(data)
    assert len(letter.payload) == ev.DEAD_LETTER_PAYLOAD_LIMIT


def test_a_huge_bad_value_does_not_make_a_huge_reason() -> None:
    letter = dead(with_field("state", kind="x" * 100_000))
    assert len(letter.reason) <= 1_001
    assert "$.kind" in letter.reason or letter.reason.endswith("…")


def test_a_dead_letter_is_itself_valid_json_and_round_trips() -> None:
    letter = dead(b"\xff")
    back = msgspec.json.decode(ev.encode(letter), type=DeadLetter)
    assert back == letter
    assert json.loads(ev.encode(letter))["kind"] == "dead_letter"
    assert ev.key(letter) == letter.origin.encode()


def test_dead_letter_id_is_deterministic_over_origin_and_payload() -> None:
    first = ev.new_dead_letter(reason="r1", origin="o", payload=b"x", received_ts=TS)
    again = ev.new_dead_letter(reason="r2", origin="o", payload=b"x", received_ts=INGEST)
    assert first.event_id == again.event_id
    assert first.event_id != ev.new_dead_letter(reason="r1", origin="o2", payload=b"x").event_id
    assert first.event_id != ev.new_dead_letter(reason="r1", origin="o", payload=b"y").event_id
    assert dead(b"{", "p[0]@5").event_id == dead(b"{", "p[0]@5").event_id


def test_dead_letter_takes_a_naive_received_ts_as_utc() -> None:
    letter = ev.new_dead_letter(
        reason="r",
        origin="o",
        payload=b"",
        received_ts=datetime(2024, 5, 1, 8),  # noqa: DTZ001 - the point
    )
    assert letter.received_ts == datetime(2024, 5, 1, 8, tzinfo=UTC)


json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)
field_names = st.sampled_from(
    sorted(
        {f for t in ev.EVENT_TYPES for f in t.__struct_fields__}
        | {"kind", "anything", "parameters"}
    )
)
kinds = st.sampled_from(["state", "counter", "process_value", "alarm", "batch", "material"])


@given(st.binary(max_size=2_000))
def test_decode_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    result = ev.decode(data, "fuzz")
    assert isinstance(result, (DeadLetter, *ev.EVENT_TYPES))


@given(st.dictionaries(field_names, json_values) | json_values)
def test_decode_never_raises_on_arbitrary_json(doc: Any) -> None:
    result = ev.decode(json.dumps(doc).encode(), "fuzz")
    assert isinstance(result, (DeadLetter, *ev.EVENT_TYPES))


@given(kind=kinds, field=field_names, value=json_values)
def test_one_wrong_field_is_named_in_the_reason(kind: str, field: str, value: Any) -> None:
    wire = valid_json(kind)
    assume(field in wire and field != "schema_version")
    assume(value != wire[field])
    result = ev.decode(json.dumps(wire | {field: value}).encode(), "fuzz")
    if isinstance(result, DeadLetter):
        assert f"$.{field}" in result.reason or f"`{field}`" in result.reason, result.reason
    else:
        assert getattr(result, field) == value or field in {"kind", "ts", "ingest_ts"}


# --- PackML and OPC UA mappings ----------------------------------------------------------------

PACKTAGS = {
    "Clearing": 1,
    "Stopped": 2,
    "Starting": 3,
    "Idle": 4,
    "Suspended": 5,
    "Execute": 6,
    "Stopping": 7,
    "Aborting": 8,
    "Aborted": 9,
    "Holding": 10,
    "Held": 11,
    "Unholding": 12,
    "Suspending": 13,
    "Unsuspending": 14,
    "Resetting": 15,
    "Completing": 16,
    "Complete": 17,
}
OPCUA = {
    "Stopped": 0,
    "Resetting": 1,
    "Idle": 2,
    "Starting": 3,
    "Execute": 4,
    "Completing": 5,
    "Complete": 6,
    "Aborting": 7,
    "Aborted": 8,
    "Stopping": 9,
    "Clearing": 10,
    "Suspending": 11,
    "Suspended": 12,
    "Unsuspending": 13,
    "Holding": 14,
    "Held": 15,
    "Unholding": 16,
}


@pytest.mark.parametrize("state", ev.PACKML_STATES)
def test_every_state_maps_in_both_numberings(state: ev.PackMLState) -> None:
    assert ev.packml_state_name(PACKTAGS[state], "packtags") == state
    assert ev.packml_state_name(OPCUA[state], "opcua") == state
    assert ev.packml_state_number(state, "packtags") == PACKTAGS[state]
    assert ev.packml_state_number(state, "opcua") == OPCUA[state]


def test_the_two_numberings_are_consistent_bijections() -> None:
    assert len(ev.PACKML_STATES) == len(set(ev.PACKML_STATES)) == 17
    numberings: list[tuple[ev.StateNumbering, int]] = [("packtags", 1), ("opcua", 0)]
    for numbering, first in numberings:
        names = [ev.packml_state_name(n, numbering) for n in range(first, first + 17)]
        assert set(names) == set(ev.PACKML_STATES)
        assert len(names) == len(set(names))
    assert set(PACKTAGS) == set(OPCUA) == set(ev.PACKML_STATES)


@pytest.mark.parametrize(
    ("number", "numbering"),
    [(0, "packtags"), (18, "packtags"), (-1, "packtags"), (17, "opcua"), (-1, "opcua")],
)
def test_unknown_state_number_is_none(number: int, numbering: ev.StateNumbering) -> None:
    assert ev.packml_state_name(number, numbering) is None


def test_unit_mode_names() -> None:
    assert [ev.unit_mode_name(n) for n in (1, 2, 3, 4, 17)] == [
        "Produce",
        "Maintenance",
        "Manual",
        "User4",
        "User17",
    ]
    assert ev.unit_mode_name(0) is None
    assert ev.unit_mode_name(-3) is None


@pytest.mark.parametrize(
    ("code", "quality"),
    [
        (0x00000000, "good"),  # Good
        (0x00A20000, "good"),  # GoodClamped
        (0x40000000, "uncertain"),  # Uncertain
        (0x408F0000, "uncertain"),  # UncertainInitialValue
        (0x80000000, "bad"),  # Bad
        (0x80310000, "bad"),  # BadNoCommunication
        (0xC0000000, "bad"),  # reserved severity bits: bad
    ],
)
def test_quality_from_status_code(code: int, quality: str) -> None:
    assert ev.quality_from_status_code(code) == quality


def test_a_redelivered_bad_message_gives_the_same_dead_letter_key() -> None:
    """The dead-letter table's key is (received_ts, event_id): with the record's own timestamp
    passed through, a redelivery of the same bad bytes is the same row, not a second one."""
    from datetime import UTC, datetime

    from asbuilt import events as ev

    record_ts = datetime(2026, 3, 2, 6, 0, 1, tzinfo=UTC)
    first = ev.decode(b"{not json", "asbuilt.v1.states[0]@17", received_ts=record_ts)
    again = ev.decode(b"{not json", "asbuilt.v1.states[0]@17", received_ts=record_ts)
    assert isinstance(first, ev.DeadLetter)
    assert (first.received_ts, first.event_id) == (again.received_ts, again.event_id)
