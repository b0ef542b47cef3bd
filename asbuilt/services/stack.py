"""What the local stack is made of, in dependency order, for the given settings.

Embedded by default (a private TimescaleDB cluster, the Tansu broker); ``ASBUILT_DB_DSN`` and
``ASBUILT_KAFKA_BOOTSTRAP`` replace either with an existing service, which is then only checked.
Then the simulated plant and the connectors, then the Bytewax flows (``ASBUILT_PIPELINES``),
one process each; later issues append the dashboards here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import psycopg

from asbuilt import db, kafka, migrations, topics
from asbuilt.errors import ServiceError
from asbuilt.services.broker import EmbeddedBroker
from asbuilt.services.postgres import EmbeddedPostgres
from asbuilt.services.supervisor import Managed, Periodic
from asbuilt.settings import Settings


def redact(dsn: str) -> str:
    """A DSN fit to print: the password replaced by ***."""
    dsn = re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", dsn)
    return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", dsn)


METRICS_STALE_S = 10.0  # a Python service that has not written its metrics for this long hangs


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def private_settings(home: Path, **overrides: object) -> Settings:
    """Settings for a throwaway stack (tests, benchmarks): its own home, free loopback ports,
    and explicit Nones so the caller's ASBUILT_* environment cannot leak in."""
    values: dict[str, object] = {
        "home": home,
        "db_dsn": None,
        "kafka_bootstrap": None,
        "db_port": free_port(),
        "broker_port": free_port(),
        "dashboard_port": free_port(),
        "bind_host": "127.0.0.1",
    }
    values.update(overrides)
    return Settings.model_validate(values)


def database_dsn(settings: Settings) -> str:
    """The DSN of the application database: ASBUILT_DB_DSN, else the embedded cluster's."""
    if settings.db_dsn is not None:
        return settings.db_dsn.get_secret_value()
    return EmbeddedPostgres(settings).dsn()


def check_database(dsn: str) -> None:
    with psycopg.connect(dsn, connect_timeout=3) as conn:
        conn.execute("SELECT 1")


def prepare_database(dsn: str) -> dict[str, str]:
    """Apply pending migrations; report the schema version and the TimescaleDB license."""
    applied = migrations.migrate(dsn)
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT current_setting('timescaledb.license', true), "
            "(SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'), "
            "(SELECT max(name) FROM asbuilt_meta.schema_migrations)"
        ).fetchone()
    license_, version, latest = row if row else (None, None, None)
    return {
        "timescaledb": f"{version} ({license_} license)",
        "schema": str(latest),
        "migrated_now": ", ".join(applied) or "nothing pending",
    }


def prepare_broker(settings: Settings) -> dict[str, str]:
    """Create the contract's topics and read (or start) the log epoch."""
    kafka.ensure_topics(
        settings.kafka,
        topics.ALL_TOPICS,
        partitions=settings.kafka_partitions,
        replication=settings.kafka_replication,
    )
    return {"log_epoch": kafka.log_epoch(settings.kafka)}


def infrastructure(settings: Settings) -> list[Managed]:
    """The database and the broker (what tests and benchmarks start on their own)."""
    return [_database(settings), _broker(settings)]


def build(settings: Settings) -> list[Managed]:
    """The services of the stack, in start order."""
    services = infrastructure(settings)
    if settings.opcua_endpoint is None and settings.connectors > 0:
        services.append(_simulator(settings))
    services += [_connector(settings, i) for i in range(settings.connectors)]
    services += [_pipeline(settings, name) for name in pipelines(settings)]
    if settings.dashboards and _module_exists("dashboards.__main__"):
        services.append(dashboards(settings))
    return services


def _module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def pipeline_installed(name: str) -> bool:
    """True when ``python -m pipelines.<name>`` exists (a flow not written yet is skipped)."""
    try:
        return importlib.util.find_spec(f"pipelines.{name}.__main__") is not None
    except ImportError:
        return False


def pipelines(settings: Settings) -> list[str]:
    """The flows ``up`` runs: those of ``ASBUILT_PIPELINES`` that are installed, in that order.

    A name without a module is skipped rather than refused, so the default list can name flows
    that a deployment (or this checkout) does not have; ``up`` says which it skipped.
    """
    return [name for name in settings.pipelines if pipeline_installed(name)]


def missing_pipelines(settings: Settings) -> list[str]:
    """The flows of ``ASBUILT_PIPELINES`` that are not installed (``up`` reports them)."""
    return [name for name in settings.pipelines if not pipeline_installed(name)]


def child_env(settings: Settings) -> dict[str, str]:
    """The environment of a Python service: the caller's, with the stack's own settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASBUILT_")}
    env |= {k: v for k, v in os.environ.items() if k.startswith("ASBUILT_KAFKA_")}
    env |= {
        "ASBUILT_HOME": str(settings.home_dir),
        "ASBUILT_KAFKA_BOOTSTRAP": settings.bootstrap,
        "ASBUILT_LOG_LEVEL": settings.log_level,
        "PYTHONUNBUFFERED": "1",
    }
    return env


def check_port(host: str, port: int) -> None:
    """Raise unless something accepts TCP connections on host:port."""
    with socket.create_connection((host, port), timeout=2):
        pass


def _simulator(settings: Settings) -> Managed:
    argv = [
        sys.executable, "-m", "simulator",
        "--host", settings.bind_host, "--port", str(settings.sim_port),
        "--speed", str(settings.sim_speed), "--start", settings.sim_start,
        "--backfill-hours", str(settings.sim_backfill_hours),
    ]  # fmt: skip
    if settings.plant_model is not None:
        argv += ["--model", str(settings.plant_model)]
    return Managed(
        name="simulator",
        address=simulator_endpoint(settings),
        health=lambda: check_port(settings.bind_host, settings.sim_port),
        argv=argv,
        port=settings.sim_port,
        env=child_env(settings),
        note=f"simulated plant at {settings.sim_speed:g}× real time, from {settings.sim_start}",
    )


def simulator_endpoint(settings: Settings) -> str:
    return f"opc.tcp://{settings.bind_host}:{settings.sim_port}/asbuilt/"


def _connector(settings: Settings, index: int) -> Managed:
    name = f"connector-{index}"
    metrics = settings.run_dir / f"{name}.metrics.json"
    endpoint = settings.opcua_endpoint or simulator_endpoint(settings)
    argv = [
        sys.executable, "-m", "connectors.opcua",
        "--endpoint", endpoint,
        "--partition", f"{index}/{settings.connectors}",
        "--spool", str(settings.home_dir / "spool" / f"{name}.sqlite3"),
        "--metrics", str(metrics),
    ]  # fmt: skip
    if settings.node_map is not None:
        argv += ["--node-map", str(settings.node_map)]
    if settings.opcua_endpoint is None and settings.sim_speed > 1:
        # Accelerated simulated time runs ahead of the wall clock: not a device clock fault.
        argv += ["--max-future-s", "1e9"]

    def health() -> None:
        age = time.time() - metrics.stat().st_mtime
        if age > METRICS_STALE_S:
            msg = f"{name} has not reported for {age:.0f} s (metrics {metrics})"
            raise ServiceError(msg)

    return Managed(
        name=name,
        address=endpoint,
        health=health,
        argv=argv,
        env=child_env(settings),
        prepare=lambda: metrics.unlink(missing_ok=True),
        metrics=metrics,
        note=f"partition {index}/{settings.connectors}"
        + (f", node map {settings.node_map}" if settings.node_map else ", browsing the server"),
    )


def pipeline_env(settings: Settings) -> dict[str, str]:
    """The environment of a flow: the caller's, with every setting of the stack (the flows read
    many: topic prefix, snapshot interval, OEE lateness, loss mapping ...). The database DSN is
    added just before each start (the embedded cluster's password exists only after initdb)."""
    env = child_env(settings) | settings.to_env()
    env.pop("ASBUILT_DB_DSN", None)
    return env | {"ASBUILT_KAFKA_BOOTSTRAP": settings.bootstrap}


def check_flow(name: str, metrics: Path, stale_s: float = METRICS_STALE_S) -> dict[str, object]:
    """Raise ServiceError unless flow ``name`` keeps its metrics current and its worker beats.

    The metrics thread writes every second even when the dataflow is stuck, so the file's age
    catches a dead process and ``heartbeat_age_s`` (refreshed by every source poll and by a
    sink waiting for the database) catches a hung worker.
    """
    try:
        age = time.time() - metrics.stat().st_mtime
        report: dict[str, object] = json.loads(metrics.read_text())
    except (OSError, ValueError) as exc:
        msg = f"{name} has not reported yet ({metrics}: {exc})"
        raise ServiceError(msg) from exc
    if age > stale_s:
        msg = f"{name} has not reported for {age:.0f} s (metrics {metrics})"
        raise ServiceError(msg)
    heartbeat = report.get("heartbeat_age_s")
    if isinstance(heartbeat, int | float) and heartbeat > stale_s:
        msg = f"{name}'s dataflow has not moved for {heartbeat:.0f} s (hung?)"
        raise ServiceError(msg)
    return report


def _pipeline(settings: Settings, name: str) -> Managed:
    metrics = settings.metrics_file(name)
    env = pipeline_env(settings)
    argv = [sys.executable, "-m", f"pipelines.{name}", "--metrics", str(metrics)]

    def prepare() -> None:
        metrics.unlink(missing_ok=True)
        env["ASBUILT_DB_DSN"] = database_dsn(settings)

    return Managed(
        name=name,
        address=f"recovery {settings.recovery_dir(name)}",
        health=lambda: check_flow(name, metrics),
        argv=argv,
        env=env,
        prepare=prepare,
        metrics=metrics,
        # A broker restart is a new log (the embedded one keeps it in memory): the flow must
        # restart so that its recovery store is reset for the new log epoch.
        depends_on=("broker",),
        note=f"Bytewax flow, snapshot every {settings.snapshot_interval_s:g} s"
        + (f", topic prefix {settings.topic_prefix}" if settings.topic_prefix else ""),
    )


def check_http_ok(url: str) -> None:
    """Raise unless ``url`` answers 200 with the body ``ok`` (Streamlit's health endpoint)."""
    with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - our own loopback URL
        body = response.read().decode()
    if body.strip() != "ok":
        msg = f"{url} answered {body[:80]!r}, not ok"
        raise ServiceError(msg)


def dashboards(settings: Settings) -> Managed:
    """The Streamlit dashboards (``python -m dashboards``: it makes its read-only database
    roles, then serves ``dashboards/app.py``) on ``bind_host:dashboard_port``."""
    host, port = settings.bind_host, settings.dashboard_port
    env = child_env(settings) | {"ASBUILT_BIND_HOST": host, "ASBUILT_DASHBOARD_PORT": str(port)}
    for name in (
        "ASBUILT_DASHBOARD_DSN",
        "ASBUILT_DASHBOARD_ACK_DSN",
        "ASBUILT_DASHBOARD_REFRESH_S",
    ):
        if name in os.environ:
            env[name] = os.environ[name]
    if settings.plant_model is not None:
        env["ASBUILT_PLANT_MODEL"] = str(settings.plant_model)

    def prepare() -> None:
        env["ASBUILT_DB_DSN"] = database_dsn(settings)

    return Managed(
        name="dashboards",
        address=f"http://{host}:{port}/",
        health=lambda: check_http_ok(f"http://{host}:{port}/_stcore/health"),
        argv=[sys.executable, "-m", "dashboards"],
        port=port,
        env=env,
        prepare=prepare,
        note="Streamlit, read-only database role; pages refresh in place",
    )


def housekeeping(settings: Settings) -> list[Periodic]:
    """Periodic jobs: retention by dropping old chunks (the Apache license has no policies)."""
    if settings.retention_days is None:
        return []
    keep = timedelta(days=settings.retention_days)
    return [Periodic("retention", 3600.0, lambda: db.retain(database_dsn(settings), keep))]


def _database(settings: Settings) -> Managed:
    if settings.db_dsn is not None:
        dsn = settings.db_dsn.get_secret_value()
        return Managed(
            name="timescaledb",
            address=redact(dsn),
            health=lambda: check_database(dsn),
            ready=lambda: prepare_database(dsn),
            note="external (ASBUILT_DB_DSN)",
        )
    pg = EmbeddedPostgres(settings)

    def ready() -> dict[str, str]:
        pg.ensure_database()
        return prepare_database(pg.dsn())

    return Managed(
        name="timescaledb",
        address=f"{pg.address}/{settings.db_name}",
        health=pg.health,
        argv=pg.argv(),
        port=settings.db_port,
        user=pg.os_user,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        stop_signal=signal.SIGINT,  # PostgreSQL's "fast" shutdown; SIGTERM waits for clients
        prepare=pg.initialise,
        ready=ready,
        note=f"data: {pg.location.data_dir}"
        + ("" if pg.location.reason == "under ASBUILT_HOME" else f" ({pg.location.reason})"),
    )


def _broker(settings: Settings) -> Managed:
    bootstrap = settings.bootstrap
    ready: Callable[[], dict[str, str]] = lambda: prepare_broker(settings)  # noqa: E731
    if settings.kafka_bootstrap is not None:
        return Managed(
            name="broker",
            address=bootstrap,
            health=lambda: kafka.check_broker(settings.kafka),
            ready=ready,
            note="external (ASBUILT_KAFKA_BOOTSTRAP)",
        )
    broker = EmbeddedBroker(settings)
    return Managed(
        name="broker",
        address=bootstrap,
        health=broker.health,
        argv=broker.argv(),
        port=settings.broker_port,
        env=broker.env(),
        ready=ready,
        note="Tansu, memory log: a restart empties it (new log epoch)",
    )
