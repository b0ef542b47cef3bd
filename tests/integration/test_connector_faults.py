"""Faults between the plant and the connector, on demand from the simulator, in one run: a
device clock jump, bad status codes, a burst of changes and a server restart. Counters stay
exact (they are cumulative), nothing is dropped silently, every fault is visible."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from asbuilt import events as ev
from tests.conftest import Stack
from tests.integration.test_connector import START, Run, run_plant

pytestmark = pytest.mark.integration

PRESS = "acme/basel/osd/train1/press"
BLISTER = "acme/basel/packaging/line1/blister"
CLOCK_JUMP_AT = START + timedelta(minutes=3)
BAD_AT = START + timedelta(minutes=6)
BURST_AT = START + timedelta(minutes=9)
RESTART_AT = START + timedelta(minutes=12)


@pytest.fixture(scope="module")
def faulty_run(local_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run_plant(
        local_stack.bootstrap,
        tmp_path_factory.mktemp("faults"),
        [
            "--fault", f"clock-jump,at={CLOCK_JUMP_AT.isoformat()},seconds=60",
            "--fault", f"bad-status,at={BAD_AT.isoformat()},seconds=60,asset={PRESS}",
            "--fault", f"burst,at={BURST_AT.isoformat()},asset={BLISTER},count=500",
            "--fault", f"restart,at={RESTART_AT.isoformat()},seconds=3",
        ],
    )  # fmt: skip


def _dead(run: Run) -> list[ev.DeadLetter]:
    return [e for e in run.events["dead_letters"] if isinstance(e, ev.DeadLetter)]


def test_counters_stay_exact_through_every_fault(faulty_run: Run) -> None:
    last: dict[tuple[str, str], int] = {}
    for event in faulty_run.events["counters"]:
        if isinstance(event, ev.CounterSample):
            key = (event.asset, event.counter)
            assert event.value >= last.get(key, 0), f"{key} went backwards"
            last[key] = event.value
    for asset, (processed, defective) in faulty_run.truth.counts.items():
        assert last[(asset, "processed")] == processed, asset
        assert last[(asset, "defective")] == defective, asset


def test_a_device_clock_jump_is_corrected_and_recorded(faulty_run: Run) -> None:
    stamps = [e.ts for kind in ("counters", "states") for e in faulty_run.events[kind]]
    assert all(ts.year > 2000 for ts in stamps)  # no event carries the wrong device time
    jumped = [d for d in _dead(faulty_run) if "implausible (2000-01-01" in d.reason]
    assert jumped, "the clock jump left no trace"
    assert all("used the server timestamp" in d.reason for d in jumped)


def test_bad_status_values_are_dead_lettered_not_used(faulty_run: Run) -> None:
    bad = [d for d in _dead(faulty_run) if "BadSensorFailure" in d.reason]
    assert bad
    assert all(d.reason.startswith(PRESS) for d in bad)


def test_a_burst_arrives_complete(faulty_run: Run) -> None:
    signal = next(
        e.signal
        for e in faulty_run.events["process_values"]
        if isinstance(e, ev.ProcessValue) and e.asset == BLISTER
    )
    burst = [
        e
        for e in faulty_run.events["process_values"]
        if isinstance(e, ev.ProcessValue)
        and e.asset == BLISTER
        and BURST_AT < e.ts <= BURST_AT + timedelta(milliseconds=1)
    ]
    assert len({e.event_id for e in burst}) == 500, signal


def test_a_server_restart_is_survived_and_duplicates_share_their_ids(faulty_run: Run) -> None:
    assert faulty_run.metrics["connector"]["reconnects"] >= 1
    for kind in ("states", "counters"):
        # Values re-sent after the reconnect repeat an event exactly (only the ingest time
        # differs): same id, so the historian stores them once. No two different facts share
        # an id.
        facts: dict[str, object] = {}
        for event in faulty_run.events[kind]:
            assert not isinstance(event, ev.DeadLetter)
            fact = msgspec.structs.replace(event, ingest_ts=event.ts)
            assert facts.setdefault(event.event_id, fact) == fact
