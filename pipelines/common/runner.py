"""The entry point of every flow process: ``python -m pipelines.<name>`` calls :func:`main`.

    python -m pipelines.historian [--metrics PATH] [--no-recovery]

What it does, in order:

1. settings from the environment (``Settings()``; a bad value exits 2 with the reason), logging
   at ``ASBUILT_LOG_LEVEL``;
2. the contract's topics exist (created with ``ASBUILT_KAFKA_PARTITIONS`` if not), and the
   broker's log epoch is read;
3. the recovery store ``ASBUILT_HOME/recovery/<name>`` is prepared for that epoch
   (:func:`asbuilt.recovery.prepare`: a new broker log resets it, so the flow re-reads the new
   log from its start instead of resuming at offsets of a log that is gone);
4. a metrics thread writes ``--metrics`` (default ``ASBUILT_HOME/run/<name>.metrics.json``)
   every second: items in, rows out, dead letters, events/s, last event time, heartbeat age,
   recovery store and epoch (:mod:`pipelines.common.metrics`);
5. the flow runs on one worker with recovery on and an epoch (= snapshot interval) of
   ``ASBUILT_SNAPSHOT_INTERVAL_S``, until SIGTERM or SIGINT, which stop it (exit 0). Whatever
   was not snapshotted yet is replayed by the next start; the idempotent sinks absorb it.

``--no-recovery`` runs without a recovery store (a benchmark of the snapshot tax; a restart then
re-reads every topic from the start).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Final

from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig
from bytewax.run import cli_main
from pydantic import ValidationError

from asbuilt import kafka, recovery, topics
from asbuilt.errors import AsbuiltError
from asbuilt.settings import Settings
from pipelines.common.metrics import METRICS, MetricsWriter

logger = logging.getLogger(__name__)

BuildFlow = Callable[[Settings], Dataflow]


_stopping: list[str] = []


def _stop(signum: int, _frame: FrameType | None) -> None:
    """SIGTERM/SIGINT: Bytewax checks for a pending Python exception between steps and then
    aborts the dataflow (no further snapshot; the next start replays from the last one)."""
    _stopping.append(signal.Signals(signum).name)
    raise KeyboardInterrupt(_stopping[-1])


def database_dsn(settings: Settings) -> str:
    """The DSN the flows write to: ``ASBUILT_DB_DSN``, else the embedded cluster's."""
    from asbuilt.services.stack import database_dsn as dsn_of  # the stack's one rule

    return dsn_of(settings)


def load_settings(prog: str) -> Settings:
    """``Settings()`` from the environment; exit 2 with one line per bad value."""
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"ASBUILT_{'_'.join(map(str, e['loc'])).upper()}={e.get('input')!r}: {e['msg']}"
            for e in exc.errors()
        )
        sys.stderr.write(f"{prog}: bad configuration: {problems}\n")
        raise SystemExit(2) from None
    return settings


def prepare(name: str, settings: Settings, use_recovery: bool = True) -> Path | None:
    """Topics, log epoch and recovery store of flow ``name``; return the store (or None)."""
    kafka.ensure_topics(
        settings.kafka,
        topics.all_topics(settings.topic_prefix),
        partitions=settings.kafka_partitions,
        replication=settings.kafka_replication,
    )
    epoch = kafka.log_epoch(settings.kafka)
    METRICS.extra |= {"log_epoch": epoch, "topic_prefix": settings.topic_prefix}
    if not use_recovery:
        METRICS.extra |= {"recovery_store": None}
        return None
    store = settings.recovery_dir(name)
    reset = recovery.prepare(store, epoch)
    METRICS.extra |= {
        "recovery_store": str(store),
        "recovery_store_reset": reset,
        "snapshot_interval_s": settings.snapshot_interval_s,
    }
    logger.info(
        "%s: recovery store %s (%s) for broker log epoch %s",
        name,
        store,
        "new" if reset else "resuming",
        epoch,
    )
    return store


GC_THRESHOLDS: Final = (50_000, 20, 20)
"""CPython's cyclic garbage collector thresholds for a flow process (default 700, 10, 10)."""


def _tune_gc() -> None:
    """A flow allocates millions of short-lived objects (events, rows), freed by reference
    counting; with CPython's default generation-0 threshold (700 allocations) the cyclic
    collector still runs thousands of times a second over them. So the objects of start-up
    (modules, plant model, mapping) are frozen out of every collection, and the thresholds
    raised: measured +5-15 % events/s on the OEE flow (six paired runs, each pair better)."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run(
    name: str,
    build_flow: BuildFlow,
    settings: Settings,
    metrics: Path | None = None,
    use_recovery: bool = True,
) -> None:
    """Prepare, then run the flow of ``build_flow(settings)`` until it ends or is stopped."""
    METRICS.flow = name
    METRICS.extra |= {"pid": os.getpid()}
    writer = MetricsWriter(metrics or settings.metrics_file(name)).start()
    try:
        store = prepare(name, settings, use_recovery)
        flow = build_flow(settings)
        _tune_gc()
        logger.info("%s: running (snapshot every %.1f s)", name, settings.snapshot_interval_s)
        cli_main(  # type: ignore[no-untyped-call]
            flow,
            workers_per_process=1,
            epoch_interval=timedelta(seconds=settings.snapshot_interval_s),
            recovery_config=(
                RecoveryConfig(str(store))  # type: ignore[no-untyped-call]
                if store is not None
                else None
            ),
        )
    finally:
        writer.stop()


def main(name: str, build_flow: BuildFlow, argv: Sequence[str] | None = None) -> None:
    """Run flow ``name`` as a process (see the module docstring); never returns normally
    on a failure: exits 1 with the reason."""
    prog = f"python -m pipelines.{name}"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--metrics", type=Path, help="metrics JSON file (rewritten every second)")
    parser.add_argument(
        "--no-recovery", action="store_true", help="no recovery store (benchmarks only)"
    )
    args = parser.parse_args(argv)
    settings = load_settings(prog)
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    # Bytewax stops on a signal by a Rust panic; a backtrace of that would only alarm readers.
    os.environ["RUST_BACKTRACE"] = "0"
    try:
        run(name, build_flow, settings, args.metrics, use_recovery=not args.no_recovery)
    except KeyboardInterrupt:
        logger.info("%s: stopped by %s", name, _stopping[-1] if _stopping else "SIGINT")
    except AsbuiltError as exc:
        logger.error("%s: %s", name, exc)
        raise SystemExit(1) from None
    except Exception:
        if not _stopping:
            raise
        logger.info("%s: stopped by %s", name, _stopping[-1])
