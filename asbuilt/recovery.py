"""Bytewax recovery stores, tied to the broker log they refer to.

Bytewax's Kafka source keeps its offsets in the recovery store, not in consumer groups. If the
broker's log is new (the embedded broker restarted, a cluster was rebuilt) those offsets point
into a log that no longer exists, and resuming at them silently skips new data. So each store
remembers the log epoch (:func:`asbuilt.kafka.log_epoch`) it was made under, and
:func:`prepare` starts a fresh store whenever the epoch differs.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from bytewax.recovery import init_db_dir

logger = logging.getLogger(__name__)

EPOCH_FILE = "log_epoch"


def prepare(store: Path, epoch: str, partitions: int = 1) -> bool:
    """Make ``store`` ready for a flow over the log ``epoch``; True when it was (re)created."""
    marker = store / EPOCH_FILE
    if marker.exists() and marker.read_text().strip() == epoch:
        return False
    if store.exists():
        old = marker.read_text().strip() if marker.exists() else "unknown"
        logger.warning(
            "broker log changed (epoch %s -> %s): resetting recovery store %s", old, epoch, store
        )
        shutil.rmtree(store)
    store.mkdir(parents=True)
    init_db_dir(store, partitions)  # type: ignore[no-untyped-call]
    marker.write_text(epoch + "\n")
    return True
