"""Run the simulated plant: ``python -m simulator --port 48400 --speed 60``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from datetime import datetime, timedelta
from pathlib import Path

from simulator.model import DEFAULT_PLANT, load_plant
from simulator.server import PlantServer


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=48400)
    parser.add_argument("--model", type=Path, default=DEFAULT_PLANT, help="plant model YAML")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    parser.add_argument("--backfill-hours", type=float, default=0.0, help="history played first")
    parser.add_argument("--start", type=datetime.fromisoformat, help="simulated start (ISO, tz)")
    parser.add_argument("--until", type=datetime.fromisoformat, help="stop advancing here")
    parser.add_argument(
        "--hold-until-subscribed",
        action="store_true",
        help="keep time still until a client monitors every variable (test bench)",
    )
    parser.add_argument("--truth", type=Path, help="write the ground truth here on exit")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    logging.getLogger("asyncua").setLevel(logging.WARNING)
    server = PlantServer(
        load_plant(args.model),
        host=args.host,
        port=args.port,
        start=args.start,
        speed=args.speed,
        backfill=timedelta(hours=args.backfill_hours),
        truth_path=args.truth,
        until=args.until,
        hold_until_subscribed=args.hold_until_subscribed,
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await server.run(stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
