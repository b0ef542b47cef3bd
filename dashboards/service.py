"""The dashboards as a service of the local stack, and their two database roles.

``asbuilt up`` serves the dashboards (``ASBUILT_DASHBOARDS``, default on) as the process
``python -m dashboards`` (:mod:`dashboards.__main__`), which calls :func:`ensure_roles` and then
becomes ``streamlit run`` (:func:`streamlit_argv`).

Roles. The dashboards never log in as the owner of the schema:

- ``asbuilt_reader`` may read every table and view of schema ``public`` (``GRANT SELECT ON ALL
  TABLES`` now, ``ALTER DEFAULT PRIVILEGES`` for what later migrations create -- the repeatable
  views are re-created on every migrate) and its sessions are read-only
  (``default_transaction_read_only``).
- ``asbuilt_acker`` may update exactly ``alerts.acked_by`` and ``alerts.acked_at`` (column
  privileges), reading only the columns the acknowledgement's WHERE needs: the one write of the
  dashboards goes through it.

Decision: the roles are created here, idempotently, each time the dashboards start (not in a
migration): roles are cluster-wide and need CREATEROLE, which a migration against a managed
TimescaleDB often does not have; a fresh random password is set at each start and handed to the
Streamlit process in its environment only (``ASBUILT_DASHBOARD_DSN`` /
``ASBUILT_DASHBOARD_ACK_DSN``), so no password is stored. With an external database whose
login may not create roles, set ``ASBUILT_DASHBOARD_DSN`` (and optionally
``ASBUILT_DASHBOARD_ACK_DSN``) to logins made by an administrator with :data:`GRANTS_SQL`.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from asbuilt.errors import ServiceError
from asbuilt.services import stack
from asbuilt.services.supervisor import Managed
from asbuilt.settings import Settings

logger = logging.getLogger(__name__)

READER = "asbuilt_reader"
ACKER = "asbuilt_acker"
APP = Path(__file__).resolve().with_name("app.py")

GRANTS_SQL = """
GRANT CONNECT ON DATABASE {db} TO asbuilt_reader, asbuilt_acker;
GRANT USAGE ON SCHEMA public TO asbuilt_reader, asbuilt_acker;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO asbuilt_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO asbuilt_reader;
GRANT SELECT (alert_id, acked_by, acked_at) ON alerts TO asbuilt_acker;
GRANT UPDATE (acked_by, acked_at) ON alerts TO asbuilt_acker;
"""
"""What :func:`ensure_roles` grants (``{db}``: the database), for an administrator's script."""


@dataclass(frozen=True)
class RoleDsns:
    reader: str
    acker: str


def ensure_roles(admin_dsn: str) -> RoleDsns:
    """Create (or update) the reader and acknowledging roles and their grants in the database of
    ``admin_dsn``; give them fresh passwords; return their DSNs. Idempotent and safe to run
    concurrently (a role created meanwhile by another run is fine)."""
    passwords = {READER: secrets.token_urlsafe(24), ACKER: secrets.token_urlsafe(24)}
    try:
        with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=10) as conn:
            for role, password in passwords.items():
                _create_role(conn, role)
                conn.execute(
                    sql.SQL(
                        "ALTER ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                        "NOREPLICATION PASSWORD {}"
                    ).format(sql.Identifier(role), sql.Literal(password))
                )
            conn.execute(
                sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(
                    sql.Identifier(READER)
                )
            )
            db = conn.execute("SELECT current_database()").fetchone()
            assert db is not None
            with conn.transaction():
                for statement in GRANTS_SQL.strip().split(";\n"):
                    conn.execute(
                        sql.SQL(statement.strip().rstrip(";")).format(db=sql.Identifier(db[0]))  # type: ignore[arg-type]
                    )
    except psycopg.errors.InsufficientPrivilege as exc:
        msg = (
            f"cannot create the dashboards' database roles ({exc}). Fix: let an administrator "
            f"create logins {READER} and {ACKER} with these grants:{GRANTS_SQL}"
            "and set ASBUILT_DASHBOARD_DSN (and ASBUILT_DASHBOARD_ACK_DSN) to their DSNs"
        )
        raise ServiceError(msg) from exc
    return RoleDsns(
        reader=_login(admin_dsn, READER, passwords[READER]),
        acker=_login(admin_dsn, ACKER, passwords[ACKER]),
    )


def _create_role(conn: psycopg.Connection[tuple[object, ...]], role: str) -> None:
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    if exists:
        return
    # a concurrent start may create it meanwhile: fine
    with contextlib.suppress(psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))


def _login(dsn: str, user: str, password: str) -> str:
    params = conninfo_to_dict(dsn)
    params.update(user=user, password=password)
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


def streamlit_argv(host: str, port: int) -> list[str]:
    """``streamlit run dashboards/app.py`` headless on host:port, without usage statistics."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.headless", "true",
        "--server.address", host,
        "--server.port", str(port),
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
        "--server.runOnSave", "false",
        "--client.toolbarMode", "viewer",
    ]  # fmt: skip


def check_health(host: str, port: int) -> None:
    """Raise unless Streamlit answers ``ok`` on /_stcore/health."""
    url = f"http://{host}:{port}/_stcore/health"
    with urllib.request.urlopen(url, timeout=3) as response:
        body = response.read().decode()
    if body.strip() != "ok":
        msg = f"{url} answered {body[:80]!r}, not ok"
        raise ServiceError(msg)


def dashboard_service(settings: Settings) -> Managed:
    """The dashboards as ``asbuilt up`` runs them (:func:`asbuilt.services.stack.dashboards`:
    ``python -m dashboards`` makes the roles, then serves the app as the read-only role)."""
    return stack.dashboards(settings)
