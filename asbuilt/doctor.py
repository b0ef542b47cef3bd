"""``asbuilt doctor``: every prerequisite checked, each failure with the command that fixes it."""

from __future__ import annotations

import importlib.util
import os
import platform
import pwd
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from asbuilt import kafka
from asbuilt.errors import AsbuiltError
from asbuilt.services import stack
from asbuilt.services.broker import tansu_binary
from asbuilt.services.postgres import (
    cluster_os_user,
    find_bindir,
    locate_cluster,
    nearest_existing,
)
from asbuilt.services.supervisor import listener_of, port_in_use, running_supervisor
from asbuilt.settings import Settings

REQUIRED_MODULES = (
    "bytewax",
    "confluent_kafka",
    "asyncua",
    "psycopg",
    "psycopg_pool",
    "polars",
    "msgspec",
    "streamlit",
    "great_expectations",
)
MIN_FREE_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _os_release(path: Path = Path("/etc/os-release")) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            values[key] = value.strip().strip('"')
    return values


def check_os(settings: Settings) -> Check:
    release = _os_release()
    name = release.get("PRETTY_NAME", platform.platform())
    ok = release.get("ID") == "debian" and release.get("VERSION_ID") in {"12", "13"}
    if not ok and not settings.embedded_db and not settings.embedded_broker:
        return Check("operating system", True, f"{name} (existing TimescaleDB and Kafka used)")
    return Check(
        "operating system",
        ok,
        name,
        "the embedded TimescaleDB is installed on Debian 12 or 13 only; elsewhere set "
        "ASBUILT_DB_DSN to an existing TimescaleDB and ASBUILT_KAFKA_BOOTSTRAP to a Kafka cluster",
    )


def check_python() -> Check:
    ok = (3, 11) <= sys.version_info[:2] < (3, 13)
    return Check(
        "python",
        ok,
        f"{platform.python_version()} at {sys.executable}",
        "use CPython 3.11 or 3.12 (bytewax 0.21.1 has no 3.13 wheels): `make install`",
    )


def check_modules() -> Check:
    missing = [m for m in REQUIRED_MODULES if importlib.util.find_spec(m) is None]
    return Check(
        "python packages",
        not missing,
        f"missing: {', '.join(missing)}" if missing else f"{len(REQUIRED_MODULES)} present",
        "`make install` (uv sync --frozen into .venv)",
    )


def _guard(name: str, probe: Callable[[], str], fix: str) -> Check:
    try:
        return Check(name, True, probe())
    except (AsbuiltError, OSError) as exc:
        return Check(name, False, str(exc), fix)
    except Exception as exc:  # noqa: BLE001 - a doctor reports, it does not crash
        return Check(name, False, f"{type(exc).__name__}: {exc}", fix)


def check_database(settings: Settings) -> Iterator[Check]:
    if settings.db_dsn is not None:
        dsn = settings.db_dsn.get_secret_value()

        def probe() -> str:
            stack.check_database(dsn)
            return f"reachable: {stack.redact(dsn)}"

        yield _guard("timescaledb (external)", probe, "check ASBUILT_DB_DSN and the server")
        return
    yield _guard(
        "timescaledb install",
        lambda: f"PostgreSQL with TimescaleDB at {find_bindir()}",
        "`make install` (runs infra/install-timescaledb.sh as root)",
    )

    def where() -> str:
        location = locate_cluster(settings, cluster_os_user())
        return f"{location.data_dir} ({location.reason}), run by {cluster_os_user() or 'you'}"

    yield _guard("timescaledb cluster", where, "run as root, or `make install` first")
    yield check_orphans()


def check_orphans(root: Path | None = None) -> Check:
    """Clusters kept outside ASBUILT_HOME whose checkout is gone (deleted without --purge)."""
    if root is None:
        try:
            root = Path(pwd.getpwnam("postgres").pw_dir) / "asbuilt"
        except KeyError:
            return Check("orphaned clusters", True, "none (no postgres user)")
    orphans = []
    for owner in sorted(root.glob("*/owner")) if root.exists() else []:
        home = Path(owner.read_text().strip())
        if not home.exists():
            orphans.append(f"{owner.parent} (was {home})")
    return Check(
        "orphaned clusters",
        not orphans,
        f"{len(orphans)}: {', '.join(orphans)}" if orphans else "none",
        "stop any server still using them, then `rm -rf` those folders",
    )


def check_broker(settings: Settings) -> Check:
    if settings.kafka_bootstrap is not None:
        bootstrap = settings.kafka_bootstrap
        return _guard(
            "kafka (external)",
            lambda: f"{bootstrap}: {kafka.check_broker(settings.kafka)} broker(s)",
            "check ASBUILT_KAFKA_BOOTSTRAP and the cluster",
        )
    return _guard("broker binary", lambda: str(tansu_binary()), "`make install`")


def check_ports(settings: Settings) -> Iterator[Check]:
    ours = running_supervisor(settings) is not None
    ports = {"ASBUILT_DASHBOARD_PORT": settings.dashboard_port}
    if settings.embedded_db:
        ports["ASBUILT_DB_PORT"] = settings.db_port
    if settings.embedded_broker:
        ports["ASBUILT_BROKER_PORT"] = settings.broker_port
    for env, port in ports.items():
        busy = port_in_use(settings.bind_host, port)
        if not busy:
            yield Check(f"port {port}", True, f"free on {settings.bind_host} ({env})")
        elif ours:
            yield Check(f"port {port}", True, "used by this asbuilt stack (running)")
        else:
            yield Check(
                f"port {port}",
                False,
                f"in use on {settings.bind_host} by {listener_of(port)}",
                f"stop that process or set {env} to a free port",
            )


def check_home(settings: Settings) -> Iterator[Check]:
    home = settings.home_dir

    def writable() -> str:
        existing = nearest_existing(home)  # created on the first `up`; doctor creates nothing
        if not os.access(existing, os.W_OK | os.X_OK):
            msg = f"{existing} is not writable, so {home} cannot be used"
            raise OSError(msg)
        return str(home) if home.exists() else f"{home} (created on the first `asbuilt up`)"

    yield _guard("state directory", writable, "set ASBUILT_HOME to a writable folder")
    free = shutil.disk_usage(nearest_existing(home)).free
    yield Check(
        "disk space",
        free >= MIN_FREE_BYTES,
        f"{free / 1024**3:.1f} GiB free under {home}",
        "free some disk space or set ASBUILT_HOME to a larger disk",
    )


def run(settings: Settings) -> list[Check]:
    checks = [check_os(settings), check_python(), check_modules()]
    checks += check_home(settings)
    checks += check_database(settings)
    checks.append(check_broker(settings))
    checks += check_ports(settings)
    return checks
