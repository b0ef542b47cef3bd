"""`make demo` as a new user runs it: installed, started, healthy; Ctrl-C stops everything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from asbuilt.services.supervisor import pid_alive, port_in_use
from tests.conftest import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def _status(env: dict[str, str]) -> dict[str, object] | None:
    result = subprocess.run(
        [sys.executable, "-m", "asbuilt.cli", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return json.loads(result.stdout) if result.returncode == 0 else None


def test_make_demo_brings_the_stack_up_and_ctrl_c_takes_it_down(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASBUILT_", "MAKE"))} | {
        "ASBUILT_HOME": str(tmp_path / ".asbuilt"),
        "ASBUILT_DB_PORT": str(free_port()),
        "ASBUILT_BROKER_PORT": str(free_port()),
        "ASBUILT_DASHBOARD_PORT": str(free_port()),
        "ASBUILT_SIM_PORT": str(free_port()),
    }
    log = tmp_path / "demo.log"
    with open(log, "w") as out:
        demo = subprocess.Popen(
            ["make", "--no-print-directory", "demo"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, like a terminal's foreground job
        )
    try:
        report = None
        deadline = time.monotonic() + 600
        while report is None and demo.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
            report = _status(env)
        assert report is not None, f"make demo never became healthy:\n{log.read_text()}"
        services = report["services"]
        assert isinstance(services, list)
        assert {s["name"] for s in services} >= {
            "timescaledb",
            "broker",
            "simulator",
            "connector-0",
        }
        pids = [s["pid"] for s in services]

        os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        # make passes the interrupt on and then ends by it: -SIGINT (or 2 from some makes)
        assert demo.wait(timeout=120) in (0, 2, -signal.SIGINT), log.read_text()
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
        subprocess.run(
            [sys.executable, "-m", "asbuilt.cli", "down", "--purge"], env=env, check=False
        )
    output = log.read_text()
    assert "the stack is up" in output
    assert "stopped" in output
    assert not [p for p in pids if pid_alive(int(str(p)))]
    assert not port_in_use("127.0.0.1", int(env["ASBUILT_DB_PORT"]))
    assert not port_in_use("127.0.0.1", int(env["ASBUILT_BROKER_PORT"]))
