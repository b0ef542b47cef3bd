"""The publisher on the real broker: all events arrive, in order per asset, through a frozen
broker, a restarted broker and a killed publisher. No mocks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

from asbuilt import events as ev
from asbuilt import kafka, topics
from asbuilt.services.supervisor import Supervisor
from asbuilt.settings import Settings
from connectors.opcua.publisher import Publisher
from tests.conftest import Stack

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ASSETS = [f"acme/basel/osd/pack{line}/{cell}" for line in (1, 2) for cell in ("blister", "carton")]
T0 = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)


def make_events(start: int, stop: int) -> list[ev.CounterSample]:
    """Event i: asset i % 4, value i — the same i always gives the same event id."""
    return [
        ev.new_counter_sample(
            asset=ASSETS[i % len(ASSETS)],
            ts=T0 + timedelta(milliseconds=i),
            counter="processed",
            value=i,
            resettable=False,
            ingest_ts=T0,
        )
        for i in range(start, stop)
    ]


def consume(
    bootstrap: str, topic: str, expect_ids: set[str], idle_s: float = 3.0
) -> list[ev.Event]:
    """Every event of ``topic`` from offset 0, until all ``expect_ids`` are seen and then
    ``idle_s`` passes without a message (so duplicates would show up too)."""
    consumer = Consumer(kafka.consumer_config(bootstrap, f"test-{uuid.uuid4().hex}"))
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = list(metadata.topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    got: list[ev.Event] = []
    seen: set[str] = set()
    deadline = time.monotonic() + 120
    last = time.monotonic()
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                if expect_ids <= seen and time.monotonic() - last > idle_s:
                    break
                continue
            err = msg.error()
            if err is not None:
                assert err.code() == KafkaError._PARTITION_EOF or err.retriable(), err
                continue
            event = ev.decode(msg.value(), f"{topic}[{msg.partition()}]@{msg.offset()}")
            assert not isinstance(event, ev.DeadLetter), event
            got.append(event)
            seen.add(event.event_id)
            last = time.monotonic()
    finally:
        consumer.close()
    missing = expect_ids - seen
    assert not missing, f"{len(missing)} events never arrived"
    return got


def values_by_asset(events: Iterable[ev.Event]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for e in events:
        assert isinstance(e, ev.CounterSample)
        out[e.asset].append(e.value)
    return out


def first_occurrences(values: list[int]) -> list[int]:
    return list(dict.fromkeys(values))  # first occurrence of each, in order


def ids(events: Iterable[ev.Event]) -> set[str]:
    return {e.event_id for e in events}


@pytest.fixture
def spool_path(tmp_path: Path) -> Path:
    return tmp_path / "spool" / "opcua.sqlite3"


def test_every_event_arrives_once_in_order_per_asset(local_stack: Stack, spool_path: Path) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    kafka.ensure_topics(local_stack.bootstrap, topics.all_topics(prefix), partitions=3)
    sent = make_events(0, 20_000)
    with Publisher(spool_path, local_stack.bootstrap, topic_prefix=prefix) as publisher:
        for i in range(0, len(sent), 500):
            accepted = publisher.publish(sent[i : i + 500])
            assert accepted.count == 500
            assert not accepted.backpressure
        assert publisher.wait_drained(60), publisher.stats()
        stats = publisher.stats()
        assert stats.delivered_total == len(sent)
        assert stats.spool_depth == 0
        assert stats.broker_reachable
        assert stats.last_error is None
    got = consume(local_stack.bootstrap, topics.topic_for(ev.CounterSample, prefix), ids(sent))
    assert len(got) == len(sent)  # nothing twice
    for asset, values in values_by_asset(got).items():
        assert values == sorted(values), asset
        assert len(values) == len(sent) // len(ASSETS)


def test_high_water_mark_is_reported_not_dropped(local_stack: Stack, spool_path: Path) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    kafka.ensure_topics(local_stack.bootstrap, topics.all_topics(prefix))
    sent = make_events(0, 3_000)
    # not started: nothing forwards, so the spool only grows
    publisher = Publisher(spool_path, local_stack.bootstrap, topic_prefix=prefix, high_water=2_000)
    assert publisher.publish(sent[:1_500]).backpressure is False
    accepted = publisher.publish(sent[1_500:])
    assert accepted.backpressure is True
    assert accepted.spool_depth == 3_000
    assert publisher.stats().backpressure is True
    publisher.start()
    assert publisher.wait_for_room(30)
    assert publisher.wait_drained(30)
    assert publisher.close() == 0
    got = consume(local_stack.bootstrap, topics.topic_for(ev.CounterSample, prefix), ids(sent))
    assert len(got) == len(sent)


class Feeder:
    """Publishes ``per_tick`` events every ``tick_s`` from a thread, as a connector would."""

    def __init__(self, publisher: Publisher, start: int, per_tick: int = 100, tick_s: float = 0.05):
        self.publisher = publisher
        self.next = start
        self.per_tick = per_tick
        self.tick_s = tick_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.max_depth = 0

    def _run(self) -> None:
        while not self.stop.wait(self.tick_s):
            batch = make_events(self.next, self.next + self.per_tick)
            accepted = self.publisher.publish(batch)
            self.next += len(batch)
            self.max_depth = max(self.max_depth, accepted.spool_depth)

    def __enter__(self) -> Feeder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


@pytest.fixture
def broker(broker_only: tuple[Settings, Supervisor]) -> Iterator[tuple[str, Supervisor]]:
    """A broker of its own (contract topics without prefix); never left frozen."""
    settings, supervisor = broker_only
    yield settings.bootstrap, supervisor
    proc = supervisor.services[0].proc
    if proc is not None and proc.poll() is None:
        os.kill(proc.pid, signal.SIGCONT)


def test_broker_frozen_for_30_s_loses_and_duplicates_nothing(
    broker: tuple[str, Supervisor], spool_path: Path
) -> None:
    """SIGSTOP keeps the broker's memory log: an outage, not a restart."""
    bootstrap, supervisor = broker
    proc = supervisor.services[0].proc
    assert proc is not None
    with Publisher(spool_path, bootstrap, max_in_flight=2_000) as publisher:
        with Feeder(publisher, 0) as feeder:
            time.sleep(3)
            os.kill(proc.pid, signal.SIGSTOP)
            try:
                time.sleep(15)
                during = publisher.stats()
                time.sleep(15)
                depth_before_resume = publisher.stats().spool_depth
            finally:
                os.kill(proc.pid, signal.SIGCONT)
            time.sleep(3)
        published = feeder.next
        assert publisher.wait_drained(60), publisher.stats()
        after = publisher.stats()
    assert not during.broker_reachable
    assert depth_before_resume > 20_000  # ~30 s × 2,000 events/s waited on disk
    assert feeder.max_depth >= depth_before_resume
    assert after.broker_reachable
    assert after.producer_restarts == 0  # the outage was ridden out by the producer's retries
    got = consume(bootstrap, topics.topic_for(ev.CounterSample), ids(make_events(0, published)))
    assert len(got) == published  # exactly once by event id ...
    assert len(ids(got)) == published
    for asset, values in values_by_asset(got).items():
        assert values == sorted(values), asset  # ... and in order per asset


def test_restarted_broker_gets_everything_still_spooled(
    broker: tuple[str, Supervisor], spool_path: Path
) -> None:
    """The embedded broker loses its log on restart: what the spool held must reach the new one."""
    bootstrap, supervisor = broker
    service = supervisor.services[0]
    assert service.proc is not None
    with Publisher(spool_path, bootstrap, max_in_flight=1_000) as publisher:
        publisher.publish(make_events(0, 2_000))
        assert publisher.wait_drained(30)
        os.kill(service.proc.pid, signal.SIGSTOP)  # acknowledged events stop here
        for i in range(2_000, 5_000, 250):
            publisher.publish(make_events(i, i + 250))
        time.sleep(1)
        spooled = [ev.decode(r.value, "spool") for r in publisher.spool.peek(0, 100_000)]
        assert len(spooled) == 3_000  # none acknowledged by the frozen broker
        os.kill(service.proc.pid, signal.SIGKILL)
        service.proc.wait()
        supervisor.start_all()  # a new, empty log (and the contract topics again)
        publisher.publish(make_events(5_000, 6_000))
        assert publisher.wait_drained(90), publisher.stats()
        stats = publisher.stats()
    assert stats.producer_restarts >= 1  # the new broker does not know the old producer id
    expected = {e.event_id for e in spooled if isinstance(e, ev.CounterSample)}
    expected |= ids(make_events(5_000, 6_000))
    got = consume(bootstrap, topics.topic_for(ev.CounterSample), expected)
    for asset, values in values_by_asset(got).items():
        assert first_occurrences(values) == sorted(set(values)), asset


def test_broker_restarted_while_idle_is_noticed_and_served(
    broker: tuple[str, Supervisor], spool_path: Path
) -> None:
    """A broker that forgot our producer id makes librdkafka retry forever without an error
    (measured): the publisher sees acknowledgements stall while the broker answers, and sends
    through a new producer."""
    bootstrap, supervisor = broker
    with Publisher(spool_path, bootstrap, stall_timeout_s=3.0, stall_confirm_s=2.0) as publisher:
        publisher.publish(make_events(0, 1_000))
        assert publisher.wait_drained(30)
        supervisor.stop_all()
        supervisor.start_all()  # a new, empty log
        publisher.publish(make_events(1_000, 3_000))
        assert publisher.wait_drained(60), publisher.stats()
        stats = publisher.stats()
    assert stats.producer_restarts == 1
    assert stats.last_error is not None
    got = consume(bootstrap, topics.topic_for(ev.CounterSample), ids(make_events(1_000, 3_000)))
    assert len(got) == 2_000  # purged while the broker refused them: nothing written twice
    for asset, values in values_by_asset(got).items():
        assert values == sorted(values), asset


_CHILD = textwrap.dedent(
    """
    import os, sys
    from tests.integration.test_publisher import make_events
    from connectors.opcua.publisher import Publisher

    publisher = Publisher(sys.argv[1], sys.argv[2], topic_prefix=sys.argv[4]).start()
    for i in range(0, int(sys.argv[3]), 200):
        publisher.publish(make_events(i, i + 200))
        os.write(1, b"%d\\n" % (i + 200))  # accepted up to here
    publisher.wait_drained(60)
    os.write(1, b"drained\\n")
    """
)


def test_publisher_killed_mid_stream_resumes_from_its_spool(
    local_stack: Stack, topic_prefix: str, spool_path: Path
) -> None:
    """SIGKILL the publisher's process; a new one on the same spool sends what is left.

    At least once: every event arrives, and a repeat carries the same event id.
    """
    total = 30_000
    proc = subprocess.Popen(
        [
            *(sys.executable, "-c", _CHILD),
            *(str(spool_path), local_stack.bootstrap, str(total), topic_prefix),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    accepted = 0
    for line in proc.stdout:
        accepted = int(line)
        if accepted >= total // 2:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rest = proc.stdout.read().split()
    if rest and rest[-1].isdigit():
        accepted = int(rest[-1])
    with Publisher(spool_path, local_stack.bootstrap, topic_prefix=topic_prefix) as publisher:
        left = publisher.stats().spool_depth
        for i in range(accepted, total, 1_000):  # the connector carries on where it was
            publisher.publish(make_events(i, min(i + 1_000, total)))
        assert publisher.wait_drained(60), publisher.stats()
    assert left > 0, "the kill came too late to leave anything in the spool"
    sent = ids(make_events(0, total))
    got = consume(local_stack.bootstrap, topics.topic_for(ev.CounterSample, topic_prefix), sent)
    assert ids(got) == sent  # every event at least once; a repeat carries the same event id
    for asset, values in values_by_asset(got).items():
        assert first_occurrences(values) == sorted(set(values)), asset
