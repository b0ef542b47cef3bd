"""Supervisor housekeeping and the pure helpers of the services, without any service."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from asbuilt.services.stack import housekeeping, private_settings, redact
from asbuilt.services.supervisor import Periodic, Supervisor, port_in_use

pytestmark = pytest.mark.unit


def test_housekeeping_runs_when_due_and_survives_a_failing_job(tmp_path: Path) -> None:
    calls: list[str] = []
    stop = threading.Event()

    def failing() -> None:
        calls.append("failing")
        raise RuntimeError("database away")

    def counting() -> None:
        calls.append("counting")
        if calls.count("counting") == 3:
            stop.set()

    supervisor = Supervisor(
        private_settings(tmp_path),
        [],
        periodic=[Periodic("fails", 0.0, failing), Periodic("counts", 0.0, counting)],
    )
    supervisor.watch(stop, interval_s=0.01)
    assert calls.count("counting") == 3
    assert calls.count("failing") == 3  # kept being retried, did not stop the loop


def test_retention_housekeeping_only_when_configured(tmp_path: Path) -> None:
    assert housekeeping(private_settings(tmp_path)) == []
    jobs = housekeeping(private_settings(tmp_path, retention_days=30))
    assert [(j.name, j.every_s) for j in jobs] == [("retention", 3600.0)]


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://app:s3cr3t@db:5432/x", "postgresql://app:***@db:5432/x"),
        ("host=db user=app password=s3cr3t dbname=x", "host=db user=app password=*** dbname=x"),
        ("host=db password='a b' dbname=x", "host=db password=*** dbname=x"),
        ("postgresql://app@db/x", "postgresql://app@db/x"),
    ],
)
def test_redact_hides_passwords(dsn: str, shown: str) -> None:
    assert redact(dsn) == shown


def test_port_in_use_sees_a_listener() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert port_in_use("127.0.0.1", port)
    assert not port_in_use("127.0.0.1", port)
