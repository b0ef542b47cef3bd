"""Run the simulated plant: ``python -m simulator --port 48400 --speed 60``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asbuilt.plant import DEFAULT_PLANT, PlantModel, load_plant
from simulator.server import Fault, PlantServer


def _start(text: str, model: PlantModel, backfill: timedelta) -> datetime:
    now = datetime.now(UTC).replace(microsecond=0)
    if text == "now":
        return now - backfill
    if text == "last-shift":
        starts = [
            start
            for days_back in range(8)
            for _, start, _, _ in model.calendar.shift_instances(
                (now - timedelta(days=days_back)).astimezone(model.calendar.zone).date()
            )
            if start <= now
        ]
        if not starts:
            return now - backfill
        return max(starts).astimezone(UTC) - timedelta(minutes=10) - backfill
    start = datetime.fromisoformat(text)
    if start.tzinfo is None:
        msg = f"--start {text!r} has no time zone; add one, e.g. +00:00"
        raise SystemExit(msg)
    return start


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=48400)
    parser.add_argument("--model", type=Path, default=DEFAULT_PLANT, help="plant model YAML")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    parser.add_argument("--backfill-hours", type=float, default=0.0, help="history played first")
    parser.add_argument(
        "--start",
        default="now",
        help="simulated start: an ISO time with zone, 'now', or 'last-shift' (the start of the "
        "latest weekday shift, 10 minutes early: production from the first minute)",
    )
    parser.add_argument("--until", type=datetime.fromisoformat, help="stop advancing here")
    parser.add_argument(
        "--hold-until-subscribed",
        action="store_true",
        help="keep time still until a client monitors every variable (test bench)",
    )
    parser.add_argument("--truth", type=Path, help="write the ground truth here on exit")
    parser.add_argument(
        "--fault",
        type=Fault.parse,
        action="append",
        default=[],
        help="a fault on demand: kind,at=ISO[,seconds=S][,asset=PATH][,count=N] with kind "
        "restart | clock-jump | bad-status | burst (repeatable)",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    logging.getLogger("asyncua").setLevel(logging.WARNING)
    model = load_plant(args.model)
    server = PlantServer(
        model,
        host=args.host,
        port=args.port,
        start=_start(args.start, model, timedelta(hours=args.backfill_hours)),
        speed=args.speed,
        backfill=timedelta(hours=args.backfill_hours),
        truth_path=args.truth,
        until=args.until,
        hold_until_subscribed=args.hold_until_subscribed,
        faults=args.fault,
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
