"""`make demo` as a new user runs it: installed, started, healthy; Ctrl-C stops everything."""

from __future__ import annotations

from pathlib import Path

import pytest

from asbuilt.services.supervisor import pid_alive, port_in_use
from tests.e2e.demo import make_demo

pytestmark = pytest.mark.e2e


def test_make_demo_brings_the_stack_up_and_ctrl_c_takes_it_down(tmp_path: Path) -> None:
    log = tmp_path / "demo.log"
    with make_demo(tmp_path / ".asbuilt", log) as (env, _demo, report):
        services = report["services"]
        assert isinstance(services, list)
        assert {s["name"] for s in services} >= {
            "timescaledb",
            "broker",
            "simulator",
            "connector-0",
        }
        pids = [s["pid"] for s in services]
    output = log.read_text()
    assert "the stack is up" in output
    assert "stopped" in output
    assert not [p for p in pids if pid_alive(int(str(p)))]
    assert not port_in_use("127.0.0.1", int(env["ASBUILT_DB_PORT"]))
    assert not port_in_use("127.0.0.1", int(env["ASBUILT_BROKER_PORT"]))
