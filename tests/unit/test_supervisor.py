"""Supervisor housekeeping and the pure helpers of the services, without any service."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from asbuilt.errors import ServiceError
from asbuilt.services import supervisor as supervisor_module
from asbuilt.services.stack import housekeeping, private_settings, redact
from asbuilt.services.supervisor import (
    Managed,
    Periodic,
    Supervisor,
    pid_alive,
    pid_file,
    port_in_use,
    running_supervisor,
)

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


def _sleeper(name: str, **kwargs: object) -> Managed:
    return Managed(name=name, address=name, health=lambda: None, argv=["sleep", "300"], **kwargs)  # type: ignore[arg-type]


def _watch_until(supervisor: Supervisor, done: Callable[[], bool], timeout_s: float = 20) -> None:
    stop = threading.Event()
    deadline = time.monotonic() + timeout_s

    def stopper() -> None:
        while not done() and time.monotonic() < deadline:
            time.sleep(0.02)
        stop.set()

    threading.Thread(target=stopper, daemon=True).start()
    supervisor.watch(stop, interval_s=0.02)


def test_a_dead_service_and_its_dependents_are_restarted(tmp_path: Path) -> None:
    broker, pipeline = _sleeper("broker"), _sleeper("pipeline", depends_on=("broker",))
    bystander = _sleeper("bystander")
    supervisor = Supervisor(private_settings(tmp_path), [broker, pipeline, bystander])
    supervisor.start_all()
    try:
        before = {s.name: s.proc.pid for s in supervisor.services if s.proc}
        os.kill(before["broker"], signal.SIGKILL)
        _watch_until(supervisor, lambda: len(pipeline.restarts) == 1)
        after = {s.name: s.proc.pid for s in supervisor.services if s.proc}
        assert after["broker"] != before["broker"]
        assert after["pipeline"] != before["pipeline"]  # it must start over on the new log
        assert after["bystander"] == before["bystander"]
        assert "killed by SIGKILL" in broker.last_error
    finally:
        supervisor.stop_all()


def test_a_hung_service_is_restarted_after_failed_health_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervisor_module, "HEALTH_INTERVAL_S", 0.0)
    healthy = {"ok": True}

    def health() -> None:
        if not healthy["ok"]:
            raise RuntimeError("no answer")

    hung = Managed(name="hung", address="x", health=health, argv=["sleep", "300"])
    supervisor = Supervisor(private_settings(tmp_path), [hung])
    supervisor.start_all()
    try:
        first = hung.proc.pid if hung.proc else 0
        healthy["ok"] = False

        def restarted() -> bool:
            if len(hung.restarts) == 1:
                healthy["ok"] = True  # the new process answers
                return True
            return False

        _watch_until(supervisor, restarted)
        assert hung.proc is not None
        assert hung.proc.pid != first
        assert "unhealthy 3 checks in a row: no answer" in hung.last_error
        assert not pid_alive(first)  # the hung process was stopped, not left behind
    finally:
        supervisor.stop_all()


def test_a_failing_restart_is_reported_not_fatal(tmp_path: Path) -> None:
    calls = {"n": 0}

    def ready() -> dict[str, str]:
        calls["n"] += 1
        if calls["n"] > 1:
            raise ConnectionError("database away during restart")
        return {}

    svc = _sleeper("flaky", ready=ready)
    supervisor = Supervisor(private_settings(tmp_path), [svc])
    supervisor.start_all()
    try:
        assert svc.proc is not None
        os.kill(svc.proc.pid, signal.SIGKILL)
        _watch_until(supervisor, lambda: "restart failed" in svc.last_error)
        assert "database away during restart" in svc.last_error
    finally:
        supervisor.stop_all()


def test_an_unhealthy_external_service_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervisor_module, "HEALTH_INTERVAL_S", 0.0)

    def health() -> None:
        raise ConnectionError("connection refused")

    external = Managed(name="db", address="db.example:5432", health=lambda: None)
    supervisor = Supervisor(private_settings(tmp_path), [external])
    supervisor.start_all()
    external.health = health
    _watch_until(supervisor, lambda: bool(external.last_error))
    assert "connection refused" in external.last_error


def test_a_stale_pid_file_never_points_at_an_unrelated_process(tmp_path: Path) -> None:
    settings = private_settings(tmp_path)
    settings.run_dir.mkdir(parents=True)
    unrelated = subprocess.Popen(["sleep", "300"])
    try:
        (settings.run_dir / "supervisor.pid").write_text(str(unrelated.pid))
        assert running_supervisor(settings) is None  # nobody holds the lock
        with pid_file(settings):
            assert running_supervisor(settings) == os.getpid()
            with pytest.raises(ServiceError, match="already running"), pid_file(settings):
                pass
        assert unrelated.poll() is None
    finally:
        unrelated.kill()
        unrelated.wait()


def test_doctor_names_clusters_whose_checkout_is_gone(tmp_path: Path) -> None:
    from asbuilt.doctor import check_orphans

    kept, gone = tmp_path / "clusters" / "aaa", tmp_path / "clusters" / "bbb"
    for cluster, home in ((kept, tmp_path), (gone, tmp_path / "deleted-checkout" / ".asbuilt")):
        cluster.mkdir(parents=True)
        (cluster / "owner").write_text(f"{home}\n")
    check = check_orphans(tmp_path / "clusters")
    assert not check.ok
    assert str(gone) in check.detail
    assert str(kept) not in check.detail
    assert "rm -rf" in check.fix
