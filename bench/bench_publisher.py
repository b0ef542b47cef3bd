"""Publisher throughput: events/s from ``publish`` to "Kafka acknowledged", through the spool.

Ours: :class:`connectors.opcua.publisher.Publisher` — every event is first committed to the
SQLite spool (``synchronous=FULL``, one transaction per batch), then produced with the idempotent
producer and deleted from the spool on its delivery report. Peer: a plain confluent-kafka
producer with the same configuration (``asbuilt.kafka.producer_config``), same events, same
broker, no spool — what the durability costs.

Also measured: the spool alone, appends per second at batch sizes 10/100/1000 with FULL against
NORMAL (the price of surviving a power cut, not just a killed process).

Run alone with ``python -m bench.bench_publisher`` (starts a private broker; from the repository
root), or through ``make bench`` (``ctx.extra["bootstrap"]``).
"""

from __future__ import annotations

import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from confluent_kafka import Producer

from asbuilt import events as ev
from asbuilt import kafka, topics
from bench.harness import Context, Figure
from connectors.opcua.publisher import Publisher
from connectors.opcua.spool import Spool, Synchronous

T0 = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)
ASSETS = [f"acme/basel/osd/pack{line}/cell{c}" for line in range(1, 5) for c in range(5)]
BATCH = 500


def _events(n: int) -> list[ev.CounterSample]:
    return [
        ev.new_counter_sample(
            asset=ASSETS[i % len(ASSETS)],
            ts=T0 + timedelta(milliseconds=i),
            counter="processed",
            value=i,
            resettable=False,
            ingest_ts=T0,
        )
        for i in range(n)
    ]


def _ours(bootstrap: str, prefix: str, events: list[ev.CounterSample], scratch: str) -> float:
    path = Path(scratch) / f"bench-{uuid.uuid4().hex}.sqlite3"
    with Publisher(path, bootstrap, topic_prefix=prefix) as publisher:
        start = time.perf_counter()
        for i in range(0, len(events), BATCH):
            publisher.publish(events[i : i + BATCH])
        if not publisher.wait_drained(300):
            raise RuntimeError(f"publisher did not drain: {publisher.stats()}")
        elapsed = time.perf_counter() - start
    return len(events) / elapsed


def _peer(bootstrap: str, prefix: str, events: list[ev.CounterSample]) -> float:
    producer = Producer(kafka.producer_config(bootstrap))
    topic = topics.topic_for(ev.CounterSample, prefix)
    delivered = 0

    def on_delivery(err: object, _msg: object) -> None:
        nonlocal delivered
        if err is None:
            delivered += 1

    start = time.perf_counter()
    for e in events:
        while True:
            try:
                producer.produce(topic, ev.encode(e), ev.key(e), on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(300)
    elapsed = time.perf_counter() - start
    if delivered != len(events):
        raise RuntimeError(f"peer delivered {delivered} of {len(events)}")
    return len(events) / elapsed


def _append_rate(scratch: str, synchronous: Synchronous, batch: int, n: int) -> float:
    rows = [(topics.topic_name("counters"), b"acme/basel/osd/pack1/cell1", b"x" * 260)] * batch
    with Spool(Path(scratch) / f"append-{uuid.uuid4().hex}.sqlite3", synchronous=synchronous) as s:
        start = time.perf_counter()
        for _ in range(max(n // batch, 1)):
            s.append_many(rows)
        return max(n // batch, 1) * batch / (time.perf_counter() - start)


def measure(ctx: Context) -> list[Figure]:
    bootstrap = str(ctx.extra["bootstrap"])
    n = 20_000 if ctx.quick else 200_000
    prefix = f"bench{uuid.uuid4().hex[:8]}_"
    kafka.ensure_topics(bootstrap, topics.all_topics(prefix), partitions=4)
    events = _events(n)
    figures = [
        Figure(
            bench="publisher",
            metric=f"events/s publish → acknowledged ({n:,} counter samples, batches of {BATCH})",
            unit="events/s",
            ours_name="spool (SQLite WAL, FULL) + idempotent producer, delete on ack",
            ours=_ours(bootstrap, prefix, events, ctx.scratch),
            peer_name="plain confluent-kafka idempotent producer, no spool",
            peer=_peer(bootstrap, prefix, events),
            note="the price of 'a crash or a power cut loses nothing the spool accepted'",
        )
    ]
    for batch in (10, 100, 1000):
        count = min(n, batch * 2_000)
        figures.append(
            Figure(
                bench="spool append",
                metric=f"records/s, batches of {batch} (260-byte values)",
                unit="records/s",
                ours_name="synchronous=FULL (survives power loss)",
                ours=_append_rate(ctx.scratch, "FULL", batch, count),
                peer_name="synchronous=NORMAL (survives a killed process only)",
                peer=_append_rate(ctx.scratch, "NORMAL", batch, count),
            )
        )
    return figures


if __name__ == "__main__":
    import sys

    from asbuilt.services import stack
    from asbuilt.services.supervisor import Supervisor

    quick = "--quick" in sys.argv
    with tempfile.TemporaryDirectory() as scratch:
        settings = stack.private_settings(Path(scratch) / ".asbuilt")
        supervisor = Supervisor(settings, [stack.build(settings)[1]])
        supervisor.start_all(progress=print)
        try:
            ctx = Context(dsn="", scratch=scratch, quick=quick)
            ctx.extra["bootstrap"] = settings.bootstrap
            for fig in measure(ctx):
                ratio = "" if fig.peer is None else f"   (ours/peer {fig.ours / fig.peer:.2f})"
                print(f"{fig.bench}: {fig.metric}")
                print(f"    {fig.ours_name}: {fig.ours:,.0f} {fig.unit}")
                if fig.peer is not None:
                    print(f"    {fig.peer_name}: {fig.peer:,.0f} {fig.unit}{ratio}")
        finally:
            supervisor.stop_all()
