"""OPC UA data changes → asbuilt events: kinds, bad input, timestamp policy, ids, state assembly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from asyncua import ua
from hypothesis import given, settings
from hypothesis import strategies as st

from asbuilt import events as ev
from connectors.opcua.nodemap import Signal
from connectors.opcua.translate import (
    Notification,
    StateAssembler,
    TimestampPolicy,
    event_time,
    translate,
)

pytestmark = pytest.mark.unit

ASSET = "acme/basel/pack/line1/filler"
RECEIVED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
SOURCE = RECEIVED - timedelta(seconds=2)
SERVER = RECEIVED - timedelta(seconds=1)
CLOCK_RESET = datetime(2000, 1, 1, tzinfo=UTC)
POLICY = TimestampPolicy()

BAD_SENSOR = ua.StatusCodes.BadSensorFailure
UNCERTAIN = ua.StatusCodes.UncertainLastUsableValue


def sig(kind: str, **kw: Any) -> Signal:
    fields: dict[str, Any] = {"node": f"ns=2;s=Filler.{kind}", "asset": ASSET, "kind": kind}
    if kind == "counter":
        fields["name"] = "good"
    if kind == "process_value":
        fields |= {"name": "seal_temperature", "unit": "degC"}
    return Signal(**(fields | kw))


def note(
    signal: Signal,
    value: Any,
    status: int = 0,
    source_ts: datetime | None = SOURCE,
    server_ts: datetime | None = SERVER,
    received: datetime = RECEIVED,
) -> Notification:
    return Notification(signal, value, status, source_ts, server_ts, received)


def only_dead(n: Notification) -> list[ev.DeadLetter]:
    """Translate ``n``, which must give no event and no part; return its dead letters."""
    event, part, dead = translate(n, POLICY)
    assert event is None
    assert part is None
    assert dead
    assert all(isinstance(d, ev.DeadLetter) for d in dead)
    return dead


def clean_part(n: Notification) -> tuple[str, Any]:
    event, part, dead = translate(n, POLICY)
    assert event is None
    assert dead == []
    assert part is not None
    return part


# --- state kinds -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("numbering", "number", "state"),
    [
        ("opcua", 0, "Stopped"),
        ("opcua", 2, "Idle"),
        ("opcua", 4, "Execute"),
        ("opcua", 15, "Held"),
        ("opcua", 16, "Unholding"),
        ("packtags", 1, "Clearing"),
        ("packtags", 4, "Idle"),
        ("packtags", 6, "Execute"),
        ("packtags", 11, "Held"),
        ("packtags", 17, "Complete"),
    ],
)
def test_state_numbers_are_read_in_the_maps_numbering(
    numbering: str, number: int, state: str
) -> None:
    assert clean_part(note(sig("state", numbering=numbering), number)) == ("state", state)


def test_the_same_number_means_different_states_in_the_two_numberings() -> None:
    assert clean_part(note(sig("state", numbering="opcua"), 4)) == ("state", "Execute")
    assert clean_part(note(sig("state", numbering="packtags"), 4)) == ("state", "Idle")


@pytest.mark.parametrize("numbering", ["opcua", "packtags"])
@pytest.mark.parametrize("name", ["Execute", "Held", "Aborted", "Clearing"])
def test_a_state_given_by_name_is_taken_whatever_the_numbering(numbering: str, name: str) -> None:
    assert clean_part(note(sig("state", numbering=numbering), name)) == ("state", name)


@pytest.mark.parametrize(
    ("numbering", "number"), [("opcua", 17), ("opcua", -1), ("packtags", 0), ("packtags", 18)]
)
def test_an_unknown_packml_number_is_dead_lettered(numbering: str, number: int) -> None:
    [dead] = only_dead(note(sig("state", numbering=numbering), number))
    assert f"unknown PackML state number {number}" in dead.reason
    assert numbering in dead.reason
    assert dead.reason.startswith(ASSET)
    assert dead.origin == "opcua ns=2;s=Filler.state"


@pytest.mark.parametrize("value", ["Running", "execute", 4.0, True, None, b"\x04"])
def test_a_state_that_is_neither_a_number_nor_a_state_name_is_dead_lettered(value: Any) -> None:
    [dead] = only_dead(note(sig("state"), value))
    assert "PackML state must be a number or a state name" in dead.reason
    assert repr(value) in dead.reason


@pytest.mark.parametrize(
    ("number", "mode"),
    [(1, "Produce"), (2, "Maintenance"), (3, "Manual"), (4, "User4"), (17, "User17")],
)
def test_unit_mode_numbers_including_user_defined_modes(number: int, mode: str) -> None:
    assert clean_part(note(sig("mode"), number)) == ("mode", mode)


def test_a_unit_mode_given_by_name_is_kept() -> None:
    assert clean_part(note(sig("mode"), "Cleaning")) == ("mode", "Cleaning")


@pytest.mark.parametrize("number", [0, -1])
def test_a_unit_mode_number_below_one_is_dead_lettered(number: int) -> None:
    [dead] = only_dead(note(sig("mode"), number))
    assert f"unknown unit mode number {number}" in dead.reason


@pytest.mark.parametrize("value", ["", None, 2.0, False])
def test_a_unit_mode_of_the_wrong_type_is_dead_lettered(value: Any) -> None:
    [dead] = only_dead(note(sig("mode"), value))
    assert "unit mode must be a number or a name" in dead.reason


@pytest.mark.parametrize(
    ("value", "reason"), [("", None), (None, None), (0, None), ("100.20", "100.20"), (7, "7")]
)
def test_stop_reason_empty_means_none(value: Any, reason: str | None) -> None:
    assert clean_part(note(sig("stop_reason"), value)) == ("stop_reason", reason)


def test_a_stop_reason_of_the_wrong_type_is_dead_lettered() -> None:
    [dead] = only_dead(note(sig("stop_reason"), 1.5))
    assert "stop reason must be a code" in dead.reason


@pytest.mark.parametrize("value", ["Jam at infeed", "a" * 65, "100..20"])
def test_a_stop_reason_that_breaks_the_contract_is_dead_lettered(value: str) -> None:
    [dead] = only_dead(note(sig("stop_reason"), value))
    assert "stop reason" in dead.reason


def test_a_bad_stop_reason_never_makes_the_assembler_raise() -> None:
    asm = StateAssembler()
    for n in (note(sig("state"), 4), note(sig("stop_reason"), "Jam at infeed")):
        _, part, _ = translate(n, POLICY)
        if part is not None:
            asm.add(ASSET, part, SOURCE, RECEIVED, 0.0)
    [change] = asm.flush(1.0, force=True)
    assert change.state == "Execute"


def test_a_unit_mode_name_that_breaks_the_contract_is_dead_lettered() -> None:
    [dead] = only_dead(note(sig("mode"), "M" * 300))
    assert "mode" in dead.reason


@pytest.mark.parametrize("kind", ["blocked", "starved"])
@pytest.mark.parametrize("value", [True, False])
def test_interlocks_are_booleans(kind: str, value: bool) -> None:
    assert clean_part(note(sig(kind), value)) == (kind, value)


@pytest.mark.parametrize("kind", ["blocked", "starved"])
@pytest.mark.parametrize("value", [1, 0, "true", None])
def test_an_interlock_that_is_not_a_boolean_is_dead_lettered(kind: str, value: Any) -> None:
    [dead] = only_dead(note(sig(kind), value))
    assert f"{kind} must be a boolean" in dead.reason
    assert repr(value) in dead.reason


@pytest.mark.parametrize("kind", ["state", "mode", "stop_reason", "blocked"])
def test_a_state_part_with_a_bad_status_is_dead_lettered_naming_the_status(kind: str) -> None:
    value = {"state": 4, "mode": 1, "stop_reason": "", "blocked": True}[kind]
    [dead] = only_dead(note(sig(kind), value, status=BAD_SENSOR))
    assert "BadSensorFailure" in dead.reason
    assert "value not used" in dead.reason
    assert "0x808C0000" in dead.payload


# --- counters ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, 1234, 2**63 - 1])
def test_a_counter_becomes_a_counter_sample(value: int) -> None:
    event, part, dead = translate(note(sig("counter"), value), POLICY)
    assert part is None
    assert dead == []
    assert isinstance(event, ev.CounterSample)
    assert (event.asset, event.counter, event.value) == (ASSET, "good", value)
    assert (event.ts, event.ingest_ts) == (SOURCE, RECEIVED)
    assert event.resettable is False
    assert event.rollover is None


def test_a_resettable_counter_carries_its_rollover() -> None:
    event, _, _ = translate(note(sig("counter", resettable=True, rollover=65_536), 65_535), POLICY)
    assert isinstance(event, ev.CounterSample)
    assert (event.resettable, event.rollover, event.value) == (True, 65_536, 65_535)


@pytest.mark.parametrize("value", ["12", True, False, -1, 12.0, 1.5, None, [12]])
def test_a_counter_that_is_not_a_non_negative_integer_is_dead_lettered(value: Any) -> None:
    [dead] = only_dead(note(sig("counter"), value))
    assert "counter good: not a non-negative integer" in dead.reason
    assert repr(value) in dead.reason


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (BAD_SENSOR, "BadSensorFailure"),
        (UNCERTAIN, "UncertainLastUsableValue"),
        (ua.StatusCodes.BadNoCommunication, "BadNoCommunication"),
    ],
)
def test_a_counter_with_a_non_good_status_is_dead_lettered(status: int, name: str) -> None:
    [dead] = only_dead(note(sig("counter"), 100, status=status))
    assert name in dead.reason
    assert "good" in dead.reason  # the counter's name


def test_a_counter_with_a_good_sub_status_is_still_good() -> None:
    event, _, dead = translate(note(sig("counter"), 5, status=ua.StatusCodes.GoodOverload), POLICY)
    assert isinstance(event, ev.CounterSample)
    assert dead == []


# --- process values ----------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [(21.5, 21.5), (7, 7.0), (-40.25, -40.25)])
def test_a_process_value_becomes_a_process_value_event(value: float, expected: float) -> None:
    event, part, dead = translate(note(sig("process_value"), value), POLICY)
    assert part is None
    assert dead == []
    assert isinstance(event, ev.ProcessValue)
    assert (event.signal, event.value, event.unit) == ("seal_temperature", expected, "degC")
    assert (event.quality, event.status_code, event.ts) == ("good", 0, SOURCE)


@pytest.mark.parametrize(
    ("status", "quality"),
    [(UNCERTAIN, "uncertain"), (BAD_SENSOR, "bad"), (ua.StatusCodes.BadOutOfRange, "bad")],
)
def test_a_process_value_with_a_non_good_status_is_kept_with_its_quality(
    status: int, quality: str
) -> None:
    event, _, dead = translate(note(sig("process_value"), 80.0, status=status), POLICY)
    assert dead == []
    assert isinstance(event, ev.ProcessValue)
    assert (event.quality, event.status_code, event.value) == (quality, status, 80.0)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_process_value_is_dead_lettered(value: float) -> None:
    [dead] = only_dead(note(sig("process_value"), value))
    assert "seal_temperature: not a finite number" in dead.reason


@pytest.mark.parametrize("value", ["21.5", None, True, b"x", [1.0]])
def test_a_process_value_that_is_not_a_number_is_dead_lettered(value: Any) -> None:
    [dead] = only_dead(note(sig("process_value"), value))
    assert "seal_temperature: not a number" in dead.reason
    assert repr(value) in dead.reason


# --- timestamps --------------------------------------------------------------------------------


def test_a_plausible_source_timestamp_is_the_event_time() -> None:
    event, _, dead = translate(note(sig("counter"), 1), POLICY)
    assert event is not None
    assert event.ts == SOURCE
    assert dead == []


def test_a_source_timestamp_a_little_ahead_within_max_future_is_kept() -> None:
    ahead = RECEIVED + timedelta(minutes=4)
    event, _, dead = translate(note(sig("counter"), 1, source_ts=ahead), POLICY)
    assert event is not None
    assert event.ts == ahead
    assert dead == []


def test_a_missing_source_timestamp_takes_the_server_timestamp_and_says_so() -> None:
    event, _, dead = translate(note(sig("counter"), 1, source_ts=None), POLICY)
    assert event is not None
    assert event.ts == SERVER
    [d] = dead
    assert "source timestamp missing" in d.reason
    assert "server timestamp" in d.reason


def test_a_clock_jump_to_2000_takes_the_server_timestamp_when_it_is_plausible() -> None:
    event, _, dead = translate(note(sig("process_value"), 1.0, source_ts=CLOCK_RESET), POLICY)
    assert isinstance(event, ev.ProcessValue)
    assert event.ts == SERVER
    [d] = dead
    assert "implausible (2000-01-01" in d.reason
    assert "used the server timestamp" in d.reason


@pytest.mark.parametrize("server_ts", [None, CLOCK_RESET, RECEIVED + timedelta(days=1)])
def test_a_clock_jump_without_a_plausible_server_timestamp_takes_the_receive_time(
    server_ts: datetime | None,
) -> None:
    n = note(sig("counter"), 9, source_ts=CLOCK_RESET, server_ts=server_ts)
    event, _, dead = translate(n, POLICY)
    assert isinstance(event, ev.CounterSample)
    assert event.ts == RECEIVED
    assert event.value == 9
    [d] = dead
    assert "implausible (2000-01-01" in d.reason
    assert "used receive time" in d.reason


def test_a_source_timestamp_far_in_the_future_is_replaced() -> None:
    future = RECEIVED + timedelta(days=365)
    event, _, dead = translate(note(sig("counter"), 1, source_ts=future), POLICY)
    assert event is not None
    assert event.ts == SERVER
    [d] = dead
    assert f"implausible ({future.isoformat()})" in d.reason


def test_the_plausibility_window_bounds_are_inclusive_and_configurable() -> None:
    policy = TimestampPolicy(max_future=timedelta(seconds=10), max_age=timedelta(hours=1))
    tiny = timedelta(microseconds=1)
    for ts, ok in [
        (RECEIVED + timedelta(seconds=10), True),
        (RECEIVED + timedelta(seconds=10) + tiny, False),
        (RECEIVED - timedelta(hours=1), True),
        (RECEIVED - timedelta(hours=1) - tiny, False),
    ]:
        n = note(sig("counter"), 1, source_ts=ts, server_ts=None)
        assert event_time(n, policy)[0] == (ts if ok else RECEIVED), ts


def test_an_old_source_timestamp_beyond_max_age_is_replaced() -> None:
    old = RECEIVED - timedelta(days=8)
    ts, why = event_time(note(sig("counter"), 1, source_ts=old), POLICY)
    assert ts == SERVER
    assert why is not None
    assert "implausible" in why


def test_a_state_part_with_a_bad_timestamp_is_kept_and_the_fault_dead_lettered() -> None:
    n = note(sig("state"), 4, source_ts=CLOCK_RESET)
    event, part, dead = translate(n, POLICY)
    assert (event, part) == (None, ("state", "Execute"))
    [d] = dead
    assert "implausible" in d.reason
    assert event_time(n, POLICY)[0] == SERVER


def test_bad_status_and_missing_timestamp_give_two_dead_letters() -> None:
    dead = only_dead(note(sig("counter"), 5, status=BAD_SENSOR, source_ts=None))
    assert len(dead) == 2
    reasons = " | ".join(d.reason for d in dead)
    assert "source timestamp missing" in reasons
    assert "BadSensorFailure" in reasons


# --- deterministic ids -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value"), [("counter", 42), ("process_value", 3.25), ("process_value", 7)]
)
def test_a_resent_notification_gets_the_same_event_id(kind: str, value: Any) -> None:
    first, _, _ = translate(note(sig(kind), value), POLICY)
    later = RECEIVED + timedelta(seconds=30)  # re-sent after a reconnect
    again, _, _ = translate(note(sig(kind), value, received=later, server_ts=later), POLICY)
    assert first is not None
    assert again is not None
    assert again.event_id == first.event_id
    assert again.ingest_ts == later


def test_a_different_value_or_time_gets_a_different_event_id() -> None:
    ids = {
        e.event_id
        for e, _, _ in (
            translate(note(sig("counter"), 42), POLICY),
            translate(note(sig("counter"), 43), POLICY),
            translate(note(sig("counter"), 42, source_ts=SOURCE + timedelta(1e-3)), POLICY),
            translate(note(sig("counter", name="defective"), 42), POLICY),
        )
        if e is not None
    }
    assert len(ids) == 4


def test_the_same_instant_in_another_time_zone_gets_the_same_event_id() -> None:
    cest = SOURCE.astimezone(timezone(timedelta(hours=2)))
    a, _, _ = translate(note(sig("counter"), 42), POLICY)
    b, _, _ = translate(note(sig("counter"), 42, source_ts=cest), POLICY)
    assert a is not None
    assert b is not None
    assert a.event_id == b.event_id


def test_a_resent_bad_notification_gets_the_same_dead_letter_id() -> None:
    [a] = only_dead(note(sig("counter"), -1))
    [b] = only_dead(note(sig("counter"), -1, received=RECEIVED + timedelta(minutes=1)))
    assert a.event_id == b.event_id


# --- never raises ------------------------------------------------------------------------------

_any_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),  # OPC UA Int64 .. UInt64
    st.floats(),
    st.text(max_size=80),
    st.binary(max_size=16),
    st.sampled_from(ev.PACKML_STATES),
    st.lists(st.integers(min_value=-5, max_value=5), max_size=3),
    st.builds(ua.LocalizedText, st.text(max_size=10)),
)
_status = st.one_of(
    st.integers(min_value=0, max_value=0xFFFF_FFFF),
    st.sampled_from([0, UNCERTAIN, BAD_SENSOR, ua.StatusCodes.GoodOverload]),
)
_offsets = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-14), max_value=timedelta(hours=14))
)
_any_ts = st.one_of(
    st.none(),
    st.datetimes(timezones=_offsets),
    st.timedeltas(min_value=timedelta(days=-9), max_value=timedelta(days=1)).map(
        lambda d: RECEIVED + d
    ),
)
_signals = st.sampled_from(
    [
        sig("state", numbering="opcua"),
        sig("state", numbering="packtags"),
        sig("mode"),
        sig("stop_reason"),
        sig("blocked"),
        sig("starved"),
        sig("counter"),
        sig("counter", resettable=True, rollover=1000),
        sig("process_value"),
    ]
)


@settings(max_examples=400, deadline=None)
@given(signal=_signals, value=_any_value, status=_status, source=_any_ts, server=_any_ts)
def test_translate_never_raises_and_always_says_something(
    signal: Signal, value: Any, status: int, source: datetime | None, server: datetime | None
) -> None:
    event, part, dead = translate(note(signal, value, status, source, server), POLICY)
    assert event is None or part is None
    assert event is not None or part is not None or len(dead) >= 1
    assert all(isinstance(d, ev.DeadLetter) for d in dead)
    ts, why = event_time(note(signal, value, status, source, server), POLICY)
    if why is not None:  # a substituted timestamp is always dead-lettered
        assert any(why in d.reason for d in dead)
    if event is not None:
        assert event.ts == ts
        assert ev.decode(ev.encode(event), "test") == event  # a valid contract event


# --- state assembly ----------------------------------------------------------------------------

T1 = SOURCE
T2 = SOURCE + timedelta(seconds=1)
T3 = SOURCE + timedelta(seconds=2)


def test_parts_sharing_a_timestamp_become_one_state_change_after_settling() -> None:
    asm = StateAssembler(settle_s=0.2)
    r2 = RECEIVED + timedelta(milliseconds=5)
    assert asm.add(ASSET, ("state", "Held"), T1, RECEIVED, 0.00) == []
    assert asm.add(ASSET, ("mode", "Manual"), T1, r2, 0.01) == []
    assert asm.add(ASSET, ("stop_reason", "100.20"), T1, r2, 0.02) == []
    assert asm.add(ASSET, ("blocked", True), T1, r2, 0.03) == []
    assert asm.add(ASSET, ("starved", False), T1, r2, 0.04) == []
    assert asm.flush(0.10) == []  # not settled yet
    [change] = asm.flush(0.25)
    assert isinstance(change, ev.StateChange)
    assert (change.asset, change.ts, change.ingest_ts) == (ASSET, T1, RECEIVED)
    assert (change.state, change.mode, change.stop_reason) == ("Held", "Manual", "100.20")
    assert (change.blocked, change.starved) == (True, False)
    assert asm.flush(10.0) == []  # emitted once


def test_settling_counts_from_the_last_part_of_the_group() -> None:
    asm = StateAssembler(settle_s=0.2)
    asm.add(ASSET, ("state", "Execute"), T1, RECEIVED, 0.0)
    asm.add(ASSET, ("mode", "Produce"), T1, RECEIVED, 0.15)
    assert asm.flush(0.30) == []
    assert len(asm.flush(0.36)) == 1


def test_a_newer_timestamp_does_not_close_the_previous_group_before_it_settles() -> None:
    asm = StateAssembler(settle_s=0.2)
    asm.add(ASSET, ("state", "Execute"), T1, RECEIVED, 0.0)
    asm.add(ASSET, ("mode", "Manual"), T1, RECEIVED, 0.0)
    assert asm.add(ASSET, ("state", "Held"), T2, RECEIVED, 0.01) == []  # T1 may still grow
    asm.add(ASSET, ("stop_reason", "7"), T2, RECEIVED, 0.01)
    assert asm.flush(0.1) == []
    [first] = asm.flush(0.205)  # T1 settled, T2 not yet
    [second] = asm.flush(0.25)
    assert (first.ts, first.state, first.mode, first.stop_reason) == (T1, "Execute", "Manual", None)
    assert (second.ts, second.state, second.mode, second.stop_reason) == (T2, "Held", "Manual", "7")


def test_a_part_older_than_the_latest_group_only_updates_the_snapshot() -> None:
    asm = StateAssembler()
    asm.add(ASSET, ("state", "Execute"), T2, RECEIVED, 0.0)
    [change] = asm.flush(1.0, force=True)
    assert change.blocked is False
    assert asm.add(ASSET, ("blocked", True), T1, RECEIVED, 1.0) == []
    assert asm.flush(5.0, force=True) == []  # no StateChange of its own
    asm.add(ASSET, ("state", "Held"), T3, RECEIVED, 5.0)
    [later] = asm.flush(6.0, force=True)
    assert (later.ts, later.state, later.blocked) == (T3, "Held", True)


def test_an_older_part_joins_the_open_group_without_an_extra_change() -> None:
    asm = StateAssembler()
    asm.add(ASSET, ("state", "Execute"), T2, RECEIVED, 0.0)
    assert asm.add(ASSET, ("starved", True), T1, RECEIVED, 0.0) == []
    [change] = asm.flush(1.0, force=True)
    assert (change.ts, change.starved) == (T2, True)


def test_values_resent_after_a_reconnect_add_no_new_state_change() -> None:
    asm = StateAssembler()
    emitted: list[ev.StateChange] = []
    live = [
        (("state", "Execute"), T1),
        (("mode", "Manual"), T1),
        (("stop_reason", None), T1),
        (("blocked", True), T2),
        (("state", "Suspended"), T3),
        (("stop_reason", "12"), T3),
    ]
    for part, ts in live:
        emitted += asm.add(ASSET, part, ts, RECEIVED, 0.0)
    emitted += asm.flush(1.0, force=True)
    assert [(c.ts, c.state) for c in emitted] == [
        (T1, "Execute"),
        (T2, "Execute"),
        (T3, "Suspended"),
    ]
    # reconnect: the server re-sends every current value with the time of its last change
    later = RECEIVED + timedelta(minutes=1)
    resent: list[ev.StateChange] = []
    for part, ts in [
        (("mode", "Manual"), T1),
        (("blocked", True), T2),
        (("state", "Suspended"), T3),
        (("stop_reason", "12"), T3),
        (("starved", False), T1),
    ]:
        resent += asm.add(ASSET, part, ts, later, 2.0)
    resent += asm.flush(3.0, force=True)
    assert {c.event_id for c in resent} <= {c.event_id for c in emitted}


def test_values_resent_to_a_fresh_assembler_make_no_change_with_an_invented_mode() -> None:
    # The plant: state Execute since T1 (mode was Maintenance then), mode Manual since T2.
    # The connector tells the assembler which state parts the node map has for each asset.
    asm = StateAssembler(required={ASSET: frozenset({"state", "mode"})})
    out = asm.add(ASSET, ("state", "Execute"), T1, RECEIVED, 0.0)
    out += asm.add(ASSET, ("mode", "Manual"), T2, RECEIVED, 0.0)
    out += asm.flush(1.0, force=True)
    assert all(c.mode == "Manual" for c in out), [(c.ts, c.mode) for c in out]


def test_nothing_is_emitted_until_the_state_is_known() -> None:
    asm = StateAssembler()
    asm.add(ASSET, ("mode", "Maintenance"), T1, RECEIVED, 0.0)
    asm.add(ASSET, ("blocked", True), T1, RECEIVED, 0.0)
    assert asm.flush(5.0) == []
    assert asm.flush(5.0, force=True) == []
    asm.add(ASSET, ("state", "Stopped"), T2, RECEIVED, 5.0)
    [change] = asm.flush(5.0, force=True)
    assert (change.ts, change.state, change.mode, change.blocked) == (
        T2,
        "Stopped",
        "Maintenance",
        True,
    )


def test_force_flush_emits_an_open_group_at_once() -> None:
    asm = StateAssembler(settle_s=60.0)
    asm.add(ASSET, ("state", "Aborted"), T1, RECEIVED, 0.0)
    assert asm.flush(0.0) == []
    [change] = asm.flush(0.0, force=True)
    assert change.state == "Aborted"
    assert asm.flush(0.0, force=True) == []


def test_assets_are_assembled_independently() -> None:
    other = "acme/basel/pack/line1/cartoner"
    asm = StateAssembler()
    asm.add(ASSET, ("state", "Execute"), T1, RECEIVED, 0.0)
    asm.add(other, ("state", "Held"), T2, RECEIVED, 0.0)
    asm.add(other, ("blocked", True), T2, RECEIVED, 0.0)
    changes = {c.asset: c for c in asm.flush(1.0)}
    assert changes[ASSET].state == "Execute"
    assert changes[ASSET].blocked is False
    assert (changes[other].state, changes[other].blocked) == ("Held", True)


def test_the_same_group_assembled_twice_gets_the_same_event_id() -> None:
    ids = []
    for now in (0.0, 100.0):
        asm = StateAssembler()
        asm.add(ASSET, ("state", "Execute"), T1, RECEIVED + timedelta(seconds=now), now)
        asm.add(ASSET, ("mode", "Produce"), T1, RECEIVED + timedelta(seconds=now), now)
        [change] = asm.flush(now, force=True)
        ids.append(change.event_id)
    assert ids[0] == ids[1]


# --- state assembly: parts of one instant split across publish responses --------------------------
# A server cuts its publish responses by time, not by instant: with the simulator at 300x (2 s of
# plant time in 7 ms) the parts of one instant can arrive in two responses, a part of T after a
# part of a later T'. Each add() below is its own response, all within settle_s of each other.

SETUP_AT = datetime(2026, 11, 26, 8, 58, 40, tzinfo=UTC)
RESTART_AT = datetime(2026, 11, 26, 8, 58, 59, tzinfo=UTC)


def _emitted(asm: StateAssembler, now: float) -> list[tuple[Any, ...]]:
    out = asm.flush(now)
    assert all(isinstance(c, ev.StateChange) for c in out)
    return [(c.ts, c.state, c.mode, c.stop_reason) for c in out if isinstance(c, ev.StateChange)]


def test_a_late_part_of_an_instant_joins_it_after_a_part_of_a_later_instant() -> None:
    # The ground-truth failure: truth Complete/Manual/300.20 at 08:58:40, Execute/Manual at
    # 08:58:59; the mode change of 08:58:40 arrived after the state of 08:58:59, and both
    # StateChanges went out with the old mode Produce (ten minutes of setup became production).
    asm = StateAssembler(
        settle_s=0.2, required={ASSET: frozenset({"state", "mode", "stop_reason"})}
    )
    before = SETUP_AT - timedelta(minutes=5)
    asm.add(ASSET, ("state", "Execute"), before, RECEIVED, 0.0)
    asm.add(ASSET, ("mode", "Produce"), before, RECEIVED, 0.0)
    asm.add(ASSET, ("stop_reason", None), before, RECEIVED, 0.0)
    assert _emitted(asm, 1.0) == [(before, "Execute", "Produce", None)]

    assert asm.add(ASSET, ("state", "Complete"), SETUP_AT, RECEIVED, 2.000) == []
    assert asm.add(ASSET, ("stop_reason", "300.20"), SETUP_AT, RECEIVED, 2.000) == []
    assert asm.add(ASSET, ("state", "Execute"), RESTART_AT, RECEIVED, 2.007) == []  # next response
    assert _emitted(asm, 2.05) == []
    assert (
        asm.add(ASSET, ("mode", "Manual"), SETUP_AT, RECEIVED, 2.100) == []
    )  # late, 2 responses on
    assert _emitted(asm, 2.25) == []  # the 08:58:40 group grew at 2.100: not settled yet
    assert _emitted(asm, 2.31) == [
        (SETUP_AT, "Complete", "Manual", "300.20"),
        (RESTART_AT, "Execute", "Manual", "300.20"),
    ]
    assert asm.flush(10.0, force=True) == []


def test_an_open_older_group_holds_back_a_settled_newer_one() -> None:
    asm = StateAssembler(settle_s=0.2)
    asm.add(ASSET, ("state", "Held"), T1, RECEIVED, 0.0)
    asm.add(ASSET, ("state", "Execute"), T2, RECEIVED, 0.0)
    asm.add(ASSET, ("blocked", True), T1, RECEIVED, 0.15)
    assert asm.flush(0.21) == []  # T2 settled, but T1 must go first
    assert [(c.ts, c.state, c.blocked) for c in asm.flush(0.36)] == [
        (T1, "Held", True),
        (T2, "Execute", True),
    ]


def test_each_group_carries_the_state_as_of_its_own_instant() -> None:
    # The same part changed twice, the newer value arriving first: T1 keeps the older value,
    # T2 the newer one; a late value never overwrites a later one.
    asm = StateAssembler()
    asm.add(ASSET, ("state", "Execute"), T1, RECEIVED, 0.0)
    asm.add(ASSET, ("mode", "Maintenance"), T3, RECEIVED, 0.0)
    asm.add(ASSET, ("state", "Held"), T2, RECEIVED, 0.0)
    asm.add(ASSET, ("mode", "Manual"), T1, RECEIVED, 0.1)
    assert _emitted(asm, 1.0) == [
        (T1, "Execute", "Manual", None),
        (T2, "Held", "Manual", None),
        (T3, "Held", "Maintenance", None),
    ]


def test_a_late_part_of_an_unseen_instant_after_the_last_emitted_makes_its_own_change() -> None:
    asm = StateAssembler()
    asm.add(ASSET, ("state", "Execute"), T1, RECEIVED, 0.0)
    assert _emitted(asm, 1.0) == [(T1, "Execute", "Produce", None)]
    asm.add(ASSET, ("state", "Held"), T3, RECEIVED, 2.0)
    asm.add(ASSET, ("stop_reason", "12"), T2, RECEIVED, 2.1)  # T1 < T2 < T3, T3 still open
    assert _emitted(asm, 3.0) == [
        (T2, "Execute", "Produce", "12"),
        (T3, "Held", "Produce", "12"),
    ]


def test_a_part_arriving_after_its_group_went_out_changes_nothing_already_sent() -> None:
    asm = StateAssembler(settle_s=0.2)
    asm.add(ASSET, ("state", "Held"), T1, RECEIVED, 0.0)
    assert _emitted(asm, 0.3) == [(T1, "Held", "Produce", None)]
    # later than settle_s: no second, different StateChange at T1
    assert asm.add(ASSET, ("stop_reason", "7"), T1, RECEIVED, 0.5) == []
    assert asm.flush(5.0, force=True) == []
    asm.add(ASSET, ("state", "Execute"), T2, RECEIVED, 6.0)
    assert _emitted(asm, 7.0) == [(T2, "Execute", "Produce", "7")]


def test_a_resent_older_value_does_not_replace_a_newer_one() -> None:
    asm = StateAssembler()
    asm.add(ASSET, ("state", "Execute"), T1, RECEIVED, 0.0)
    asm.add(ASSET, ("mode", "Produce"), T1, RECEIVED, 0.0)
    asm.add(ASSET, ("mode", "Manual"), T2, RECEIVED, 0.0)
    assert len(asm.flush(1.0)) == 2
    assert asm.add(ASSET, ("mode", "Produce"), T1, RECEIVED, 2.0) == []  # stale, after the fact
    asm.add(ASSET, ("state", "Held"), T3, RECEIVED, 3.0)
    assert _emitted(asm, 4.0) == [(T3, "Held", "Manual", None)]


_FIELDS = {
    "state": st.sampled_from(["Execute", "Held", "Complete", "Suspended"]),
    "mode": st.sampled_from(["Produce", "Manual", "Maintenance"]),
    "stop_reason": st.sampled_from([None, "100.20", "300.20"]),
    "blocked": st.booleans(),
    "starved": st.booleans(),
}


@st.composite
def _parts_and_arrival(draw: st.DrawFn) -> tuple[list[tuple[int, str, Any]], list[int]]:
    """Distinct (second, part) pairs with values, and an arrival order (a permutation)."""
    keys = draw(
        st.lists(
            st.tuples(st.integers(0, 6), st.sampled_from(sorted(_FIELDS))),
            unique=True,
            min_size=1,
            max_size=20,
        )
    )
    parts = [(sec, name, draw(_FIELDS[name])) for sec, name in keys]
    return parts, draw(st.permutations(range(len(parts))))


@settings(max_examples=200, deadline=None)
@given(case=_parts_and_arrival())
def test_arrival_order_within_the_settle_time_does_not_matter(
    case: tuple[list[tuple[int, str, Any]], list[int]],
) -> None:
    parts, order = case
    asm = StateAssembler(settle_s=0.2)
    for step, i in enumerate(order):
        sec, name, value = parts[i]
        asm.add(ASSET, (name, value), T1 + timedelta(seconds=sec), RECEIVED, step * 0.001)
    got = asm.flush(1.0)
    # the model: every instant, in time order, with all parts up to it applied
    snapshot: dict[str, Any] = {}
    want = []
    for sec in sorted({sec for sec, _, _ in parts}):
        snapshot |= {name: value for s, name, value in parts if s == sec}
        if "state" in snapshot:
            want.append(
                ev.new_state_change(
                    asset=ASSET,
                    ts=T1 + timedelta(seconds=sec),
                    state=snapshot["state"],
                    mode=snapshot.get("mode") or ev.MODE_PRODUCE,
                    stop_reason=snapshot.get("stop_reason"),
                    blocked=snapshot.get("blocked", False),
                    starved=snapshot.get("starved", False),
                    ingest_ts=RECEIVED,
                )
            )
    assert [c.event_id for c in got] == [c.event_id for c in want]
    assert got == want
