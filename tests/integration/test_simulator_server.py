"""The simulated plant's OPC UA server on its own: back-fill, then live time."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asyncua import Client

from simulator.truth import Truth
from tests.conftest import free_port

pytestmark = pytest.mark.integration

PRESS = "acme/basel/osd/train1/press"


def test_backfill_plays_history_then_goes_live(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "simulator.log"
    with open(log, "w") as out:
        sim = subprocess.Popen(
            [sys.executable, "-m", "simulator", "--port", str(port), "--speed", "1",
             "--start", "now", "--backfill-hours", "2", "--truth", str(tmp_path / "truth.jsonl")],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        began = time.monotonic()
        deadline = began + 120
        while "back-filled" not in log.read_text():
            assert sim.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)

        async def read() -> str:
            async with Client(f"opc.tcp://127.0.0.1:{port}/asbuilt/") as client:
                return str(await client.get_node(f"ns=2;s={PRESS}.State").read_value())

        assert asyncio.run(read())  # served and readable once live
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=30)
    truth = Truth.read_jsonl(tmp_path / "truth.jsonl")
    now = datetime.now(UTC)
    # Two hours of history, played in far less than two hours, then live: the plant's time
    # ends at the present.
    assert truth.end - truth.start >= timedelta(hours=2)
    assert abs(now - truth.end) < timedelta(minutes=1)
    assert truth.intervals(PRESS)
