"""Read contract events from Kafka into a Bytewax flow: :func:`read_events`.

Works as Bytewax's own :class:`~bytewax.connectors.kafka.KafkaSource` does (same partition
listing and names, reused from it): every Kafka partition is a Bytewax input partition, assigned
by Bytewax (no consumer group) and its offset kept in the flow's recovery store, so a restarted
flow resumes where its last snapshot was taken (and replays at most one snapshot interval, which
the idempotent sinks absorb). A fresh store starts at the
beginning of each topic; :func:`asbuilt.recovery.prepare` makes a fresh store whenever the
broker's log is new.

Its partition is our own, for speed and for safety:

- Decoding happens in the partition, one pass over the polled batch, and the partition emits
  ONE item per poll: a :class:`Decoded` pair of lists. Two ``flat_map`` steps then fan the lists
  out into the events stream and the rejected stream; Bytewax iterates those lists natively, so
  there is no per-message Python call besides the msgspec decode itself (no
  ``KafkaSourceMessage`` objects, no per-item branch predicate).
- Errors the consumer reports (broker down, ...) are logged and counted, and never move the
  resume offset. (The stock partition sets its offset from an error's offset, -1001, which a
  snapshot would store; a resume from it would start at the *latest* offset and skip data.)
- Polls never block (``consume(n, 0)``); an empty poll sleeps the partition for
  :data:`IDLE_WAIT` via ``next_awake`` instead of Bytewax's 1 ms spin, so dozens of idle
  partitions cost next to no CPU and never delay the busy ones.
- Optionally (``align_s``, the OEE and downtime flows) the partitions of a source are kept
  within ``align_s`` of Kafka record time of each other (:class:`Aligner`, watermark alignment
  as Flink's FLIP-182 does it, or Kafka Streams choosing the partition with the oldest record):
  a partition whose next record is more than ``align_s`` newer than the oldest pending record of
  the other partitions holds it back (buffered, not yet emitted: the resume offset stays before
  it). Kafka orders each partition, not the topics between them; without alignment a backlog
  (a flow started after the connectors, or restarted after a long stop) is read at each topic's
  own pace, and the sparse states topic of hours of history arrives in one poll, long before
  the counter samples of the same hours -- which then all come "late" and correct minutes that
  were already written. With ``align_s`` at most half the lateness, a backlog is read in event
  order as far as the lateness can tell, and rows are written once. A partition that has read
  everything there is (:data:`IDLE_AFTER`) holds nobody back (the live case: sparse topics are
  idle most of the time). Alignment is per process; the record time is the producer's (the
  connectors': their ingest time).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NamedTuple, TypeVar

import bytewax.operators as op
import msgspec
from bytewax.connectors.kafka import _list_parts
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from asbuilt import events as ev
from asbuilt import topics
from asbuilt.settings import Settings
from pipelines.common.metrics import METRICS

logger = logging.getLogger(__name__)

BATCH_SIZE: Final = 5000
"""Most messages one partition hands over per poll."""

IDLE_WAIT: Final = (timedelta(milliseconds=10), timedelta(milliseconds=100))
"""How long a partition that had nothing sleeps before polling again: the first empty poll
waits the shorter time, each further one twice as long, up to the longer (the most a first
event after a quiet spell waits). An idle flow over 36 partitions measured ~4 % of a core, most
of it librdkafka's fetch threads."""

_KAFKA_ERROR_LOG_EVERY_S: Final = 10.0

IDLE_AFTER: Final = 2.0
"""An aligned partition is idle -- it no longer holds the others back -- when the broker said it
has read everything (partition EOF, reported after each fetch that reaches the end), or, should
that never come, after this many seconds without a message. At start every partition holds the
others back until its first fetch answered (about half a second here)."""

ALIGN_WAIT: Final = timedelta(milliseconds=1)
"""How long an aligned partition waiting for its next fetch (others may be waiting for it)
sleeps before it looks again."""

HELD_WAIT: Final = timedelta(milliseconds=5)
"""How long an aligned partition held back (too far ahead) sleeps before it looks again."""

_DECODE: Final = msgspec.json.Decoder(ev.Event).decode
_DECODE_LETTER: Final = msgspec.json.Decoder(ev.DeadLetter).decode


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message that is not a valid event, with where it was in Kafka.

    ``dead_letter.origin`` is ``"<topic>[<partition>]@<offset>"`` and its ``received_ts`` the
    Kafka record timestamp, so a redelivered bad message yields the same dead letter (same id,
    same key in the ``dead_letters`` table).
    """

    dead_letter: ev.DeadLetter
    topic: str
    partition: int
    offset: int


class Decoded(NamedTuple):
    """What one poll of one partition produced (the source's item; see the module docstring)."""

    events: list[ev.Event]
    rejected: list[Rejected]


EVENT_KINDS: Final[tuple[topics.TopicKind, ...]] = topics.EVENT_TOPIC_KINDS
"""Every topic kind that carries contract events (the historian reads them all)."""


def consumer_config(settings: Settings) -> dict[str, Any]:
    """librdkafka properties of the flows' consumers (one consumer per Kafka partition).

    ``fetch.wait.max.ms`` 50 cuts the broker's answer time when little data flows; statistics
    are off (the stock source parses a JSON report per partition every second for a Prometheus
    gauge we do not serve); the prefetch queue per partition is bounded so dozens of partitions
    cannot hold gigabytes; an offset out of range (the log was truncated under a resume offset)
    restarts at the earliest retained record, never at the latest.
    """
    return settings.kafka | {
        "fetch.wait.max.ms": 50,
        "statistics.interval.ms": 0,
        "queued.max.messages.kbytes": 16384,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        "log_level": 3,  # librdkafka errors only; the partition logs what it sees itself
    }


_Item = TypeVar("_Item")


def record_time(timestamp: tuple[int, int]) -> datetime | None:
    """The Kafka record timestamp of a message (``msg.timestamp()``) as a datetime, or None."""
    kind, ms = timestamp
    return datetime.fromtimestamp(ms / 1000, UTC) if kind and ms >= 0 else None


class Aligner:
    """The record-time positions of the partitions of one source, for alignment (see the module
    docstring): a partition may emit records up to :meth:`bound`."""

    def __init__(self, align_s: float) -> None:
        self.slack_ms = align_s * 1000.0
        self._positions: dict[str, float] = {}  # partition -> record time (ms); idle: absent

    def report(self, part: str, position_ms: float | None) -> None:
        """Where ``part`` stands: the record time of its oldest pending record (or of its last
        record while it may still get older ones); None when it is idle."""
        if position_ms is None:
            self._positions.pop(part, None)
        else:
            self._positions[part] = position_ms

    def bound(self) -> float:
        """The newest record time any partition may emit now."""
        return min(self._positions.values(), default=math.inf) + self.slack_ms


def _record_ms(msg: Message) -> float:
    kind, ms = msg.timestamp()
    return -math.inf if kind == TIMESTAMP_NOT_AVAILABLE else float(ms)


class KafkaPartition(StatefulSourcePartition[_Item, int]):
    """One Kafka partition: poll without blocking, decode the batch, emit ONE item per poll.

    The resume state is the next offset to read (as in Bytewax's own Kafka partition).
    Subclasses decode (:meth:`_decode`).
    """

    def __init__(
        self,
        config: dict[str, Any],
        topic: str,
        part_idx: int,
        resume_state: int | None,
        aligner: Aligner | None = None,
    ) -> None:
        self._offset = OFFSET_BEGINNING if resume_state is None else resume_state
        self._aligner = aligner
        self._key = f"{part_idx}-{topic}"
        self._pending: list[Message] = []  # read, held back by alignment (not yet emitted)
        self._position = -math.inf  # record time of the last record emitted (ms)
        self._last_data = time.monotonic()
        self._at_end = False  # the broker said it has nothing more (partition EOF)
        self._consumer = Consumer(config)
        # assign(), not subscribe(): no consumer group, Bytewax owns the partition.
        self._consumer.assign([TopicPartition(topic, part_idx, self._offset)])
        self._topic = topic
        self._part_idx = part_idx
        self._awake: datetime | None = None
        self._idle = IDLE_WAIT[0]
        self._last_error_log = 0.0

    def next_batch(self) -> list[_Item]:
        METRICS.beat()
        if self._aligner is not None:
            return self._next_aligned(self._aligner)
        msgs = self._consumer.consume(BATCH_SIZE, 0)
        if not msgs:
            self._sleep_idle()
            return []
        self._awake = None
        self._idle = IDLE_WAIT[0]
        return [self._decode(msgs)]

    def _sleep_idle(self) -> None:
        self._awake = datetime.now(UTC) + self._idle
        self._idle = min(self._idle * 2, IDLE_WAIT[1])

    def _next_aligned(self, aligner: Aligner) -> list[_Item]:
        pending = self._pending
        if len(pending) <= BATCH_SIZE // 2:  # held back with plenty pending: no poll needed
            msgs = self._consumer.consume(BATCH_SIZE - len(pending), 0)
            if msgs:
                err = msgs[-1].error()
                self._at_end = err is not None and err.code() == KafkaError._PARTITION_EOF
                if self._at_end:
                    msgs.pop()
                if msgs:
                    pending += msgs
                    self._last_data = time.monotonic()
        if not pending:
            if self._at_end or time.monotonic() - self._last_data >= IDLE_AFTER:
                aligner.report(self._key, None)  # idle: holds nobody back
                self._sleep_idle()
            else:  # data flowed lately: more is likely on its way, and others may wait for it
                aligner.report(self._key, self._position)
                self._awake = datetime.now(UTC) + ALIGN_WAIT
            return []
        aligner.report(self._key, _record_ms(pending[0]))
        bound = aligner.bound()
        if _record_ms(pending[-1]) <= bound:
            n = len(pending)
        else:
            n = 0
            while n < len(pending) and _record_ms(pending[n]) <= bound:
                n += 1
        self._idle = IDLE_WAIT[0]
        if n == 0:
            self._awake = datetime.now(UTC) + HELD_WAIT
            return []
        self._awake = None
        take = pending[:n]
        self._pending = pending[n:]
        self._position = max(self._position, _record_ms(take[-1]))
        aligner.report(self._key, _record_ms(self._pending[0]) if self._pending else self._position)
        return [self._decode(take)]

    def _decode(self, msgs: list[Message]) -> _Item:
        raise NotImplementedError

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> int:
        return self._offset

    def close(self) -> None:
        self._consumer.close()

    def _reject(self, msg: Message, reason: str | None = None) -> Rejected:
        """The dead letter of a message (asbuilt.events.decode says why; never raises)."""
        offset = int(msg.offset() or 0)
        origin = f"{self._topic}[{self._part_idx}]@{offset}"
        value = msg.value()
        letter = ev.decode(value, origin, record_time(msg.timestamp()))
        if reason is not None or not isinstance(letter, ev.DeadLetter):
            letter = ev.new_dead_letter(
                reason=reason or "rejected by the flow's decoder",
                origin=origin,
                payload=value or b"",
                received_ts=record_time(msg.timestamp()),
            )
        logger.debug("dead letter topic=%s offset=%d: %s", self._topic, offset, letter.reason)
        return Rejected(letter, self._topic, self._part_idx, offset)

    def _kafka_error(self, msg: Message) -> bool:
        """Log (rate-limited) and count a consumer error; True if it consumed an offset."""
        err = msg.error()
        if err.code() == KafkaError._PARTITION_EOF:
            return False  # not an error: the end of the partition (aligned sources ask for it)
        METRICS.kafka_errors += 1
        METRICS.last_kafka_error = f"{self._topic}[{self._part_idx}]: {err}"
        now = time.monotonic()
        if now - self._last_error_log >= _KAFKA_ERROR_LOG_EVERY_S:
            self._last_error_log = now
            logger.warning(
                "kafka error topic=%s partition=%d: %s (retrying; logged every %.0f s)",
                self._topic,
                self._part_idx,
                err,
                _KAFKA_ERROR_LOG_EVERY_S,
            )
        offset = msg.offset()
        return offset is not None and offset >= 0 and msg.topic() == self._topic


class _EventPartition(KafkaPartition[Decoded]):
    """A partition of an event topic: contract events, or dead letters saying why not."""

    def _decode(self, msgs: list[Message]) -> Decoded:
        events: list[ev.Event] = []
        rejected: list[Rejected] = []
        append = events.append
        last_offset = None
        for msg in msgs:
            if msg.error() is not None:
                if self._kafka_error(msg):
                    last_offset = msg.offset()
                continue
            last_offset = msg.offset()
            try:
                event = _DECODE(msg.value())  # type: ignore[arg-type]  # None: TypeError
            except (msgspec.DecodeError, TypeError, UnicodeError, RecursionError):
                rejected.append(self._reject(msg))
                continue
            if event.schema_version > ev.SCHEMA_VERSION:
                rejected.append(self._reject(msg))
                continue
            append(event)
        if last_offset is not None:
            self._offset = last_offset + 1
        METRICS.items_in += len(events)
        METRICS.dead_letters += len(rejected)
        if events:
            METRICS.last_event_ts = events[-1].ts
        return Decoded(events, rejected)


class Published(NamedTuple):
    """What one poll of the dead-letter topic produced (see :func:`read_published_dead_letters`)."""

    letters: list[ev.DeadLetter]
    rejected: list[Rejected]


class _DeadLetterPartition(KafkaPartition[Published]):
    """A partition of the dead-letter topic: the dead letters other processes published.

    Dead letters whose origin is a position in one of our own topics (``<topic>[p]@offset``)
    were published by a flow that stored them itself, and are skipped.
    """

    own_origins: tuple[str, ...] = ()

    def _decode(self, msgs: list[Message]) -> Published:
        letters: list[ev.DeadLetter] = []
        rejected: list[Rejected] = []
        last_offset = None
        for msg in msgs:
            if msg.error() is not None:
                if self._kafka_error(msg):
                    last_offset = msg.offset()
                continue
            last_offset = msg.offset()
            try:
                letter = _DECODE_LETTER(msg.value())  # type: ignore[arg-type]  # None: TypeError
            except (msgspec.DecodeError, TypeError, UnicodeError, RecursionError) as exc:
                rejected.append(self._reject(msg, f"not a dead letter of the contract: {exc}"))
                continue
            if not letter.origin.startswith(self.own_origins):
                letters.append(letter)
        if last_offset is not None:
            self._offset = last_offset + 1
        METRICS.dead_letters += len(letters) + len(rejected)
        return Published(letters, rejected)


class EventSource(FixedPartitionedSource[_Item, int]):
    """Kafka topics as a Bytewax source, one partition per Kafka partition, named
    ``"<partition>-<topic>"`` as Bytewax's KafkaSource names them; items: one per poll
    (:class:`Decoded` for event topics)."""

    def __init__(
        self,
        config: dict[str, Any],
        topics: Sequence[str],
        partition: Callable[..., KafkaPartition[_Item]],
        align_s: float | None = None,
    ) -> None:
        self._config = config
        self._topics = tuple(topics)
        self._partition = partition
        self._aligner = None if align_s is None else Aligner(align_s)

    def list_parts(self) -> list[str]:
        return list(_list_parts(AdminClient(self._config), self._topics))

    def build_part(
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> KafkaPartition[_Item]:
        idx, topic = for_part.split("-", 1)
        if topic not in self._topics:
            msg = (
                f"the recovery store has a partition of topic {topic!r}, which this flow does not "
                f"read ({', '.join(self._topics)}): delete the store to start over"
            )
            raise ValueError(msg)
        config = {
            "group.id": "asbuilt-unused",  # assign() only: offsets live in the recovery store
            "enable.auto.commit": False,
        } | self._config
        if self._aligner is None:
            return self._partition(config, topic, int(idx), resume_state)
        config["enable.partition.eof"] = True  # tells an aligned partition it is idle
        return self._partition(config, topic, int(idx), resume_state, self._aligner)


def source(
    settings: Settings, kinds: Sequence[topics.TopicKind], align_s: float | None = None
) -> EventSource[Decoded]:
    """The Bytewax source of the event topics of ``kinds`` (with ``settings.topic_prefix``):
    one :class:`Decoded` item per poll of a partition; ``align_s``: keep the partitions within
    that many seconds of record time of each other (see the module docstring)."""
    unknown = [k for k in kinds if k not in EVENT_KINDS]
    if unknown:
        msg = f"these are not event topics ({', '.join(EVENT_KINDS)}): {unknown}"
        raise ValueError(msg)
    names = [topics.topic_name(kind, settings.topic_prefix) for kind in kinds]
    return EventSource(consumer_config(settings), names, _EventPartition, align_s)


def dead_letter_source(settings: Settings) -> EventSource[Published]:
    """The Bytewax source of the dead-letter topic: one :class:`Published` item per poll."""
    own = tuple(f"{topics.topic_name(k, settings.topic_prefix)}[" for k in EVENT_KINDS)

    def partition(
        config: dict[str, Any], topic: str, idx: int, resume: int | None
    ) -> _DeadLetterPartition:
        part = _DeadLetterPartition(config, topic, idx, resume)
        part.own_origins = own
        return part

    name = topics.topic_name("dead_letters", settings.topic_prefix)
    return EventSource(consumer_config(settings), [name], partition)


def _events(item: Decoded) -> list[ev.Event]:
    return item.events


def _rejected(item: Decoded) -> list[Rejected]:
    return item.rejected


def read_events(
    flow: Dataflow, step_id: str, settings: Settings, kinds: Iterable[topics.TopicKind]
) -> tuple[Stream[ev.Event], Stream[Rejected]]:
    """The events of the topics of ``kinds``, and the messages that were not valid events.

    Returns ``(events, rejected)``: ``events`` are decoded contract events (in offset order per
    Kafka partition, i.e. per asset); ``rejected`` are :class:`Rejected` dead letters with their
    topic, partition and offset. Step ids: ``step_id`` (the input) and ``<step_id>_events`` /
    ``<step_id>_rejected``.
    """
    decoded = op.input(step_id, flow, source(settings, tuple(kinds)))
    events = op.flat_map(f"{step_id}_events", decoded, _events)
    rejected = op.flat_map(f"{step_id}_rejected", decoded, _rejected)
    return events, rejected


def _letters(item: Published) -> list[ev.DeadLetter]:
    return item.letters


def _published_rejected(item: Published) -> list[Rejected]:
    return item.rejected


def read_published_dead_letters(
    flow: Dataflow, step_id: str, settings: Settings
) -> tuple[Stream[ev.DeadLetter], Stream[Rejected]]:
    """The dead letters other processes (the connectors) published on the dead-letter topic,
    and the messages on it that are not dead letters at all.

    Dead letters a flow published itself (origin ``<one of our topics>[p]@offset``) are left
    out: that flow stored them. Step ids: ``step_id``, ``<step_id>_letters``,
    ``<step_id>_rejected``.
    """
    published = op.input(step_id, flow, dead_letter_source(settings))
    letters = op.flat_map(f"{step_id}_letters", published, _letters)
    rejected = op.flat_map(f"{step_id}_rejected", published, _published_rejected)
    return letters, rejected
