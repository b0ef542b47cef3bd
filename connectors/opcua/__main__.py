"""Run one OPC UA connector process: subscribe, translate, spool, publish to Kafka.

    python -m connectors.opcua --endpoint opc.tcp://127.0.0.1:48400/asbuilt/ \\
        [--node-map map.yaml] [--partition 0/2] [--spool PATH] [--metrics PATH]

Kafka and the state directory come from the ``ASBUILT_*`` settings. Without ``--node-map`` the
server is browsed (it must follow the asbuilt model, as the simulator does). ``--partition i/n``
takes the i-th of n shares of the map (whole assets), so n processes share one plant.
Every second the process writes its metrics (items, notifications/s, spool depth, last error)
to ``--metrics`` as JSON; ``asbuilt status`` shows them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from datetime import timedelta
from pathlib import Path

from asbuilt.errors import AsbuiltError
from asbuilt.settings import Settings
from connectors.opcua.nodemap import NodeMap
from connectors.opcua.publisher import Publisher
from connectors.opcua.subscriber import OpcUaConnector
from connectors.opcua.translate import TimestampPolicy

logger = logging.getLogger("connectors.opcua")


def _partition(text: str) -> tuple[int, int]:
    index, _, count = text.partition("/")
    return int(index), int(count or 1)


async def _metrics(connector: OpcUaConnector, publisher: Publisher, path: Path) -> None:
    while True:
        connector.stats.tick()
        report = {"connector": connector.stats.as_dict(), "publisher": publisher.stats().as_dict()}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(report, default=str))
        tmp.replace(path)
        await asyncio.sleep(1.0)


async def run(args: argparse.Namespace, settings: Settings) -> None:
    nodemap = NodeMap.load(args.node_map) if args.node_map else None
    index, count = args.partition
    name = f"opcua-{index}"
    spool = args.spool or settings.home_dir / "spool" / f"{name}.sqlite3"
    metrics = args.metrics or settings.run_dir / f"{name}.metrics.json"
    metrics.parent.mkdir(parents=True, exist_ok=True)
    publisher = Publisher(spool, settings.kafka, topic_prefix=args.topic_prefix, name=name).start()
    connector = OpcUaConnector(
        args.endpoint,
        publisher.publish,
        nodemap,
        partition=(index, count),
        policy=TimestampPolicy(max_future=timedelta(seconds=args.max_future_s)),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    reporter = asyncio.create_task(_metrics(connector, publisher, metrics))
    try:
        await connector.run(stop)
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
        left = publisher.close(timeout_s=10.0)
        if left:
            logger.warning("%d events stay in the spool %s for the next start", left, spool)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m connectors.opcua", description=__doc__)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--node-map", type=Path, help="YAML node map (default: browse)")
    parser.add_argument("--partition", type=_partition, default=(0, 1), help="i/n")
    parser.add_argument("--spool", type=Path)
    parser.add_argument("--metrics", type=Path)
    parser.add_argument("--topic-prefix", default="")
    parser.add_argument(
        "--max-future-s",
        type=float,
        default=300.0,
        help="a source timestamp further ahead of the receive time is implausible",
    )
    args = parser.parse_args()
    try:
        settings = Settings()
    except Exception as exc:  # noqa: BLE001 - report bad configuration in one line
        sys.exit(f"connector: bad configuration: {exc}")
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    logging.getLogger("asyncua").setLevel(logging.WARNING)
    try:
        asyncio.run(run(args, settings))
    except AsbuiltError as exc:
        sys.exit(f"connector: error: {exc}")


if __name__ == "__main__":
    main()
