"""The `asbuilt` command as a user runs it: up, status, down, doctor, migrate — and its faults."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from asbuilt import migrations
from asbuilt.services.supervisor import pid_alive, port_in_use
from tests.conftest import Stack, free_port

pytestmark = pytest.mark.integration


def run(env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asbuilt.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ASBUILT_")} | {
        "ASBUILT_HOME": str(tmp_path / ".asbuilt"),
        "ASBUILT_DB_PORT": str(free_port()),
        "ASBUILT_BROKER_PORT": str(free_port()),
        "ASBUILT_DASHBOARD_PORT": str(free_port()),
        "ASBUILT_SIM_PORT": str(free_port()),
        "ASBUILT_CONNECTORS": "0",  # the stack's own services; the plant is tested elsewhere
        "ASBUILT_PIPELINES": "",  # and the flows
    }
    yield environment
    run(environment, "down", "--purge")


def _wait(predicate: object, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def test_up_status_down_and_a_dead_service_is_restarted(env: dict[str, str]) -> None:
    # the whole stack, simulated plant and a flow included
    env = env | {"ASBUILT_CONNECTORS": "1", "ASBUILT_PIPELINES": "historian"}
    up = run(env, "up", "--detach")
    assert up.returncode == 0, up.stderr
    status = run(env, "status", "--json")
    assert status.returncode == 0, status.stdout
    report = json.loads(status.stdout)
    services = {s["name"]: s for s in report["services"]}
    assert set(services) == {
        *("timescaledb", "broker", "simulator", "connector-0", "historian", "dashboards")
    }
    assert all(s["healthy"] for s in services.values())
    assert services["timescaledb"]["address"].endswith(f":{env['ASBUILT_DB_PORT']}/asbuilt")
    assert services["broker"]["address"] == f"127.0.0.1:{env['ASBUILT_BROKER_PORT']}"
    assert "***" not in status.stdout  # no password at all, not even masked, in the state
    first_epoch = services["broker"]["log_epoch"]

    os.kill(services["broker"]["pid"], signal.SIGKILL)

    def restarted() -> bool:
        s = {x["name"]: x for x in json.loads(run(env, "status", "--json").stdout)["services"]}
        return all(s[n]["restarts"] == 1 and s[n]["healthy"] for n in ("broker", "historian"))

    assert _wait(restarted), run(env, "status").stdout
    broker = {x["name"]: x for x in json.loads(run(env, "status", "--json").stdout)["services"]}[
        "broker"
    ]
    assert "killed by SIGKILL" in broker["last_error"]
    assert broker["log_epoch"] != first_epoch  # the new, empty log is noticed

    def flow_epoch() -> object:
        s = {x["name"]: x for x in json.loads(run(env, "status", "--json").stdout)["services"]}
        return s["historian"].get("log_epoch")

    assert _wait(lambda: flow_epoch() == broker["log_epoch"])  # the flow restarted with it

    down = run(env, "down")
    assert down.returncode == 0, down.stderr
    assert run(env, "status").returncode == 1
    pids = [s["pid"] for s in report["services"]] + [broker["pid"]]
    assert not [p for p in pids if pid_alive(p)]
    assert not port_in_use("127.0.0.1", int(env["ASBUILT_DB_PORT"]))


def test_port_taken_is_a_clear_error_and_nothing_is_left_running(env: dict[str, str]) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(env["ASBUILT_BROKER_PORT"])))
        squatter.listen()
        doctor = run(env, "doctor")
        assert doctor.returncode == 1
        assert f"port {env['ASBUILT_BROKER_PORT']}" in doctor.stdout
        assert "set ASBUILT_BROKER_PORT to a free port" in doctor.stdout

        up = run(env, "up", "--detach")
    assert up.returncode == 1
    assert f"port {env['ASBUILT_BROKER_PORT']} on 127.0.0.1 is already in use" in up.stderr
    # The database had started before the broker failed: it must have been stopped again.
    assert not port_in_use("127.0.0.1", int(env["ASBUILT_DB_PORT"]))
    assert run(env, "status").returncode == 1


def test_doctor_passes_on_a_prepared_machine_and_migrate_reports(env: dict[str, str]) -> None:
    doctor = run(env, "doctor")
    assert doctor.returncode == 0, doctor.stdout
    assert "FAIL" not in doctor.stdout
    assert run(env, "up", "--detach").returncode == 0
    migrate = run(env, "migrate")
    assert migrate.returncode == 0, migrate.stderr
    assert "001_raw_events.sql: applied" in migrate.stdout
    assert "applied now: nothing;" in migrate.stderr


def test_a_second_up_is_refused(env: dict[str, str]) -> None:
    assert run(env, "up", "--detach").returncode == 0
    again = run(env, "up")
    assert again.returncode == 1
    assert "already running" in again.stderr


def test_foreground_up_stops_everything_on_ctrl_c(env: dict[str, str]) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "asbuilt.cli", "up"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert _wait(lambda: run(env, "status").returncode == 0, timeout=120)
    pids = [s["pid"] for s in json.loads(run(env, "status", "--json").stdout)["services"]]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped" in err
    assert not [p for p in pids if pid_alive(p)]


def test_ctrl_c_while_starting_stops_what_was_started(env: dict[str, str]) -> None:
    """An external Kafka that never answers keeps the start waiting; Ctrl-C then must not leave
    the database that was already started running, and status must say it was never ready."""
    env = env | {
        "ASBUILT_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",  # nobody listens there
        "ASBUILT_START_TIMEOUT_S": "600",  # the start waits for it until interrupted
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "asbuilt.cli", "up"], env=env, stderr=subprocess.PIPE, text=True
    )
    db_port = int(env["ASBUILT_DB_PORT"])
    assert _wait(lambda: port_in_use("127.0.0.1", db_port), timeout=60)
    status = run(env, "status", "--json")
    assert status.returncode == 1
    assert json.loads(status.stdout)["ready"] is False
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted while starting" in err
    assert not port_in_use("127.0.0.1", db_port)


def test_existing_services_are_used_not_started(env: dict[str, str], local_stack: Stack) -> None:
    """ASBUILT_DB_DSN and ASBUILT_KAFKA_BOOTSTRAP: nothing is installed or run, both are only
    checked, the schema is migrated into that database, and no password is shown."""
    name = f"ext_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(local_stack.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = local_stack.dsn(name)
    env = env | {"ASBUILT_DB_DSN": dsn, "ASBUILT_KAFKA_BOOTSTRAP": local_stack.bootstrap}
    try:
        up = run(env, "up", "--detach")
        assert up.returncode == 0, up.stderr
        status = run(env, "status", "--json")
        report = json.loads(status.stdout)
        services = {s["name"]: s for s in report["services"]}
        assert services["timescaledb"]["pid"] is None
        assert services["broker"]["pid"] is None
        assert services["timescaledb"]["note"] == "external (ASBUILT_DB_DSN)"
        assert services["broker"]["address"] == local_stack.bootstrap
        password = dsn.split(":")[2].split("@")[0]
        assert password not in status.stdout
        assert password not in up.stdout + up.stderr
        assert not port_in_use("127.0.0.1", int(env["ASBUILT_DB_PORT"]))
        with psycopg.connect(dsn) as conn:
            assert conn.execute(
                "SELECT count(*) FROM asbuilt_meta.schema_migrations"
            ).fetchone() == (len(migrations.discover()[0]),)
        assert run(env, "down").returncode == 0
    finally:
        with psycopg.connect(local_stack.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_bad_configuration_and_commands_before_the_first_up_say_what_to_do(
    env: dict[str, str],
) -> None:
    bad = run(env | {"ASBUILT_DB_PORT": "abc"}, "status")
    assert bad.returncode == 2
    assert "bad configuration: ASBUILT_DB_PORT='abc'" in bad.stderr
    assert "Traceback" not in bad.stderr
    for command in ("migrate", "retention", "psql"):
        early = run(env, command)
        assert early.returncode == 1, command
        assert "has not been created yet" in early.stderr
        assert "asbuilt up" in early.stderr
        assert "Traceback" not in early.stderr


def test_psql_reaches_the_database_without_the_password_on_its_command_line(
    env: dict[str, str],
) -> None:
    assert run(env, "up", "--detach").returncode == 0
    result = run(env, "psql", "-At", "-c", "SELECT count(*) FROM asbuilt_meta.schema_migrations")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(len(migrations.discover()[0]))
