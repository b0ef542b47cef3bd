"""Event encode/decode: the msgspec contract against what a hand-written consumer would do.

Ours: ``asbuilt.events.encode`` / ``asbuilt.events.decode`` (typed, validating every field:
asset path pattern, timezone-aware datetimes, PackML state names, ranges; returns a dead letter
instead of raising). Peer: stdlib ``json.dumps`` of a dict with ISO timestamps, and
``json.loads`` to a dict with field access and ``datetime.fromisoformat`` -- no validation.

Run alone with ``python -m bench.bench_events`` (from the repository root).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from asbuilt import events as ev
from bench.harness import Context, Figure

ASSET = "acme/basel/b1/line3/filler"
TS = datetime(2024, 5, 1, 8, 0, 0, 123456, tzinfo=UTC)
INGEST = datetime(2024, 5, 1, 8, 0, 0, 456789, tzinfo=UTC)


def _events() -> list[ev.Event]:
    return [
        ev.new_state_change(
            asset=ASSET,
            ts=TS,
            state="Suspended",
            mode=ev.MODE_PRODUCE,
            stop_reason="100.20",
            starved=True,
            ingest_ts=INGEST,
        ),
        ev.new_counter_sample(
            asset=ASSET,
            ts=TS,
            counter="processed",
            value=19_271,
            resettable=False,
            rollover=2**31 - 1,
            ingest_ts=INGEST,
        ),
    ]


def _as_dict(event: ev.Event) -> dict[str, Any]:
    """The event as a hand-written producer would hold it: a dict with datetime values."""
    fields = {name: getattr(event, name) for name in event.__struct_fields__}
    return {"kind": type(event).__struct_config__.tag, **fields}


def _peer_encode(doc: dict[str, Any]) -> bytes:
    wire = dict(doc)
    wire["ts"] = doc["ts"].isoformat()
    wire["ingest_ts"] = doc["ingest_ts"].isoformat()
    return json.dumps(wire).encode()


def _peer_decode(data: bytes) -> tuple[Any, ...]:
    doc = json.loads(data)
    common = (
        doc["kind"],
        doc["schema_version"],
        doc["event_id"],
        doc["asset"],
        datetime.fromisoformat(doc["ts"]),
        datetime.fromisoformat(doc["ingest_ts"]),
    )
    if doc["kind"] == "state":
        payload: tuple[Any, ...] = (
            doc["state"],
            doc["mode"],
            doc.get("stop_reason"),
            doc.get("blocked", False),
            doc.get("starved", False),
        )
    else:
        payload = (doc["counter"], doc["value"], doc["resettable"], doc.get("rollover"))
    return common + payload


def _us_per_call(fn: Callable[[Any], object], arg: Any, n: int) -> float:
    for _ in range(min(n, 1_000)):  # warm up
        fn(arg)
    start = time.perf_counter_ns()
    for _ in range(n):
        fn(arg)
    return (time.perf_counter_ns() - start) / n / 1_000


def _decode_ours(data: bytes) -> object:
    result = ev.decode(data, "bench")
    if isinstance(result, ev.DeadLetter):  # a benchmark of the failure path would be a lie
        raise TypeError(result.reason)
    return result


def measure(ctx: Context) -> list[Figure]:
    n = 20_000 if ctx.quick else 200_000
    figures: list[Figure] = []
    for event in _events():
        name = type(event).__name__
        data = ev.encode(event)
        doc = _as_dict(event)
        assert _peer_decode(_peer_encode(doc))[4] == event.ts
        size = f"{name}, {len(data)} bytes"
        figures.append(
            Figure(
                bench="event encode",
                metric=f"µs per event ({size})",
                unit="µs",
                ours_name="msgspec Struct encode",
                ours=_us_per_call(ev.encode, event, n),
                peer_name="stdlib json.dumps of a dict + isoformat",
                peer=_us_per_call(_peer_encode, doc, n),
                higher_is_better=False,
            )
        )
        figures.append(
            Figure(
                bench="event decode",
                metric=f"µs per event ({size})",
                unit="µs",
                ours_name="msgspec typed decode + validation",
                ours=_us_per_call(_decode_ours, data, n),
                peer_name="stdlib json.loads + dict access + fromisoformat (no validation)",
                peer=_us_per_call(_peer_decode, data, n),
                higher_is_better=False,
            )
        )
    figures.append(
        Figure(
            bench="event build",
            metric="µs per event (new_state_change: id + contract check)",
            unit="µs",
            ours_name="asbuilt.events.new_state_change",
            ours=_us_per_call(
                lambda _: ev.new_state_change(
                    asset=ASSET, ts=TS, state="Execute", mode="Produce", ingest_ts=INGEST
                ),
                None,
                max(n // 4, 1),
            ),
            higher_is_better=False,
            note="uuid5 over the canonical fields, then an encode/decode round trip",
        )
    )
    return figures


if __name__ == "__main__":
    import sys
    import tempfile

    quick = "--quick" in sys.argv
    with tempfile.TemporaryDirectory() as scratch:
        for fig in measure(Context(dsn="", scratch=scratch, quick=quick)):
            peer = "" if fig.peer is None else f"   {fig.peer_name}: {fig.peer:.2f} {fig.unit}"
            ratio = "" if fig.peer is None else f"   ({fig.peer / fig.ours:.1f}x)"
            print(f"{fig.bench:13} {fig.metric}")
            print(f"    {fig.ours_name}: {fig.ours:.2f} {fig.unit}{peer}{ratio}")
