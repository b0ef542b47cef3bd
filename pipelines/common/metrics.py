"""What a flow process counts about itself, and the thread that writes it to a JSON file.

Counting must cost nothing per event: the source adds whole batches (``len(batch)``) and the
sinks add the rows of each transaction, all in one worker thread, so plain integer attributes of
one module-level :data:`METRICS` suffice (no locks: the writer thread only reads them).

The file (``--metrics``, default ``ASBUILT_HOME/run/<flow>.metrics.json``) is rewritten every
second; ``asbuilt status`` shows it and the stack's health check reads it. ``heartbeat_age_s``
tells a hung flow from an idle one: the source beats on every poll (even with no data) and a sink
beats while it waits for the database, so only a worker stuck elsewhere goes stale.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


@dataclass
class Metrics:
    """Counters of one flow process (see the module docstring)."""

    flow: str = ""
    items_in: int = 0  # events decoded by the source(s)
    dead_letters: int = 0  # messages the source could not decode
    rows_out: int = 0  # rows the sinks wrote (inserted or updated or skipped as duplicates)
    last_event_ts: datetime | None = None  # event time of the latest decoded event
    last_write_ts: datetime | None = None  # wall time of the latest committed sink write
    heartbeat: float = field(default_factory=time.monotonic)
    db_waiting: str = ""  # non-empty while a sink retries the database: why
    kafka_errors: int = 0
    last_kafka_error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # set by the runner (store, epoch ...)

    def beat(self) -> None:
        self.heartbeat = time.monotonic()


METRICS = Metrics()
"""The counters of this process (one flow per process)."""


class MetricsWriter:
    """A daemon thread that writes :data:`METRICS` to ``path`` every ``interval_s`` seconds."""

    def __init__(self, path: Path, metrics: Metrics = METRICS, interval_s: float = 1.0) -> None:
        self.path = path
        self.metrics = metrics
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics", daemon=True)
        self._last: tuple[float, int, int] | None = None

    def start(self) -> MetricsWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.write()

    def report(self) -> dict[str, Any]:
        m = self.metrics
        now = time.monotonic()
        events_per_s = rows_per_s = 0.0
        if self._last is not None:
            then, items, rows = self._last
            span = max(now - then, 1e-6)
            events_per_s = (m.items_in - items) / span
            rows_per_s = (m.rows_out - rows) / span
        self._last = (now, m.items_in, m.rows_out)
        return {
            "flow": m.flow,
            "updated": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "items_in": m.items_in,
            "rows_out": m.rows_out,
            "dead_letters": m.dead_letters,
            "events_per_s": round(events_per_s, 1),
            "rows_per_s": round(rows_per_s, 1),
            "last_event_ts": m.last_event_ts.isoformat() if m.last_event_ts else None,
            "last_write_ts": m.last_write_ts.isoformat() if m.last_write_ts else None,
            "heartbeat_age_s": round(now - m.heartbeat, 3),
            "db_waiting": m.db_waiting,
            "kafka_errors": m.kafka_errors,
            "last_kafka_error": m.last_kafka_error,
            **m.extra,
        }

    def write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(self.report(), default=str))
            tmp.replace(self.path)
        except OSError as exc:
            logger.warning("cannot write metrics to %s: %s", self.path, exc)

    def _run(self) -> None:
        self.write()  # at once: a reader should not find the file of a previous run
        while not self._stop.wait(self.interval_s):
            self.write()


def read_metrics(path: Path) -> dict[str, Any]:
    """The last report a flow wrote to ``path``; empty if there is none (yet)."""
    try:
        report: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return report
