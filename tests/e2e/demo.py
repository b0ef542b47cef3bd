"""`make demo` as a new user runs it, for the e2e tests: a private home and free ports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
START_HANG_S = 600.0  # `make demo` (install check, cluster, broker, flows) never came up


def status(env: dict[str, str]) -> dict[str, Any] | None:
    """``asbuilt status --json`` of the stack of ``env``; None while it is not up."""
    result = subprocess.run(
        [sys.executable, "-m", "asbuilt.cli", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return json.loads(result.stdout) if result.returncode == 0 else None


@contextmanager
def make_demo(
    home: Path, log: Path
) -> Iterator[tuple[dict[str, str], subprocess.Popen[bytes], dict[str, Any]]]:
    """`make demo` up and healthy: yields (its environment, the make process, the status
    report); on exit Ctrl-C (SIGINT to its process group) must stop it, then ``down --purge``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASBUILT_", "MAKE"))} | {
        "ASBUILT_HOME": str(home),
        "ASBUILT_DB_PORT": str(free_port()),
        "ASBUILT_BROKER_PORT": str(free_port()),
        "ASBUILT_DASHBOARD_PORT": str(free_port()),
        "ASBUILT_SIM_PORT": str(free_port()),
    }
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
        deadline = time.monotonic() + START_HANG_S
        while report is None and demo.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
            report = status(env)
        assert report is not None, f"make demo never became healthy:\n{log.read_text()}"
        yield env, demo, report
        os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        # make passes the interrupt on and then ends by it: -SIGINT (or 2 from some makes)
        assert demo.wait(timeout=120) in (0, 2, -signal.SIGINT), log.read_text()
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
        subprocess.run(
            [sys.executable, "-m", "asbuilt.cli", "down", "--purge"], env=env, check=False
        )
