"""The embedded TimescaleDB: a project-private PostgreSQL cluster, loopback only.

PostgreSQL refuses to run as root, so when asbuilt runs as root the cluster belongs to the
``postgres`` OS user (created by Debian's postgresql-common). Its data lives under
``ASBUILT_HOME/pg`` when that user can reach the folder; a checkout under ``/root`` (mode 700)
is not reachable, and then the cluster lives in that user's home instead, under a name derived
from ``ASBUILT_HOME`` (``asbuilt status`` says where, and why).
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg

from asbuilt.errors import ConfigError, ServiceError
from asbuilt.settings import Settings

logger = logging.getLogger(__name__)

SUPPORTED_PG_MAJORS = (17, 16, 15)
SUPERUSER = "asbuilt"
INSTALL_HINT = "run `make install` (or `bash infra/install-timescaledb.sh` as root)"


def find_bindir() -> Path:
    """The bin directory of a PostgreSQL installation that has the TimescaleDB extension."""
    for major in SUPPORTED_PG_MAJORS:
        bindir = Path(f"/usr/lib/postgresql/{major}/bin")
        control = Path(f"/usr/share/postgresql/{major}/extension/timescaledb.control")
        if (bindir / "postgres").exists() and control.exists():
            return bindir
    msg = (
        "no PostgreSQL with the TimescaleDB extension found under /usr/lib/postgresql/"
        f"{{{','.join(map(str, SUPPORTED_PG_MAJORS))}}}: {INSTALL_HINT}, "
        "or set ASBUILT_DB_DSN to an existing TimescaleDB"
    )
    raise ConfigError(msg)


def cluster_os_user() -> str | None:
    """The OS user that runs the cluster: ``postgres`` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        msg = (
            f"running as root but there is no `postgres` OS user to own the cluster: {INSTALL_HINT}"
        )
        raise ConfigError(msg) from None
    return "postgres"


def nearest_existing(path: Path) -> Path:
    """``path`` itself if it exists, else its nearest ancestor that does."""
    while not path.exists():
        path = path.parent
    return path


def _reachable_by(user: str, folder: Path) -> bool:
    """True when ``user`` could reach ``folder``: its nearest existing ancestor is searchable.

    The folders below it do not exist yet; they will be created by us (mode 755) and the last
    one handed to ``user``.
    """
    probe = subprocess.run(["test", "-x", str(nearest_existing(folder))], user=user, check=False)
    return probe.returncode == 0


def _chown(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)


@dataclass(frozen=True)
class ClusterLocation:
    """Where the cluster's files are, and why there."""

    root: Path  # holds data/ and the superuser password
    reason: str

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def password_file(self) -> Path:
        return self.root / "superuser.password"


def locate_cluster(settings: Settings, os_user: str | None) -> ClusterLocation:
    """Where the cluster is, or will be: under ASBUILT_HOME when the OS user can reach it.

    Creates nothing (``asbuilt status`` and ``doctor`` call it); :meth:`initialise` does.
    """
    preferred = ClusterLocation(settings.home_dir / "pg", "under ASBUILT_HOME")
    if os_user is None:
        return preferred
    tag = hashlib.sha256(str(settings.home_dir).encode()).hexdigest()[:12]
    fallback_root = Path(pwd.getpwnam(os_user).pw_dir) / "asbuilt" / tag
    fallback = ClusterLocation(
        fallback_root,
        f"ASBUILT_HOME ({settings.home_dir}) is not reachable by OS user {os_user!r}, "
        f"so the cluster lives in {fallback_root}",
    )
    for known in (preferred, fallback):
        if (known.data_dir / "PG_VERSION").exists():
            return known
    return preferred if _reachable_by(os_user, preferred.root) else fallback


class EmbeddedPostgres:
    """Initialise, configure and describe the project-private cluster; the supervisor runs it."""

    name = "timescaledb"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bindir = find_bindir()
        self.os_user = cluster_os_user()
        self.location = locate_cluster(settings, self.os_user)

    @property
    def address(self) -> str:
        return f"postgresql://{SUPERUSER}@{self.settings.bind_host}:{self.settings.db_port}"

    def dsn(self, dbname: str | None = None) -> str:
        try:
            password = quote(self.location.password_file.read_text().strip(), safe="")
        except FileNotFoundError:
            msg = (
                f"the embedded TimescaleDB of {self.settings.home_dir} has not been created yet "
                "(start the stack once with `asbuilt up`), or set ASBUILT_DB_DSN"
            )
            raise ConfigError(msg) from None
        host, port = self.settings.bind_host, self.settings.db_port
        db = dbname or self.settings.db_name
        return f"postgresql://{SUPERUSER}:{password}@{host}:{port}/{db}"

    def initialise(self) -> None:
        """initdb once (idempotent): UTF-8, a random superuser password, scram on TCP."""
        data = self.location.data_dir
        if (data / "PG_VERSION").exists():
            return
        if data.exists():
            shutil.rmtree(data)  # a half-made cluster from an interrupted initdb
        self.location.root.mkdir(parents=True, exist_ok=True)
        if self.os_user is not None:
            _chown(self.location.root, self.os_user)
        # Who this cluster belongs to, so an orphan (its checkout deleted) can be recognised.
        (self.location.root / "owner").write_text(f"{self.settings.home_dir}\n")
        pwfile = self.location.password_file
        pwfile.write_text(secrets.token_urlsafe(24) + "\n")
        pwfile.chmod(0o600)
        if self.os_user is not None:
            _chown(pwfile, self.os_user)
        logger.info("initialising the TimescaleDB cluster in %s", data)
        result = subprocess.run(
            [
                str(self.bindir / "initdb"),
                "--pgdata",
                str(data),
                "--username",
                SUPERUSER,
                "--pwfile",
                str(pwfile),
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ],
            user=self.os_user,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            msg = f"initdb failed in {data}:\n{result.stderr.strip() or result.stdout.strip()}"
            raise ServiceError(msg)

    def destroy(self) -> None:
        """Delete the cluster's files (the server must be stopped): ``asbuilt down --purge``."""
        shutil.rmtree(self.location.root, ignore_errors=True)

    def argv(self) -> list[str]:
        """The server command line; every setting that matters is explicit here."""
        options = {
            "port": str(self.settings.db_port),
            "listen_addresses": self.settings.bind_host,
            "unix_socket_directories": "",  # TCP only: socket paths under deep folders break
            "shared_preload_libraries": "timescaledb",
            "timescaledb.telemetry_level": "off",
            "max_connections": "200",
            "logging_collector": "off",
        }
        argv = [str(self.bindir / "postgres"), "-D", str(self.location.data_dir)]
        for key, value in options.items():
            argv += ["-c", f"{key}={value}"]
        return argv

    def health(self) -> None:
        """Raise unless the server answers on the maintenance database."""
        with psycopg.connect(self.dsn("postgres"), connect_timeout=2) as conn:
            conn.execute("SELECT 1")

    def ensure_database(self) -> None:
        """Create the application database (idempotent)."""
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.settings.db_name,)
            ).fetchone()
            if not exists:
                conn.execute(
                    psycopg.sql.SQL("CREATE DATABASE {}").format(
                        psycopg.sql.Identifier(self.settings.db_name)
                    )
                )
