"""Simulator → connector → broker, end to end over real OPC UA and the real broker, compared
with the simulator's ground truth: every asset's events complete, in order, counts exact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from confluent_kafka import Consumer, TopicPartition

from asbuilt import events as ev
from asbuilt import kafka, topics
from simulator.truth import Truth
from tests.conftest import Stack, free_port

pytestmark = pytest.mark.integration

# Monday of this week, 06:40 or 07:40 in Zurich: the early shift is running. Recent, so the
# connector's timestamp plausibility policy (at most 7 days old) accepts it.
_TODAY = datetime.now(UTC).replace(hour=5, minute=40, second=0, microsecond=0)
START = _TODAY - timedelta(days=_TODAY.weekday())
SPAN = timedelta(minutes=20)
SPEED = 300.0  # simulated seconds per second: 20 simulated minutes in 4 s


@dataclass
class Run:
    truth: Truth
    events: dict[str, list[ev.Event | ev.DeadLetter]]  # topic kind -> events in offset order
    metrics: dict[str, dict[str, object]]


def _wait_for(path: Path, text: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        assert proc.poll() is None, path.read_text()
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared in {path}:\n{path.read_text()}")


def consume_all(bootstrap: str, prefix: str) -> dict[str, list[ev.Event | ev.DeadLetter]]:
    consumer = Consumer(kafka.consumer_config(bootstrap, "test-reader"))
    out: dict[str, list[ev.Event | ev.DeadLetter]] = {}
    try:
        for kind in topics.TOPIC_KINDS:
            topic = topics.topic_name(kind, prefix)
            parts = consumer.list_topics(topic, timeout=5).topics[topic].partitions
            consumer.assign([TopicPartition(topic, p, 0) for p in parts])
            got: list[ev.Event | ev.DeadLetter] = []
            idle = 0
            while idle < 3:
                batch = consumer.consume(5000, 0.5)
                idle = 0 if batch else idle + 1
                for msg in batch:
                    assert msg.error() is None, msg.error()
                    value = msg.value() or b""
                    if kind == "dead_letters":
                        got.append(msgspec.json.decode(value, type=ev.DeadLetter))
                    else:
                        got.append(ev.decode(value, topic))
            out[kind] = got
    finally:
        consumer.close()
    return out


def run_plant(
    bootstrap: str, work: Path, sim_args: list[str] | None = None, span: timedelta = SPAN
) -> Run:
    """Run the simulator from START for ``span`` through one connector into fresh topics; wait
    until everything is delivered; return the ground truth and what Kafka holds."""
    port = free_port()
    prefix = f"c{os.getpid()}_{work.name}_"
    kafka.ensure_topics(bootstrap, topics.all_topics(prefix), partitions=3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASBUILT_")} | {
        "ASBUILT_HOME": str(work / ".asbuilt"),
        "ASBUILT_KAFKA_BOOTSTRAP": bootstrap,
    }
    sim_log, conn_log = work / "simulator.log", work / "connector.log"
    truth_path, metrics = work / "truth.jsonl", work / "metrics.json"
    with open(sim_log, "w") as out:
        sim = subprocess.Popen(
            [
                sys.executable, "-m", "simulator", "--port", str(port), "--speed", str(SPEED),
                "--start", START.isoformat(), "--until", (START + span).isoformat(),
                "--truth", str(truth_path), "--hold-until-subscribed", *(sim_args or []),
            ],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        _wait_for(sim_log, "serving", sim, 60)
        with open(conn_log, "w") as out:
            conn = subprocess.Popen(
                [
                    sys.executable, "-m", "connectors.opcua",
                    "--endpoint", f"opc.tcp://127.0.0.1:{port}/asbuilt/",
                    "--topic-prefix", prefix, "--metrics", str(metrics), "--max-future-s", "1e9",
                ],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        try:
            _wait_for(sim_log, "holding at", sim, 180)
            # Everything the simulator did is out; wait until the connector, connected, has
            # delivered it (steady for 2 s with an empty spool).
            last, steady = -1, 0
            deadline = time.monotonic() + 120
            while steady < 4 and time.monotonic() < deadline:
                time.sleep(0.5)
                report = json.loads(metrics.read_text()) if metrics.exists() else {}
                connected = report.get("connector", {}).get("connected", False)
                delivered = report.get("publisher", {}).get("delivered_total", -1)
                depth = report.get("publisher", {}).get("spool_depth", 1)
                quiet = connected and delivered == last and depth == 0
                steady = steady + 1 if quiet else 0
                last = delivered
            assert steady >= 4, f"the connector never settled: {report}"
        finally:
            conn.send_signal(signal.SIGTERM)
            conn.wait(timeout=30)
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=30)
    return Run(
        truth=Truth.read_jsonl(truth_path),
        events=consume_all(bootstrap, prefix),
        metrics=json.loads(metrics.read_text()),
    )


@pytest.fixture(scope="module")
def plant_run(local_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One 20-minute simulated run through a connector, shared by the tests of this module."""
    return run_plant(local_stack.bootstrap, tmp_path_factory.mktemp("plant"))


def _by_asset(events: list[ev.Event | ev.DeadLetter]) -> dict[str, list[ev.Event]]:
    grouped: dict[str, list[ev.Event]] = defaultdict(list)
    for e in events:
        if not isinstance(e, ev.DeadLetter):
            grouped[e.asset].append(e)
    return grouped


def test_every_state_interval_of_every_asset_arrives_once_in_order(plant_run: Run) -> None:
    states = _by_asset(plant_run.events["states"])
    truth = plant_run.truth
    assets = {i.asset for i in truth.intervals()}
    assert set(states) == assets
    for asset in sorted(assets):
        expected = [
            (i.start, i.state, i.mode, i.stop_reason or None, i.blocked, i.starved)
            for i in truth.intervals(asset)
        ]
        got = [
            (e.ts, e.state, e.mode, e.stop_reason, e.blocked, e.starved)
            for e in states[asset]
            if isinstance(e, ev.StateChange)
        ]
        assert got == expected, asset


def test_counters_in_kafka_equal_the_ground_truth(plant_run: Run) -> None:
    counters = _by_asset(plant_run.events["counters"])
    for asset, (processed, defective) in plant_run.truth.counts.items():
        samples = [e for e in counters[asset] if isinstance(e, ev.CounterSample)]
        last = {s.counter: s.value for s in samples}  # offset order = source order per asset
        assert last["processed"] == processed, asset
        assert last["defective"] == defective, asset
        for name in ("processed", "defective"):
            values = [s.value for s in samples if s.counter == name]
            assert values == sorted(values), f"{asset} {name} went backwards"


def test_batch_and_material_events_match_the_ground_truth(plant_run: Run) -> None:
    truth = plant_run.truth
    in_window = [m for m in truth.movements if m.ts <= truth.end]
    got = [e for e in plant_run.events["materials"] if isinstance(e, ev.MaterialMovement)]
    assert sorted((m.ts, m.asset, m.lot, m.direction) for m in in_window) == sorted(
        (e.ts, e.asset, e.lot, e.direction) for e in got
    )
    steps = [e for e in plant_run.events["batch"] if isinstance(e, ev.BatchEvent)]
    assert len(steps) == len([s for s in truth.batch_steps if s.ts <= truth.end])


def test_each_assets_events_are_in_source_time_order(plant_run: Run) -> None:
    for kind in ("states", "counters", "process_values"):
        for asset, events in _by_asset(plant_run.events[kind]).items():
            stamps = [e.ts for e in events]
            assert stamps == sorted(stamps), f"{kind} of {asset}"


def test_nothing_was_dead_lettered_on_a_healthy_run(plant_run: Run) -> None:
    reasons = [e.reason for e in plant_run.events["dead_letters"] if isinstance(e, ev.DeadLetter)]
    assert reasons == []
    assert plant_run.metrics["connector"]["dead_letters"] == 0
