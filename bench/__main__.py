"""``make bench``: start a private stack, run every ``bench/bench_*.py``, write docs/benchmarks.md.

Each benchmark runs ``--repeats`` times; the median of each figure is reported with the ratio to
its peer measured in the same run. ``--quick`` shrinks the inputs for a smoke run.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from asbuilt.services import stack
from asbuilt.services.postgres import EmbeddedPostgres
from asbuilt.services.supervisor import Supervisor
from asbuilt.settings import Settings
from bench.harness import Context, Figure

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "benchmarks.md"
PEERS_NOTE = "ratio = ours ÷ peer when higher is better, peer ÷ ours when lower is better"


def _machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = int(Path("/proc/meminfo").read_text().split()[1]) / 1024**2
    release = platform.freedesktop_os_release().get("PRETTY_NAME", platform.platform())
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, {release}, "
        f"Python {platform.python_version()}"
    )


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def _render(figures: dict[tuple[str, str, str], list[Figure]], repeats: int, quick: bool) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m bench`); do not edit by hand.",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on: {_machine()}.",
        f"Median of {repeats} runs{' (quick inputs)' if quick else ''}; {PEERS_NOTE}. "
        "The machine is shared and noisy: trust the ratios more than the absolute figures.",
        "",
        "| benchmark | metric | ours | value | peer | value | ratio |",
        "|---|---|---|---:|---|---:|---:|",
    ]
    for runs in figures.values():
        first = runs[0]
        ours = statistics.median(f.ours for f in runs)
        peer_values = [f.peer for f in runs if f.peer is not None]
        peer = statistics.median(peer_values) if peer_values else None
        ratio = ""
        if peer:
            ratio = f"{(ours / peer if first.higher_is_better else peer / ours):.1f}×"
        lines.append(
            f"| {first.bench} | {first.metric} | {first.ours_name} | {_fmt(ours)} {first.unit} "
            f"| {first.peer_name or '—'} | {_fmt(peer) + ' ' + first.unit if peer else '—'} "
            f"| {ratio} |"
        )
    notes = {runs[0].note for runs in figures.values() if runs[0].note}
    if notes:
        lines += ["", "Notes:", "", *[f"- {n}" for n in sorted(notes)]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", help="run only bench_<ONLY>.py")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    modules = sorted(p.stem for p in (ROOT / "bench").glob("bench_*.py"))
    if args.only:
        modules = [m for m in modules if m == f"bench_{args.only}"]

    with tempfile.TemporaryDirectory(prefix="asbuilt-bench-") as scratch:
        settings: Settings = stack.private_settings(Path(scratch) / ".asbuilt", db_name="bench")
        supervisor = Supervisor(settings, stack.infrastructure(settings))
        print("[bench] starting a private TimescaleDB and broker…", file=sys.stderr)
        supervisor.start_all(progress=lambda line: print(f"[bench] {line}", file=sys.stderr))
        try:
            ctx = Context(
                dsn=EmbeddedPostgres(settings).dsn(),
                scratch=scratch,
                repeats=args.repeats,
                quick=args.quick,
                extra={"bootstrap": settings.bootstrap},
            )
            figures: dict[tuple[str, str, str], list[Figure]] = defaultdict(list)
            for name in modules:
                module = importlib.import_module(f"bench.{name}")
                # A module may run fewer times (REPEATS) when one run is long and self-averaging.
                repeats = min(args.repeats, int(getattr(module, "REPEATS", args.repeats)))
                for run in range(1, repeats + 1):
                    began = time.monotonic()
                    for figure in module.measure(ctx):
                        figures[(figure.bench, figure.metric, figure.ours_name)].append(figure)
                    print(
                        f"[bench] {name} run {run}/{repeats}: {time.monotonic() - began:.1f} s",
                        file=sys.stderr,
                    )
        finally:
            supervisor.stop_all()
            EmbeddedPostgres(settings).destroy()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(_render(figures, args.repeats, args.quick))
    print(f"[bench] wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
