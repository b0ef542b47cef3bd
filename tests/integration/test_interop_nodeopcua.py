"""Interoperability: the connector against an OPC UA server that is not asyncua.

``tests/interop/plc_server.js`` is a small node-opcua server (pinned in
``tests/interop/package.json``) that looks like a typical PLC, nothing of the asbuilt model:
an object ``Filler`` with PackTags-style tags (``StateCurrent`` in PackTags numbering,
``UnitModeCurrent``, ``StopReason``, ``ProdProcessedCount``, ``ProdDefectiveCount``,
``SealTemperature``), node ids ``ns=1;s=Filler.<tag>``. It plays a deterministic schedule (starts,
production, stops with reasons, a maintenance-mode stop, one BadSensorFailure reading) and writes
every value it sets to a ground-truth file. The connector runs with a hand-written node map,
as it would at a plant, and what arrives in Kafka is compared with that truth.

``make install`` installs node-opcua (``npm ci`` in tests/interop); without it these tests fail.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from asyncua import ua
from confluent_kafka import Consumer, TopicPartition

from asbuilt import events as ev
from asbuilt import kafka, topics
from tests.conftest import Stack, free_port

pytestmark = pytest.mark.integration

INTEROP = Path(__file__).resolve().parents[1] / "interop"
ASSET = "acme/interop/pack/line1/filler"
TICKS = 60  # 6 s of schedule at 100 ms: three production cycles
PACKTAGS = {2: "Stopped", 3: "Starting", 4: "Idle", 6: "Execute", 7: "Stopping", 15: "Resetting"}
MODES = {1: ev.MODE_PRODUCE, 2: ev.MODE_MAINTENANCE}
NODE = "ns=1;s=Filler.{}"
SIGNALS: list[dict[str, Any]] = [
    {"node": NODE.format("StateCurrent"), "kind": "state", "numbering": "packtags"},
    {"node": NODE.format("UnitModeCurrent"), "kind": "mode"},
    {"node": NODE.format("StopReason"), "kind": "stop_reason"},
    {"node": NODE.format("ProdProcessedCount"), "kind": "counter", "name": "processed"},
    # by browse path (TranslateBrowsePathsToNodeIds on the node-opcua server), not by node id
    {"browse_path": "1:Filler/1:ProdDefectiveCount", "kind": "counter", "name": "defective"},
    {
        "node": NODE.format("SealTemperature"),
        "kind": "process_value",
        "name": "seal_temperature",
        "unit": "Cel",
    },
]


@dataclass
class Run:
    truth: list[dict[str, Any]]  # every value the server set, in order
    final: dict[str, Any]  # the server's last line: {"done": true, "processed": …}
    events: dict[str, list[ev.Event | ev.DeadLetter]]  # topic kind -> events in offset order
    metrics: dict[str, Any]
    timings: dict[str, float]


def _node_binary() -> str:
    node = shutil.which("node")
    if node is None or not (INTEROP / "node_modules" / "node-opcua").is_dir():
        pytest.fail(
            "node-opcua is not installed for the interoperability test: run `make install` "
            "(npm ci in tests/interop); it needs Node.js >= 20 and npm "
            "(apt-get install nodejs npm)",
            pytrace=False,
        )
    return node


def _wait_for(path: Path, text: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        assert proc.poll() is None, f"{path.name} ended early:\n{path.read_text()}"
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in {path}:\n{path.read_text()}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _start_server(
    node: str, work: Path, port: int, *, ticks: int, wait_items: int
) -> subprocess.Popen[bytes]:
    """The node-opcua PLC on 127.0.0.1:port; its output in plc_server.log, truth in truth.jsonl."""
    with open(work / "plc_server.log", "w") as out:
        return subprocess.Popen(
            [
                node, str(INTEROP / "plc_server.js"), "--port", str(port),
                "--truth", str(work / "truth.jsonl"), "--pki", str(work / "pki"),
                "--ticks", str(ticks), "--tick-ms", "100", "--wait-items", str(wait_items),
            ],
            stdout=out, stderr=subprocess.STDOUT, cwd=INTEROP,
        )  # fmt: skip


def _connector_env(work: Path, bootstrap: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ASBUILT_")} | {
        "ASBUILT_HOME": str(work / ".asbuilt"),
        "ASBUILT_KAFKA_BOOTSTRAP": bootstrap,
    }


@pytest.fixture(scope="module")
def interop_run(local_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """One run of the node-opcua PLC through a connector, shared by the tests of this module."""
    node = _node_binary()
    work = tmp_path_factory.mktemp("interop")
    port = free_port()
    prefix = f"i{uuid.uuid4().hex[:10]}_"
    kafka.ensure_topics(local_stack.bootstrap, topics.all_topics(prefix))
    env = _connector_env(work, local_stack.bootstrap)
    endpoint = f"opc.tcp://127.0.0.1:{port}/plc"
    node_map = work / "plc.yaml"
    node_map.write_text(
        yaml.safe_dump(
            {
                "endpoint": endpoint,
                "event_notifiers": ["i=2253"],
                "signals": [{"asset": ASSET, **s} for s in SIGNALS],
            },
            sort_keys=False,
        )
    )
    server_log, conn_log = work / "plc_server.log", work / "connector.log"
    truth_path, metrics = work / "truth.jsonl", work / "metrics.json"
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    server = _start_server(node, work, port, ticks=TICKS, wait_items=len(SIGNALS))
    try:
        _wait_for(server_log, "ready", server, 60)
        timings["server_start_s"] = time.monotonic() - t0
        with open(conn_log, "w") as out:
            conn = subprocess.Popen(
                [
                    sys.executable, "-m", "connectors.opcua", "--endpoint", endpoint,
                    "--node-map", str(node_map), "--topic-prefix", prefix,
                    "--metrics", str(metrics), "--max-future-s", "1e9",
                ],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        try:
            t1 = time.monotonic()
            _wait_for(server_log, "running", server, 60)
            timings["connector_subscribed_s"] = time.monotonic() - t1
            _wait_for(server_log, "done", server, 60)
            # The schedule is over; wait until the connector has delivered all of it.
            last, steady = -1, 0
            while steady < 4:
                time.sleep(0.5)
                assert conn.poll() is None, f"the connector ended:\n{conn_log.read_text()}"
                report = json.loads(metrics.read_text()) if metrics.exists() else {}
                delivered = report.get("publisher", {}).get("delivered_total", -1)
                depth = report.get("publisher", {}).get("spool_depth", 1)
                steady = steady + 1 if delivered == last and depth == 0 else 0
                last = delivered
            timings["run_s"] = time.monotonic() - t1
        finally:
            _stop(conn)
        assert conn.returncode == 0, f"connector exit {conn.returncode}:\n{conn_log.read_text()}"
    finally:
        _stop(server)
    lines = [json.loads(line) for line in truth_path.read_text().splitlines()]
    final = lines[-1] if lines else {}
    assert final.get("done"), f"the server did not finish:\n{server_log.read_text()}"
    t2 = time.monotonic()
    report = json.loads(metrics.read_text())
    events = _consume(local_stack.bootstrap, prefix, report["publisher"]["delivered_total"])
    timings["consume_s"] = time.monotonic() - t2
    yield Run(lines[:-1], final, events, report, timings)
    print(f"\nnode-opcua interop timings: {timings}")


def _consume(bootstrap: str, prefix: str, count: int) -> dict[str, list[ev.Event | ev.DeadLetter]]:
    """Every record of every contract topic of ``prefix``, by topic kind in offset order.

    Reads until the ``count`` records the connector says it delivered are in, then until the
    topics stay quiet for 1 s (so a duplicate or an extra record would be seen too).
    """
    names = {topics.topic_name(kind, prefix): kind for kind in topics.TOPIC_KINDS}
    consumer = Consumer(kafka.consumer_config(bootstrap, f"interop-{uuid.uuid4().hex[:8]}"))
    out: dict[str, list[ev.Event | ev.DeadLetter]] = {kind: [] for kind in topics.TOPIC_KINDS}
    try:
        meta = consumer.list_topics(timeout=5).topics
        consumer.assign([TopicPartition(t, p, 0) for t in names for p in meta[t].partitions])
        got, deadline, quiet_since = 0, time.monotonic() + 60, time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.consume(5000, 0.2)
            now = time.monotonic()
            quiet_since = quiet_since if not batch else now
            if got >= count and now - quiet_since >= 1.0:
                break
            for msg in batch:
                assert msg.error() is None, msg.error()
                topic, value = msg.topic() or "", msg.value() or b""
                kind = names[topic]
                if kind == "dead_letters":
                    out[kind].append(msgspec.json.decode(value, type=ev.DeadLetter))
                else:
                    out[kind].append(ev.decode(value, topic))
                got += 1
    finally:
        consumer.close()
    return out


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _truth_of(run: Run, name: str) -> list[tuple[datetime, Any, str]]:
    return [(_ts(r["ts"]), r["value"], r["status"]) for r in run.truth if r["name"] == name]


def _expected_states(run: Run) -> list[tuple[datetime, str, str, str | None]]:
    """The PackML state changes the truth implies: one per source timestamp that changed a part."""
    parts = {"StateCurrent": "state", "UnitModeCurrent": "mode", "StopReason": "stop_reason"}
    snapshot: dict[str, int] = {}
    changes: dict[datetime, dict[str, int]] = {}
    for r in run.truth:
        if r["name"] in parts:
            changes.setdefault(_ts(r["ts"]), {})[parts[r["name"]]] = r["value"]
    out = []
    for ts, changed in changes.items():
        snapshot |= changed
        reason = snapshot["stop_reason"]
        out.append((ts, PACKTAGS[snapshot["state"]], MODES[snapshot["mode"]], str(reason)))
    return out


def _of(run: Run, kind: str, cls: type[Any]) -> list[Any]:
    got = [e for e in run.events[kind] if isinstance(e, cls)]
    assert all(e.asset == ASSET for e in got)
    return got


def test_nodeopcua_server_was_subscribed_and_played_its_schedule(interop_run: Run) -> None:
    connector = interop_run.metrics["connector"]
    assert connector["items"] == len(SIGNALS), connector
    assert interop_run.final["ticks"] == TICKS
    assert interop_run.final["processed"] > 0
    assert interop_run.final["defective"] > 0


def test_packtags_state_numbers_arrive_as_packml_state_names(interop_run: Run) -> None:
    got = [
        (e.ts, e.state, e.mode, e.stop_reason) for e in _of(interop_run, "states", ev.StateChange)
    ]
    expected = _expected_states(interop_run)
    # Every state of the schedule, mapped from PackTags numbers, incl. a stop in Maintenance mode.
    assert {s for _, s, _, _ in expected} == set(PACKTAGS.values())
    assert ev.MODE_MAINTENANCE in {m for _, _, m, _ in expected}
    assert [g[:3] for g in got] == [e[:3] for e in expected]
    # A stop carries the PLC's stop reason code.
    stops = [(g, e) for g, e in zip(got, expected, strict=True) if e[1] in ("Stopping", "Stopped")]
    assert stops
    assert all(g[3] == e[3] and g[3] != "0" for g, e in stops)


def test_a_stop_reason_of_zero_means_no_stop_reason(interop_run: Run) -> None:
    running = [e for e in _of(interop_run, "states", ev.StateChange) if e.state == "Execute"]
    assert running
    assert all(e.stop_reason is None for e in running)


def test_counters_end_at_the_servers_final_counts(interop_run: Run) -> None:
    samples = _of(interop_run, "counters", ev.CounterSample)
    for name, tag in (("processed", "ProdProcessedCount"), ("defective", "ProdDefectiveCount")):
        got = [(s.ts, s.value) for s in samples if s.counter == name]
        assert got == [(ts, v) for ts, v, _ in _truth_of(interop_run, tag)], name
        assert got[-1][1] == interop_run.final[name], name
    assert not any(s.resettable for s in samples)


def test_process_values_arrive_with_unit_and_quality(interop_run: Run) -> None:
    values = _of(interop_run, "process_values", ev.ProcessValue)
    got = [(v.ts, v.value, v.quality, v.status_code) for v in values]
    # The truth names the status codes as node-opcua does; asyncua's table gives their numbers.
    expected = [
        (ts, float(v), ev.quality_from_status_code(code), code)
        for ts, v, status in _truth_of(interop_run, "SealTemperature")
        for code in [int(getattr(ua.StatusCodes, status))]
    ]
    assert got == expected
    assert {(v.signal, v.unit) for v in values} == {("seal_temperature", "Cel")}
    bad = [(v.quality, v.status_code) for v in values if v.status_code != ua.StatusCodes.Good]
    assert bad == [("bad", ua.StatusCodes.BadSensorFailure)], "the one bad reading, marked bad"


def test_no_dead_letters(interop_run: Run) -> None:
    reasons = [e.reason for e in interop_run.events["dead_letters"] if isinstance(e, ev.DeadLetter)]
    assert reasons == []
    assert interop_run.metrics["connector"]["dead_letters"] == 0


def test_each_kind_is_in_source_time_order(interop_run: Run) -> None:
    for kind in ("states", "counters", "process_values"):
        stamps = [e.ts for e in interop_run.events[kind] if not isinstance(e, ev.DeadLetter)]
        assert stamps == sorted(stamps), kind


def test_without_a_node_map_the_connector_says_the_server_is_not_asbuilt(
    local_stack: Stack, tmp_path: Path
) -> None:
    """Browsing a foreign server finds no asset: a clear error and exit, not a silent idle."""
    node = _node_binary()
    port = free_port()
    server = _start_server(node, tmp_path, port, ticks=1, wait_items=0)
    try:
        _wait_for(tmp_path / "plc_server.log", "ready", server, 60)
        done = subprocess.run(
            [
                sys.executable, "-m", "connectors.opcua",
                "--endpoint", f"opc.tcp://127.0.0.1:{port}/plc",
                "--metrics", str(tmp_path / "metrics.json"),
            ],
            capture_output=True, text=True, timeout=60,
            env=_connector_env(tmp_path, local_stack.bootstrap),
        )  # fmt: skip
    finally:
        _stop(server)
    assert done.returncode != 0, done.stderr
    assert "does not follow the asbuilt model" in done.stderr
    assert "--node-map" in done.stderr
