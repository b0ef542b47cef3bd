"""Session fixtures: the real TimescaleDB cluster and the real Kafka-protocol broker, started once
on free loopback ports through the same code as ``asbuilt up``; each test gets its own database
and its own topics. A service that cannot start fails the tests with the reason — never a skip.

The state directory lives in pytest's temporary folder, which is private to root (mode 700):
exactly the case of a checkout under /root, so the cluster's fallback location is exercised.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from asbuilt import kafka, topics
from asbuilt.errors import AsbuiltError
from asbuilt.services import stack
from asbuilt.services.postgres import EmbeddedPostgres
from asbuilt.services.supervisor import Supervisor
from asbuilt.settings import Settings

TEMPLATE_DB = "asbuilt_template"


free_port = stack.free_port
make_settings = stack.private_settings


@dataclass
class Stack:
    settings: Settings
    supervisor: Supervisor
    postgres: EmbeddedPostgres

    @property
    def bootstrap(self) -> str:
        return self.settings.bootstrap

    def dsn(self, dbname: str) -> str:
        return self.postgres.dsn(dbname)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = make_settings(tmp_path_factory.mktemp("stack") / ".asbuilt", db_name=TEMPLATE_DB)
    supervisor = Supervisor(settings, stack.infrastructure(settings))
    try:
        supervisor.start_all()
    except AsbuiltError as exc:
        pytest.fail(
            f"the test stack could not start: {exc}\n"
            "Install the prerequisites with `make install` and check them with `asbuilt doctor`.",
            pytrace=False,
        )
    try:
        # start_all migrated the template database; per-test databases are copies of it. A
        # template must have no sessions, and TimescaleDB's scheduler keeps one in every database
        # that allows connections: close the template to connections, then end its sessions.
        pg = EmbeddedPostgres(settings)
        with psycopg.connect(pg.dsn("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(
                    sql.Identifier(TEMPLATE_DB)
                )
            )
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (TEMPLATE_DB,),
            )
        yield Stack(settings, supervisor, pg)
    finally:
        supervisor.stop_all()
        EmbeddedPostgres(settings).destroy()


@pytest.fixture
def db_dsn(local_stack: Stack) -> Iterator[str]:
    """A fresh, migrated database of its own for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = local_stack.dsn("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(TEMPLATE_DB)
            )
        )
    yield local_stack.dsn(name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def empty_db_dsn(local_stack: Stack) -> Iterator[str]:
    """A database of its own with nothing in it (to test migrations from scratch)."""
    name = f"e_{uuid.uuid4().hex[:12]}"
    admin = local_stack.dsn("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield local_stack.dsn(name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def topic_prefix(local_stack: Stack) -> str:
    """A prefix of its own for one test, with every contract topic created under it."""
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    kafka.ensure_topics(local_stack.bootstrap, topics.all_topics(prefix))
    return prefix


@pytest.fixture
def broker_only(tmp_path: Path) -> Iterator[tuple[Settings, Supervisor]]:
    """A broker of its own for one test (to restart it without disturbing the others)."""
    settings = make_settings(tmp_path / ".asbuilt")
    supervisor = Supervisor(settings, [stack.infrastructure(settings)[1]])
    supervisor.start_all()
    yield settings, supervisor
    supervisor.stop_all()
