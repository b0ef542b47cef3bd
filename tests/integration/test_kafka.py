"""Kafka glue on the real broker: topics, the log epoch, and recovery stores tied to it."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from asbuilt import kafka, recovery, topics
from asbuilt.services.supervisor import Supervisor
from asbuilt.settings import Settings
from tests.conftest import Stack

pytestmark = pytest.mark.integration


def test_topics_are_created_once_per_prefix(local_stack: Stack, topic_prefix: str) -> None:
    kafka.ensure_topics(local_stack.bootstrap, topics.all_topics(topic_prefix))  # idempotent
    listed = AdminClient({"bootstrap.servers": local_stack.bootstrap}).list_topics(timeout=5)
    assert set(topics.all_topics(topic_prefix)) <= set(listed.topics)


def test_log_epoch_is_stable_for_one_log(local_stack: Stack, topic_prefix: str) -> None:
    epoch_topic = topic_prefix + "epoch"
    first = kafka.log_epoch(local_stack.bootstrap, epoch_topic)
    assert kafka.log_epoch(local_stack.bootstrap, epoch_topic) == first
    assert len(first) == 32


def test_recovery_store_resets_when_the_broker_log_is_new(
    tmp_path: Path, broker_only: tuple[Settings, Supervisor]
) -> None:
    """The embedded broker restarted with an empty log → the flow must not resume old offsets."""
    settings, supervisor = broker_only
    store = tmp_path / "recovery" / "oee"
    epoch_a = kafka.log_epoch(settings.bootstrap)
    assert recovery.prepare(store, epoch_a, partitions=2) is True
    (store / "keep-me").write_text("offsets of the old log")
    assert recovery.prepare(store, epoch_a, partitions=2) is False  # same log: resume
    assert (store / "keep-me").exists()

    broker = supervisor.services[0]
    supervisor.stop_all()
    supervisor.start_all()  # the memory log is gone: the broker is new
    epoch_b = broker.info["log_epoch"]
    assert epoch_b != epoch_a
    assert kafka.log_epoch(settings.bootstrap) == epoch_b
    assert recovery.prepare(store, epoch_b, partitions=2) is True
    assert not (store / "keep-me").exists()
    assert sorted(p.name for p in store.glob("part-*.sqlite3")) == [
        "part-0.sqlite3",
        "part-1.sqlite3",
    ]
