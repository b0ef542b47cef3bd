"""Start the local stack in dependency order, wait for health, restart what dies, stop it all.

Every service is a child process with its own log file under ``ASBUILT_HOME/logs``. The
supervisor records what runs in ``ASBUILT_HOME/run/state.json`` (no secrets), which ``asbuilt
status`` and ``asbuilt down`` read. Children get a parent-death signal, so a supervisor that is
killed does not leave them behind; one that died anyway is cleaned up by the next ``up``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asbuilt.errors import ServiceError
from asbuilt.settings import Settings

logger = logging.getLogger(__name__)

STOP_TIMEOUT_S = 20.0
MAX_RESTARTS = 5  # within RESTART_WINDOW_S; after that the service is reported as failed
RESTART_WINDOW_S = 300.0
HEALTH_INTERVAL_S = 10.0  # how often a running stack checks every service's health
UNHEALTHY_LIMIT = 3  # failed checks in a row before a hung service is restarted
_PR_SET_PDEATHSIG = 1


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _exit_reason(code: int) -> str:
    return f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def port_in_use(host: str, port: int) -> bool:
    """True when something listens on host:port (or the address cannot be bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno in (errno.EADDRINUSE, errno.EACCES)
    return False


def listener_of(port: int) -> str:
    """Best effort: 'pid N (name)' of the process listening on the port, from /proc."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[3] == "0A":
                    inodes.add(cols[9])
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd).removeprefix("socket:[").removesuffix("]") in inodes:
                    name = (proc / "comm").read_text().strip()
                    return f"pid {proc.name} ({name})"
    return "another process"


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _set_parent_death_signal(sig: int) -> Callable[[], None]:
    def preexec() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig)

    return preexec


@dataclass
class Managed:
    """One service of the stack: how to run it, where it answers, how to tell it is healthy."""

    name: str
    address: str
    health: Callable[[], object]  # raises when unhealthy; its return value is ignored
    argv: list[str] | None = None  # None: an external service we only check
    port: int | None = None
    user: str | None = None
    env: dict[str, str] | None = None
    stop_signal: int = signal.SIGTERM
    prepare: Callable[[], None] | None = None  # before each start (e.g. initdb)
    ready: Callable[[], dict[str, str]] | None = None  # after healthy (migrate, epoch, ...)
    note: str = ""
    depends_on: tuple[str, ...] = ()  # restarted when one of these is (e.g. a new broker log)
    metrics: Path | None = None  # a JSON file the service keeps current; `status` shows it
    proc: subprocess.Popen[bytes] | None = None
    info: dict[str, str] = field(default_factory=dict)
    restarts: list[float] = field(default_factory=list)
    last_error: str = ""
    failed: bool = False
    unhealthy: int = 0  # consecutive failed health checks


@dataclass
class Periodic:
    """Housekeeping the supervisor runs every ``every_s`` while the stack is up (retention)."""

    name: str
    every_s: float
    run: Callable[[], object]
    due: float = 0.0  # monotonic time of the next run; 0 = at the first tick


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        services: list[Managed],
        periodic: list[Periodic] | None = None,
    ) -> None:
        self.settings = settings
        self.services = services
        self.periodic = periodic or []
        self.ready = False
        self._lock = threading.Lock()
        settings.logs_dir.mkdir(parents=True, exist_ok=True)
        settings.run_dir.mkdir(parents=True, exist_ok=True)

    @property
    def state_file(self) -> Path:
        return self.settings.run_dir / "state.json"

    def log_file(self, svc: Managed) -> Path:
        return self.settings.logs_dir / f"{svc.name}.log"

    # -- start -------------------------------------------------------------------------------

    def start_all(self, progress: Callable[[str], None] = logger.info) -> None:
        """Start every service in order; on any failure stop what was started and raise."""
        for svc in self.services:  # every port first: fail before starting anything
            self._check_port(svc)
        try:
            for svc in self.services:
                began = time.monotonic()
                self._start(svc)
                progress(
                    f"{svc.name:<12} healthy at {svc.address} "
                    f"({time.monotonic() - began:.1f} s){' — ' + svc.note if svc.note else ''}"
                )
        except BaseException:
            self.stop_all()
            raise
        self.ready = True
        self.write_state()

    def _check_port(self, svc: Managed) -> None:
        if (
            svc.argv is not None
            and svc.port is not None
            and port_in_use(self.settings.bind_host, svc.port)
        ):
            msg = (
                f"{svc.name}: port {svc.port} on {self.settings.bind_host} is already in use "
                f"by {listener_of(svc.port)}. Stop that process, or choose another port "
                f"(see `asbuilt doctor` for the ASBUILT_*_PORT settings)."
            )
            raise ServiceError(msg)

    def _start(self, svc: Managed) -> None:
        if svc.argv is not None:
            self._check_port(svc)
            if svc.prepare is not None:
                svc.prepare()
            log = self.log_file(svc)
            with open(log, "ab") as out:
                out.write(f"\n=== {_now()} starting {svc.name}: {' '.join(svc.argv)}\n".encode())
                out.flush()
                svc.proc = subprocess.Popen(
                    svc.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    user=svc.user,
                    env=svc.env,
                    cwd="/",
                    # Its own process group: Ctrl-C reaches only the supervisor, which then
                    # stops the services in order; the death signal covers a killed supervisor.
                    process_group=0,
                    preexec_fn=_set_parent_death_signal(svc.stop_signal),
                )
        self._wait_healthy(svc)
        if svc.ready is not None:
            try:
                svc.info.update(svc.ready())
            except Exception as exc:
                if svc.proc is not None and svc.proc.poll() is not None:
                    reason = _exit_reason(svc.proc.returncode)
                    msg = f"{svc.name} {reason} while being prepared: {exc}"
                    raise ServiceError(msg) from exc
                raise
        svc.failed = False
        self.write_state()

    def _wait_healthy(self, svc: Managed) -> None:
        deadline = time.monotonic() + self.settings.start_timeout_s
        last = ""
        while time.monotonic() < deadline:
            if svc.proc is not None and svc.proc.poll() is not None:
                msg = (
                    f"{svc.name} exited with code {svc.proc.returncode} while starting; "
                    f"last lines of {self.log_file(svc)}:\n{tail(self.log_file(svc))}"
                )
                svc.last_error = msg
                raise ServiceError(msg)
            try:
                svc.health()
            except Exception as exc:  # noqa: BLE001 - any failure means "not yet healthy"
                last = str(exc)
                time.sleep(0.1)
                continue
            return
        msg = (
            f"{svc.name} did not become healthy within {self.settings.start_timeout_s:.0f} s "
            f"(ASBUILT_START_TIMEOUT_S): {last}"
        )
        svc.last_error = msg
        raise ServiceError(msg)

    # -- watch -------------------------------------------------------------------------------

    def watch(self, stop: threading.Event, interval_s: float = 1.0) -> None:
        """Until ``stop`` is set: restart a service that died or hangs (fails its health check
        ``UNHEALTHY_LIMIT`` times in a row), restart the services that depend on a restarted one,
        report one that keeps dying, and report an external service that is unhealthy."""
        last_health = time.monotonic()
        while not stop.wait(interval_s):
            self._housekeeping()
            check_health = time.monotonic() - last_health >= HEALTH_INTERVAL_S
            if check_health:
                last_health = time.monotonic()
            for svc in self.services:
                if svc.failed:
                    continue
                reason = self._trouble(svc, check_health)
                if reason is None:
                    continue
                svc.last_error = f"{_now()} {reason}"
                logger.error("%s: %s", svc.name, svc.last_error)
                if svc.argv is not None:
                    self._restart(svc)
                    for dependent in self.services:
                        if svc.name in dependent.depends_on and not dependent.failed:
                            logger.warning(
                                "restarting %s: %s was restarted", dependent.name, svc.name
                            )
                            self._restart(dependent)
                self.write_state()

    def _trouble(self, svc: Managed, check_health: bool) -> str | None:
        """Why ``svc`` needs attention now, or None."""
        if svc.proc is not None and svc.proc.poll() is not None:
            return f"{_exit_reason(svc.proc.returncode)}; see {self.log_file(svc)}"
        if not check_health:
            return None
        try:
            svc.health()
        except Exception as exc:  # noqa: BLE001 - any failure counts
            svc.unhealthy += 1
            if svc.unhealthy >= UNHEALTHY_LIMIT or svc.argv is None:
                svc.unhealthy = 0
                return f"unhealthy {UNHEALTHY_LIMIT} checks in a row: {exc}"
            return None
        svc.unhealthy = 0
        return None

    def _restart(self, svc: Managed) -> None:
        now = time.monotonic()
        svc.restarts = [t for t in svc.restarts if now - t < RESTART_WINDOW_S]
        if len(svc.restarts) >= MAX_RESTARTS:
            svc.failed = True
            logger.error(
                "%s needed %d restarts in %.0f s; not restarting it again (see %s)",
                svc.name,
                MAX_RESTARTS,
                RESTART_WINDOW_S,
                self.log_file(svc),
            )
            return
        svc.restarts.append(now)
        if svc.proc is not None and svc.proc.poll() is None:
            stop_process(svc.proc.pid, svc.stop_signal, svc.name)
        try:
            self._start(svc)
            logger.warning("%s restarted (restart %d)", svc.name, len(svc.restarts))
        except Exception as exc:  # noqa: BLE001 - a failed restart is reported, not fatal
            svc.last_error = f"{_now()} restart failed: {exc}"
            logger.error("restarting %s failed: %s", svc.name, exc)

    def _housekeeping(self) -> None:
        now = time.monotonic()
        for job in self.periodic:
            if now < job.due:
                continue
            job.due = now + job.every_s
            try:
                job.run()
            except Exception:
                logger.exception(
                    "housekeeping %s failed; retrying in %.0f s", job.name, job.every_s
                )

    # -- stop --------------------------------------------------------------------------------

    def stop_all(self) -> None:
        """Stop every running service, in reverse order; kill what does not stop in time."""
        for svc in reversed(self.services):
            if svc.proc is None or svc.proc.poll() is not None:
                continue
            stop_process(svc.proc.pid, svc.stop_signal, svc.name)
            with contextlib.suppress(subprocess.TimeoutExpired):
                svc.proc.wait(timeout=1)
        self.ready = False
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()

    # -- state -------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "supervisor_pid": os.getpid(),
            "ready": self.ready,
            "updated": _now(),
            "services": [
                {
                    "name": s.name,
                    "pid": s.proc.pid if s.proc is not None and s.proc.poll() is None else None,
                    "address": s.address,
                    "stop_signal": int(s.stop_signal),
                    "program": s.argv[0] if s.argv else None,
                    "metrics": str(s.metrics) if s.metrics else None,
                    "log": str(self.log_file(s)) if s.argv is not None else None,
                    "restarts": len(s.restarts),
                    "failed": s.failed,
                    "last_error": s.last_error,
                    "note": s.note,
                    **s.info,
                }
                for s in self.services
            ],
        }

    def write_state(self) -> None:
        with self._lock:
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.state(), indent=2))
            tmp.replace(self.state_file)


def stop_process(pid: int, sig: int, name: str, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Signal a process and wait for it to go; SIGKILL it after ``timeout_s``."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        time.sleep(0.05)
    if pid_alive(pid):
        logger.warning("%s (pid %d) did not stop in %.0f s; killing it", name, pid, timeout_s)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def read_state(settings: Settings) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads((settings.run_dir / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return state


def running_supervisor(settings: Settings) -> int | None:
    """The pid of the supervisor of this ASBUILT_HOME, if one runs (it holds the lock)."""
    path = settings.run_dir / "supervisor.pid"
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            with contextlib.suppress(ValueError, OSError):
                return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)  # nobody holds it: a stale file from a dead supervisor
        return None
    finally:
        os.close(fd)


def already_running(settings: Settings, pid: int | None) -> ServiceError:
    msg = (
        f"the asbuilt stack of {settings.home_dir} is already running "
        f"(supervisor pid {pid}): see `asbuilt status`, stop it with `asbuilt down`"
    )
    return ServiceError(msg)


@contextlib.contextmanager
def pid_file(settings: Settings) -> Iterator[None]:
    """Hold ``run/supervisor.pid`` (an exclusive lock) while a supervisor runs; refuse a second.

    The lock, not the pid's existence, says whether a supervisor runs: a stale file (a killed
    supervisor, a reboot) never makes a living unrelated process look like ours.
    """
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    path = settings.run_dir / "supervisor.pid"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise already_running(settings, running_supervisor(settings)) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


def _same_program(pid: int, program: str | None) -> bool:
    """True when ``pid`` still runs ``program`` (guards against a reused pid)."""
    if not program:
        return False
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return False
    return Path(argv0).name == Path(program).name


def stop_leftovers(settings: Settings) -> list[str]:
    """Stop services recorded by a supervisor that is gone (killed); return their names."""
    state = read_state(settings)
    if state is None or running_supervisor(settings) is not None:
        return []
    stopped = []
    for svc in state.get("services", []):
        pid = svc.get("pid")
        if pid and pid_alive(pid) and _same_program(pid, svc.get("program")):
            stop_process(pid, int(svc.get("stop_signal", signal.SIGTERM)), svc["name"])
            stopped.append(svc["name"])
    with contextlib.suppress(FileNotFoundError):
        (settings.run_dir / "state.json").unlink()
    return stopped
