"""Kafka client glue: configurations that are right on Apache Kafka and on the embedded broker,
topic creation, a health check, and the log epoch.

The log epoch answers one question: "is this the same log my offsets refer to?". The first client
that finds the epoch topic empty or missing writes a random id into it; everyone reads the first
record. A broker that lost its log (the embedded broker keeps it in memory; a wiped cluster) has
no epoch topic, so the next reader writes a new id, and a pipeline whose recovery store was made
under the old id resets it instead of resuming at offsets that no longer mean anything.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from asbuilt.errors import ServiceError

logger = logging.getLogger(__name__)

EPOCH_TOPIC = "asbuilt.log_epoch"
# Kept forever: were the first record to expire, the next reader would start a "new" epoch.
EPOCH_TOPIC_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}

Connection = str | Mapping[str, Any]
"""Bootstrap servers, or librdkafka connection properties (``Settings.kafka``: security too)."""


def connection(conn: Connection) -> dict[str, Any]:
    return {"bootstrap.servers": conn} if isinstance(conn, str) else dict(conn)


def _where(conn: Connection) -> str:
    return str(connection(conn)["bootstrap.servers"])


def producer_config(conn: Connection, **overrides: Any) -> dict[str, Any]:
    """Idempotent producer, acknowledged by all in-sync replicas: no loss, no duplicates."""
    config: dict[str, Any] = connection(conn) | {
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "compression.type": "lz4",
    }
    config.update(overrides)
    return config


def consumer_config(conn: Connection, group_id: str, **overrides: Any) -> dict[str, Any]:
    """Manual commits after processing; short session timeout and fetch wait for low latency.

    The embedded broker delays a group's first assignment by half the session timeout, so a
    small ``session.timeout.ms`` keeps start-up quick there and is harmless on Kafka.
    """
    config: dict[str, Any] = connection(conn) | {
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1500,
        "fetch.wait.max.ms": 50,
    }
    config.update(overrides)
    return config


def check_broker(conn: Connection, timeout_s: float = 5.0) -> int:
    """Raise ServiceError unless the cluster answers a metadata request; return its broker count."""
    admin = AdminClient(
        connection(conn)
        | {
            "socket.timeout.ms": int(timeout_s * 1000),
            "log_level": 0,  # a refused connection is the answer here, not log noise
        }
    )
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        msg = f"Kafka at {_where(conn)} did not answer within {timeout_s:.0f} s: {exc}"
        raise ServiceError(msg) from exc
    return len(metadata.brokers)


def ensure_topics(
    conn: Connection,
    topics: Iterable[str],
    partitions: int = 1,
    replication: int = -1,
    config: Mapping[str, str] | None = None,
    timeout_s: float = 10.0,
) -> None:
    """Create the topics that do not exist yet (idempotent); existing ones are left as they are."""
    admin = AdminClient(connection(conn))
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [
        NewTopic(
            t, num_partitions=partitions, replication_factor=replication, config=dict(config or {})
        )
        for t in topics
        if t not in existing
    ]
    if not missing:
        return
    for topic, future in admin.create_topics(missing, operation_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                msg = f"cannot create topic {topic} on {_where(conn)}: {exc}"
                raise ServiceError(msg) from exc
        logger.info("created topic=%s partitions=%d", topic, partitions)


def _read_epoch(conn: Connection, topic: str, timeout_s: float) -> str | None:
    consumer = Consumer(
        consumer_config(conn, group_id=f"asbuilt-epoch-{uuid.uuid4().hex}")
        | {"enable.partition.eof": True}
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])  # offset 0: the first record
        msg = consumer.poll(timeout_s)
        while msg is not None:
            err = msg.error()
            if err is None:
                value = msg.value()
                return value.decode() if value else None
            if err.code() == KafkaError._PARTITION_EOF:
                return None
            if not err.retriable() and err.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise KafkaException(err)
            msg = consumer.poll(timeout_s)
        return None
    finally:
        consumer.close()


def log_epoch(conn: Connection, topic: str = EPOCH_TOPIC, timeout_s: float = 5.0) -> str:
    """The id of the broker's current log; written by the first caller on a new log."""
    ensure_topics(conn, [topic], partitions=1, config=EPOCH_TOPIC_CONFIG)
    epoch = _read_epoch(conn, topic, timeout_s)
    if epoch is not None:
        return epoch
    producer = Producer(producer_config(conn))
    producer.produce(topic, uuid.uuid4().hex.encode(), key=b"epoch")
    if producer.flush(timeout_s) != 0:
        msg = f"could not write the log epoch to {topic} on {_where(conn)}"
        raise ServiceError(msg)
    # Read back rather than trust our write: a concurrent first caller may have won offset 0.
    epoch = _read_epoch(conn, topic, timeout_s)
    if epoch is None:
        msg = f"wrote the log epoch to {topic} on {_where(conn)} but cannot read it back"
        raise ServiceError(msg)
    logger.info("new broker log: epoch=%s bootstrap=%s", epoch, _where(conn))
    return epoch
