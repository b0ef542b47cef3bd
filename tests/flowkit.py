"""Helpers for tests of the Bytewax flows against the real broker and database.

    from tests.flowkit import FlowProcess, flow_settings, produce, table_rows, wait_until

    def test_x(local_stack, db_dsn, topic_prefix, tmp_path):
        settings = flow_settings(local_stack, db_dsn, topic_prefix, tmp_path)
        produce(settings, events)
        with FlowProcess("historian", settings) as flow:
            wait_until(lambda: count_rows(db_dsn, "alarms") == 3, 60, "3 alarms stored",
                       processes=[flow])

Each test has its own database (``db_dsn``), its own topics (``topic_prefix``) and its own
``ASBUILT_HOME`` (recovery stores, metrics, the flow's log) under ``tmp_path``. A flow runs as
``python -m pipelines.<name>``, the same process ``asbuilt up`` starts; its output goes to
``<home>/logs/<name>.log``, shown whenever a wait fails or the process died.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import Producer
from psycopg import sql

from asbuilt import events as ev
from asbuilt import kafka, topics
from asbuilt.settings import Settings
from tests.conftest import Stack

ROOT = Path(__file__).resolve().parents[1]

Raw = tuple[topics.TopicKind, bytes | None] | tuple[topics.TopicKind, bytes | None, bytes | None]
"""A raw message: ``(kind, value)`` or ``(kind, key, value)`` -- for bad input."""


def flow_settings(
    local_stack: Stack, db_dsn: str, topic_prefix: str, tmp_path: Path, **overrides: Any
) -> Settings:
    """Settings of a flow under test: the session's broker, the test's database and topics, a
    home of its own under ``tmp_path``, a short snapshot interval (1 s). ``overrides`` are
    Settings fields (e.g. ``oee_lateness_s=5``)."""
    values: dict[str, Any] = {
        "home": tmp_path / ".asbuilt",
        "db_dsn": db_dsn,
        "kafka_bootstrap": local_stack.bootstrap,
        "kafka_partitions": 1,
        "topic_prefix": topic_prefix,
        "snapshot_interval_s": 1.0,
        "log_level": "INFO",
    }
    values.update(overrides)
    return Settings.model_validate(values)


def produce(
    settings: Settings,
    messages: Iterable[ev.Event | ev.DeadLetter | Raw],
    record_time: bool = False,
) -> int:
    """Publish events (to their topic, keyed by asset) or raw messages (``(kind, value)`` or
    ``(kind, key, value)``) under ``settings.topic_prefix``; wait until all are acknowledged.
    ``record_time``: an event's Kafka record timestamp is its ingest time, as the records a
    connector published live carry it (else: the time of this call, as for a burst).
    Returns how many were sent."""
    producer = Producer(kafka.producer_config(settings.kafka, **{"linger.ms": 20}))
    prefix = settings.topic_prefix
    sent = 0
    for message in messages:
        if isinstance(message, tuple):
            kind, *rest = message
            key, value = (None, rest[0]) if len(rest) == 1 else (rest[0], rest[1])
            topic = topics.topic_name(kind, prefix)
        else:
            topic, key, value = (
                topics.topic_for(message, prefix),
                ev.key(message),
                ev.encode(message),
            )
        stamp = {}
        if record_time and isinstance(message, ev.Event):
            stamp = {"timestamp": int(message.ingest_ts.timestamp() * 1000)}
        while True:
            try:
                producer.produce(topic, value, key=key, **stamp)
                break
            except BufferError:  # the local queue is full: let it drain
                producer.poll(0.05)
        sent += 1
        if sent % 10_000 == 0:
            producer.poll(0)
    left = producer.flush(60)
    assert left == 0, f"{left} of {sent} messages were not acknowledged by the broker"
    return sent


class FlowProcess:
    """``python -m pipelines.<name>`` with ``settings``, as a child process.

    ``start()``, ``stop()`` (SIGTERM, wait), ``kill()`` (SIGKILL), ``restart()``; a context
    manager (stops on exit). ``output()`` is what it printed; ``metrics()`` its metrics file.
    """

    def __init__(self, name: str, settings: Settings, *args: str) -> None:
        self.name = name
        self.settings = settings
        self.args = list(args)
        self.metrics_path = settings.metrics_file(name)
        self.log_path = settings.logs_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASBUILT_")}
        return env | self.settings.to_env() | {"PYTHONUNBUFFERED": "1"}

    def start(self) -> FlowProcess:
        assert not self.alive(), f"{self.name} is already running"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.metrics_path.unlink(missing_ok=True)
        with open(self.log_path, "ab") as out:
            out.write(f"=== starting {self.name}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", f"pipelines.{self.name}",
                    "--metrics", str(self.metrics_path), *self.args,
                ],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env(), cwd=ROOT,
            )  # fmt: skip
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM, wait; return the exit code (0 is a clean stop). Kills after ``timeout_s``."""
        assert self.proc is not None, f"{self.name} was never started"
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(
                    f"{self.name} did not stop within {timeout_s:.0f} s of SIGTERM:\n"
                    f"{self.output()}"
                ) from None
        return int(self.proc.returncode)

    def kill(self) -> None:
        """SIGKILL: no goodbye, no final snapshot -- a crash."""
        assert self.proc is not None, f"{self.name} was never started"
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def restart(self) -> FlowProcess:
        if self.alive():
            self.stop()
        return self.start()

    def output(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no output)"
        return "\n".join(text.splitlines()[-lines:])

    def metrics(self) -> dict[str, Any]:
        try:
            report: dict[str, Any] = json.loads(self.metrics_path.read_text())
        except (OSError, ValueError):
            return {}
        return report

    def check_alive(self) -> None:
        """Raise AssertionError with its output if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(
                f"{self.name} exited with code {self.proc.returncode}:\n{self.output()}"
            )

    def __enter__(self) -> FlowProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.alive():
            try:
                self.stop()
            except AssertionError:
                if exc[0] is None:
                    raise


def wait_until(
    predicate: Callable[[], object],
    timeout_s: float = 120.0,
    what: str = "the condition",
    processes: Sequence[FlowProcess] = (),
    interval_s: float = 0.2,
) -> None:
    """Poll ``predicate`` until it is truthy. A timeout (a hang, not a speed limit: be
    generous) or a process of ``processes`` that died raises AssertionError naming ``what``,
    with the processes' output."""
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    while True:
        try:
            if predicate():
                return
            last_error = None
        except (psycopg.OperationalError, AssertionError) as exc:
            last_error = exc
        for proc in processes:
            if proc.proc is not None and proc.proc.poll() is not None:
                raise AssertionError(
                    f"waiting for {what}: {proc.name} exited with code "
                    f"{proc.proc.returncode}:\n{proc.output()}"
                )
        if time.monotonic() > deadline:
            outputs = "\n".join(f"--- {p.name}:\n{p.output()}" for p in processes)
            extra = f" (last error: {last_error})" if last_error else ""
            raise AssertionError(
                f"timed out after {timeout_s:.0f} s waiting for {what}{extra}\n{outputs}"
            )
        time.sleep(interval_s)


def table_rows(
    dsn: str, table: str, order_by: str | Sequence[str], columns: Sequence[str] = ()
) -> list[tuple[Any, ...]]:
    """Every row of ``table`` (``columns``, default all) ordered by ``order_by``."""
    order = [order_by] if isinstance(order_by, str) else list(order_by)
    cols = sql.SQL(", ").join(map(sql.Identifier, columns)) if columns else sql.SQL("*")
    query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
        cols, sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, order))
    )
    with psycopg.connect(dsn) as conn:
        return conn.execute(query).fetchall()


def count_rows(dsn: str, table: str) -> int:
    """How many rows ``table`` holds."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchone()
    return int(row[0]) if row else 0
