"""What the local stack is made of, in dependency order, for the given settings.

Embedded by default (a private TimescaleDB cluster, the Tansu broker); ``ASBUILT_DB_DSN`` and
``ASBUILT_KAFKA_BOOTSTRAP`` replace either with an existing service, which is then only checked.
Later issues append the simulator, connectors, pipelines and dashboards here.
"""

from __future__ import annotations

import re
import signal
import socket
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import psycopg

from asbuilt import db, kafka, migrations, topics
from asbuilt.services.broker import EmbeddedBroker
from asbuilt.services.postgres import EmbeddedPostgres
from asbuilt.services.supervisor import Managed, Periodic
from asbuilt.settings import Settings


def redact(dsn: str) -> str:
    """A DSN fit to print: the password replaced by ***."""
    dsn = re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", dsn)
    return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", dsn)


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


def build(settings: Settings) -> list[Managed]:
    """The services of the stack, in start order."""
    return [_database(settings), _broker(settings)]


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
