"""The benchmark harness: each ``bench/bench_*.py`` module exposes ``measure(ctx) -> list[Figure]``.

``make bench`` runs every module ``ctx.repeats`` times, keeps the median of each figure and writes
``docs/benchmarks.md`` with the machine noted. A figure compares our implementation (``ours``)
with a named peer (``peer``) on the same input in the same run, so ratios survive a noisy machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Figure:
    """One measured quantity, ours against a peer, e.g. events/s or µs per event."""

    bench: str  # e.g. "event decode"
    metric: str  # e.g. "µs per event (StateChange, 210 bytes)"
    unit: str  # e.g. "µs" or "rows/s"
    ours_name: str  # e.g. "msgspec typed decode"
    ours: float
    peer_name: str | None = None  # e.g. "stdlib json.loads + dict access"
    peer: float | None = None
    higher_is_better: bool = True
    note: str = ""


@dataclass
class Context:
    """What a benchmark may use: the database DSN (already migrated) and a scratch directory."""

    dsn: str
    scratch: str
    repeats: int = 5
    quick: bool = False  # smaller inputs, for a smoke run
    extra: dict[str, object] = field(default_factory=dict)
