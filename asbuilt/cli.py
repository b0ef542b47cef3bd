"""The one command line: ``asbuilt up | down | status | migrate | doctor | retention``."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import ValidationError

from asbuilt import db, migrations
from asbuilt import doctor as doctor_checks
from asbuilt.errors import AsbuiltError, ConfigError
from asbuilt.services import stack
from asbuilt.services.postgres import EmbeddedPostgres
from asbuilt.services.supervisor import (
    Supervisor,
    already_running,
    pid_file,
    read_state,
    running_supervisor,
    stop_leftovers,
    stop_process,
    tail,
)
from asbuilt.settings import Settings

app = typer.Typer(
    help="asbuilt: OPC UA → Kafka → Bytewax → TimescaleDB, for regulated plants.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
logger = logging.getLogger("asbuilt")

DETACH_TIMEOUT_S = 180.0


def _settings() -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"ASBUILT_{'_'.join(map(str, e['loc'])).upper()}={e.get('input')!r}: {e['msg']}"
            for e in exc.errors()
        )
        typer.secho(f"asbuilt: error: bad configuration: {problems}", err=True, fg="red")
        raise typer.Exit(2) from None
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return settings


def _say(line: str) -> None:
    typer.echo(f"[asbuilt] {line}", err=True)


def _fail(exc: Exception) -> typer.Exit:
    typer.secho(f"asbuilt: error: {exc}", err=True, fg=typer.colors.RED)
    return typer.Exit(1)


@app.command()
def up(
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Run the stack in the background.")
    ] = False,
) -> None:
    """Start the stack in dependency order, wait for health; Ctrl-C stops everything."""
    settings = _settings()
    if detach:
        _up_detached(settings)
        return
    try:
        with pid_file(settings):
            leftovers = stop_leftovers(settings)
            if leftovers:
                _say(f"stopped services left by a supervisor that died: {', '.join(leftovers)}")
            supervisor = Supervisor(
                settings, stack.build(settings), periodic=stack.housekeeping(settings)
            )
            # While starting, Ctrl-C or SIGTERM interrupts the start (which stops what it began).
            # SIGINT too, explicitly: a process started in the background of a script inherits
            # SIGINT ignored, and the supervisor must still answer it.
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            _say(f"starting the stack (state in {settings.home_dir})")
            missing = stack.missing_pipelines(settings)
            if missing:
                _say(f"not running pipelines that are not installed: {', '.join(missing)}")
            supervisor.start_all(progress=_say)
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            _say("the stack is up — `asbuilt status` shows it; Ctrl-C (or `asbuilt down`) stops it")
            try:
                supervisor.watch(stop)
            finally:
                _say("stopping the stack…")
                supervisor.stop_all()
                _say("stopped")
    except (AsbuiltError, OSError) as exc:
        raise _fail(exc) from None
    except KeyboardInterrupt:
        _say("interrupted while starting: stopped everything it had started")
        raise typer.Exit(130) from None


def _up_detached(settings: Settings) -> None:
    other = running_supervisor(settings)
    if other:
        raise _fail(already_running(settings, other))
    try:
        settings.logs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _fail(exc) from None
    log = settings.logs_dir / "supervisor.log"
    with open(log, "ab") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "asbuilt.cli", "up"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + DETACH_TIMEOUT_S

    def give_up_waiting(*_: object) -> None:
        _say(
            f"stopped waiting; the stack goes on starting in the background "
            f"(supervisor pid {child.pid}): `asbuilt status` shows it, `asbuilt down` stops it"
        )
        raise typer.Exit(130)

    signal.signal(signal.SIGINT, give_up_waiting)
    while time.monotonic() < deadline:
        if child.poll() is not None:
            typer.secho(
                f"asbuilt: error: the stack did not start; last lines of {log}:\n{tail(log)}",
                err=True,
                fg=typer.colors.RED,
            )
            raise typer.Exit(1)
        state = read_state(settings)
        if state and state.get("ready") and state.get("supervisor_pid") == child.pid:
            _say(f"the stack is up in the background (supervisor pid {child.pid}, log {log})")
            _print_status(settings, as_json=False)
            return
        time.sleep(0.2)
    stop_process(child.pid, signal.SIGTERM, "supervisor")
    typer.secho(
        f"asbuilt: error: the stack was not healthy within {DETACH_TIMEOUT_S:.0f} s; see {log}",
        err=True,
        fg=typer.colors.RED,
    )
    raise typer.Exit(1)


@app.command()
def down(
    purge: Annotated[
        bool,
        typer.Option(
            "--purge",
            help="Also delete all data: the cluster (wherever it lives) and ASBUILT_HOME.",
        ),
    ] = False,
) -> None:
    """Stop the stack started by `asbuilt up` (foreground or detached)."""
    settings = _settings()
    pid = running_supervisor(settings) or 0
    if pid:
        _say(f"stopping the supervisor (pid {pid}) and its services…")
        stop_process(pid, signal.SIGTERM, "supervisor", timeout_s=60)
    leftovers = stop_leftovers(settings)
    if leftovers:
        _say(f"stopped services left by a supervisor that died: {', '.join(leftovers)}")
    if not pid and not leftovers:
        _say("the stack is not running")
    else:
        _say("stopped")
    if purge:
        if settings.embedded_db and settings.home_dir.exists():
            with contextlib.suppress(AsbuiltError):
                EmbeddedPostgres(settings).destroy()
        shutil.rmtree(settings.home_dir, ignore_errors=True)
        _say(f"deleted all local data of {settings.home_dir}")


def _live_health(check: Callable[[], object] | None) -> tuple[bool, str]:
    """Ask the service now, with the same check the supervisor uses."""
    if check is None:
        return False, "not part of the stack as configured now"
    try:
        check()
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        return False, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return True, ""


def _rss_mib(pid: int) -> float | None:
    """Resident memory of a process (the embedded broker's grows with its in-memory log)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def _metrics(path: Path) -> dict[str, Any]:
    """What a connector or a flow reports about itself: the figures an operator looks at first."""
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if "flow" in report:
        return _flow_metrics(report)
    conn, pub = report.get("connector", {}), report.get("publisher", {})
    return {
        "opcua_connected": conn.get("connected"),
        "items_subscribed": conn.get("items"),
        "notifications_per_s": round(float(conn.get("rate") or 0), 1),
        "dead_letters": conn.get("dead_letters"),
        "spool_depth": pub.get("spool_depth"),
        "delivered_total": pub.get("delivered_total"),
        "broker_reachable": pub.get("broker_reachable"),
        "last_error": conn.get("last_error") or pub.get("last_error") or "",
    }


def _flow_metrics(report: dict[str, Any]) -> dict[str, Any]:
    """A Bytewax flow's figures (see pipelines/common/metrics.py)."""
    return {
        "events_per_s": report.get("events_per_s"),
        "rows_per_s": report.get("rows_per_s"),
        "events_total": report.get("items_in"),
        "rows_written_total": report.get("rows_out"),
        "dead_letters": report.get("dead_letters"),
        "last_event_ts": report.get("last_event_ts"),
        "last_write_ts": report.get("last_write_ts"),
        "heartbeat_age_s": report.get("heartbeat_age_s"),
        "waiting_for_database": report.get("db_waiting") or "",
        "recovery_store": report.get("recovery_store"),
        "log_epoch": report.get("log_epoch"),
        "last_error": report.get("last_kafka_error") or "",
    }


def _status(settings: Settings) -> dict[str, Any]:
    state = read_state(settings)
    running = state is not None and running_supervisor(settings) is not None
    services = []
    try:
        checks = {m.name: m.health for m in stack.build(settings)} if running else {}
    except AsbuiltError:
        checks = {}
    for svc in state.get("services", []) if state and running else []:
        healthy, error = _live_health(checks.get(svc["name"]))
        extra = {"healthy": healthy, "last_error": error or svc.get("last_error", "")}
        if svc.get("pid"):
            extra["rss_mib"] = _rss_mib(int(svc["pid"]))
        if svc.get("metrics"):
            extra |= _metrics(Path(svc["metrics"]))
        services.append(svc | extra)
    return {
        "home": str(settings.home_dir),
        "running": running,
        "ready": bool(running and state and state.get("ready")),
        "supervisor_pid": state.get("supervisor_pid") if running and state else None,
        "services": services,
    }


def _print_status(settings: Settings, as_json: bool) -> dict[str, Any]:
    report = _status(settings)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return report
    if not report["running"]:
        typer.echo(f"the asbuilt stack of {report['home']} is down (start it with `asbuilt up`)")
        return report
    starting = "" if report["ready"] else " — STARTING (not every service is up yet)"
    typer.echo(
        f"asbuilt stack of {report['home']} — supervisor pid {report['supervisor_pid']}{starting}"
    )
    for svc in report["services"]:
        health = "healthy" if svc["healthy"] else "UNHEALTHY"
        typer.echo(f"  {svc['name']:<12} {health:<9} pid {svc['pid'] or '-':<8} {svc['address']}")
        extras = {
            k: v
            for k, v in svc.items()
            if k not in {"name", "healthy", "pid", "address", "stop_signal", "failed"} and v
        }
        for key, value in extras.items():
            typer.echo(f"      {key}: {value}")
    return report


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Each service: pid, address, health, last error; exit 1 unless up, ready and healthy."""
    report = _print_status(_settings(), as_json)
    if not report["ready"] or not all(s["healthy"] for s in report["services"]):
        raise typer.Exit(1)


@app.command()
def migrate() -> None:
    """Apply pending schema migrations (the stack's `up` does this too)."""
    settings = _settings()
    try:
        dsn = stack.database_dsn(settings)
        applied = migrations.migrate(dsn)
        for name, state in migrations.status(dsn):
            typer.echo(f"{name}: {state}")
    except (AsbuiltError, psycopg.OperationalError) as exc:
        raise _fail(exc) from None
    numbered = [name for name in applied if not name.startswith("repeatable/")]
    views = len(applied) - len(numbered)
    _say(
        f"applied now: {', '.join(numbered) or 'nothing'}; views and functions re-applied: {views}"
    )


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def psql(ctx: typer.Context) -> None:
    """Open psql on the application database (extra arguments go to psql, e.g. -c 'SELECT 1')."""
    settings = _settings()
    try:
        dsn = stack.database_dsn(settings)
    except AsbuiltError as exc:
        raise _fail(exc) from None
    program = shutil.which("psql")
    if program is None:
        raise _fail(ConfigError("psql is not installed: `apt-get install postgresql-client`"))
    params = conninfo_to_dict(dsn)
    password = str(params.pop("password", "") or "")
    env = os.environ | ({"PGPASSWORD": password} if password else {})  # not on the command line
    os.execve(program, [program, make_conninfo("", **params), *ctx.args], env)  # noqa: S606


@app.command()
def doctor() -> None:
    """Check every prerequisite; say precisely what is wrong and how to fix it."""
    settings = _settings()
    failures = 0
    for check in doctor_checks.run(settings):
        mark = (
            typer.style("ok  ", fg=typer.colors.GREEN)
            if check.ok
            else typer.style("FAIL", fg=typer.colors.RED)
        )
        typer.echo(f"{mark} {check.name}: {check.detail}")
        if not check.ok:
            failures += 1
            typer.echo(f"     fix: {check.fix}")
    if failures:
        raise typer.Exit(1)


@app.command()
def retention(
    days: Annotated[
        int | None, typer.Option(help="Keep this many days (default ASBUILT_RETENTION_DAYS).")
    ] = None,
) -> None:
    """Drop raw time-series chunks older than the retention period (policies where licensed)."""
    settings = _settings()
    keep_days = days or settings.retention_days
    if keep_days is None:
        _say("no retention configured (ASBUILT_RETENTION_DAYS unset): everything is kept")
    try:
        keep = timedelta(days=keep_days) if keep_days else None
        dropped = db.retain(stack.database_dsn(settings), keep)
    except (AsbuiltError, psycopg.OperationalError) as exc:
        raise _fail(exc) from None
    for table, chunks in dropped.items():
        _say(f"{table}: {len(chunks)} chunk(s) dropped")


def main() -> None:
    os.umask(0o022)
    app()


if __name__ == "__main__":
    main()
