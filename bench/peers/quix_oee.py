"""Peer: the per-asset one-minute OEE aggregation written with Quix Streams' windowed aggregation.

Run by ``bench/bench_pipeline.py`` in a virtualenv of its own (Quix Streams 3.28 pins
confluent-kafka < 2.13; asbuilt uses 2.16), so it imports nothing from asbuilt:

    python bench/peers/quix_oee.py BOOTSTRAP PREFIX DSN EXPECTED_ROWS

It reads the states and counters topics (JSON events of the asbuilt contract; the Kafka record
timestamp is the event time), keys by asset, and per tumbling one-minute window reduces the
events to: seconds in Execute (from the state changes inside the window, carrying the last state
of the previous window per asset in a dict) and the processed/defective increments (last - first
cumulative value). Each closed window becomes one row written with psycopg ``executemany`` in
Quix's batching sink. That is a subset of what the asbuilt OEE flow computes (no calendar, no
loss mapping, no corrections), so the ratio flatters the peer, not us.

Tansu does not return topic configurations; Quix Streams reads ``retention.ms`` from them for
its changelog topics, so ``derive_topic_config`` is replaced by a constant (changelogs are off).
It prints ``rows=N seconds=S`` when EXPECTED_ROWS rows are written.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import datetime
from typing import Any

import orjson
import psycopg
from quixstreams import Application
from quixstreams.models.topics import TopicConfig
from quixstreams.models.topics.manager import TopicManager
from quixstreams.sinks.base import BatchingSink, SinkBatch

TopicManager.derive_topic_config = staticmethod(  # type: ignore[method-assign]
    lambda topics: TopicConfig(
        num_partitions=1,
        replication_factor=1,
        extra_config={"retention.ms": "-1", "retention.bytes": "-1"},
    )
)

TABLE = "peer_quix_minutes"


class PostgresSink(BatchingSink):
    def __init__(self, dsn: str, expected: int, started: float) -> None:
        super().__init__()
        self.conn = psycopg.connect(dsn)
        self.written = 0
        self.expected = expected
        self.started = started

    def write(self, batch: SinkBatch) -> None:
        rows = [
            (r.value["asset"], r.value["start"], r.value["execute_s"], r.value["processed"],
             r.value["defective"])
            for r in batch
        ]  # fmt: skip
        with self.conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {TABLE} VALUES (%s, to_timestamp(%s / 1000.0), %s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                rows,
            )
        self.conn.commit()
        self.written += len(rows)
        if self.written >= self.expected:
            print(f"rows={self.written} seconds={time.monotonic() - self.started:.3f}", flush=True)
            sys.exit(0)


def _initial() -> dict[str, Any]:
    return {"states": [], "first": {}, "last": {}}


def _reduce(acc: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    if event["kind"] == "state":
        acc["states"].append((event["ts"], event["state"]))
    elif event["kind"] == "counter":
        name = event["counter"]
        acc["first"].setdefault(name, event["value"])
        acc["last"][name] = event["value"]
    return acc


def main() -> None:
    bootstrap, prefix, dsn, expected = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (asset text, ts timestamptz, execute_s float8, "
            "processed bigint, defective bigint, PRIMARY KEY (asset, ts))"
        )
        conn.execute(f"TRUNCATE {TABLE}")
    started = time.monotonic()
    app = Application(
        broker_address=bootstrap,
        consumer_group=f"{prefix}quix-peer",
        auto_offset_reset="earliest",
        use_changelog_topics=False,
        auto_create_topics=False,
        state_dir=tempfile.mkdtemp(prefix="quix-peer-state-"),
        consumer_extra_config={"session.timeout.ms": 6000, "fetch.wait.max.ms": 50},
    )
    topics = [
        app.topic(f"{prefix}asbuilt.v1.{kind}", value_deserializer="bytes")
        for kind in ("states", "counters")
    ]
    sdf = app.dataframe(topics[0])
    sdf = sdf.concat(app.dataframe(topics[1]))
    sdf = sdf.apply(orjson.loads)
    last_state: dict[str, str] = {}

    def finish(window: dict[str, Any]) -> dict[str, Any]:
        start_ms, end_ms, acc = window["start"], window["end"], window["value"]
        asset = acc["asset"]
        state, t = last_state.get(asset, ""), start_ms / 1000.0
        execute_s = 0.0
        for ts, new in sorted(acc["states"]):
            at = _epoch(ts)
            if state == "Execute":
                execute_s += at - t
            state, t = new, at
        if state == "Execute":
            execute_s += end_ms / 1000.0 - t
        last_state[asset] = state
        inc = {k: acc["last"][k] - acc["first"][k] for k in acc["first"]}
        return {
            "asset": asset,
            "start": start_ms,
            "execute_s": execute_s,
            "processed": inc.get("processed", 0),
            "defective": inc.get("defective", 0),
        }

    def reducer(acc: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
        acc["asset"] = event["asset"]
        return _reduce(acc, event)

    def initializer(event: dict[str, Any]) -> dict[str, Any]:
        return reducer(_initial(), event)

    sdf = sdf.tumbling_window(60_000, grace_ms=0).reduce(reducer, initializer).final()
    sdf = sdf.apply(finish)
    sdf.sink(PostgresSink(dsn, expected, started))
    app.run()


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts).timestamp()


if __name__ == "__main__":
    main()
