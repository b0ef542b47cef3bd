"""Write rows into TimescaleDB from a Bytewax flow, idempotently, without ever losing a batch.

:class:`UpsertSink` (one table, items are row tuples) and :class:`MultiUpsertSink` (several
tables, items are ``(table, row)`` pairs, all written in one transaction) write every batch
Bytewax hands them with :func:`asbuilt.db.copy_upsert` -- binary COPY into a staging table,
then ``INSERT ... ON CONFLICT`` on the natural key -- optionally followed by ``after(conn,
rows)`` in the SAME transaction (the OEE sink refreshes its roll-ups there), then commit.

Why this gives an exactly-once effect: Bytewax calls ``write_batch`` synchronously on the worker
thread, and an epoch's snapshot is only committed to the recovery store once every operator --
the sinks included -- has finished that epoch. A batch that is not yet in the database therefore
always lies after the last committed snapshot: a crash replays it (at-least-once), and the
conflict clause makes the replay a no-op.

Faults:

- The database is down or the connection breaks (``OperationalError``, ``InterfaceError``):
  retry the same batch forever with exponential backoff (:data:`FIRST_BACKOFF_S` doubling to
  :data:`MAX_BACKOFF_S`), reconnecting, logging each retry with the table and the error. The
  flow blocks meanwhile (so it snapshots nothing past the unwritten batch); the metrics say
  ``db_waiting`` and keep the heartbeat fresh, so the stack does not mistake it for a hang.
- Text with a NUL character (valid JSON ``\\u0000``, refused by PostgreSQL): the batch is
  written again with every NUL replaced by the four characters ``\\x00`` (logged).
- Anything else the database refuses (a CHECK or NOT NULL violation, a wrong type) is a bug in
  the rows a flow made: log the table, the database's detail and the first row, and raise --
  the flow stops rather than drop data.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import psycopg
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import Producer
from psycopg import errors as pg_errors
from psycopg.types.uuid import UUIDBinaryDumper

from asbuilt import db, kafka, topics
from asbuilt import events as ev
from asbuilt.settings import Settings
from pipelines.common.metrics import METRICS
from pipelines.common.source import Rejected

logger = logging.getLogger(__name__)

FIRST_BACKOFF_S: Final = 0.5
MAX_BACKOFF_S: Final = 30.0
DEFAULT_BATCH_ROWS: Final = 5000

Row = Sequence[Any]
After = Callable[[db.Conn, list[Row]], None]
"""``after(conn, rows)``: runs in the write's transaction, after the rows are upserted."""
MultiAfter = Callable[[db.Conn, Mapping[str, list[Row]]], None]

_RETRY: Final = (psycopg.OperationalError, psycopg.InterfaceError)
_NUL: Final = (pg_errors.CharacterNotInRepertoire, pg_errors.UntranslatableCharacter)


@dataclass(frozen=True)
class Table:
    """Where rows go: ``table`` with ``columns`` (row order), natural ``key``, and the columns
    a replayed key overwrites (``update``; empty: ``DO NOTHING``)."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    update: tuple[str, ...] = ()


class _StrUUIDDumper(UUIDBinaryDumper):
    """Binary uuid from the contract's canonical string (5x cheaper than ``uuid.UUID(s)``)."""

    def dump(self, obj: Any) -> bytes:
        if isinstance(obj, str):
            return bytes.fromhex(obj.replace("-", ""))
        return bytes(obj.bytes)


def connect(dsn: str) -> db.Conn:
    """A connection for a sink: autocommit (each write opens its own transaction), uuid columns
    accept the contract's uuid strings."""
    conn = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
    conn.adapters.register_dumper(None, _StrUUIDDumper)  # by oid only: str stays text elsewhere
    return conn


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\\x00")
    if isinstance(value, dict):  # jsonb: keys and values
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_clean(v) for v in value)
    return value


def _without_nul(rows: list[Row]) -> list[Row]:
    return [tuple(_clean(v) for v in row) for row in rows]


def _sleep(seconds: float) -> None:
    """Sleep, keeping the heartbeat fresh (a sink waiting for the database is not hung)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        METRICS.beat()
        time.sleep(min(left, 1.0))
    METRICS.beat()


class DatabaseWriter:
    """One connection and the retry policy of the module docstring (usable outside Bytewax)."""

    def __init__(self, dsn: str, name: str) -> None:
        self.dsn = dsn
        self.name = name  # for logs: the table(s)
        self._conn: db.Conn | None = None

    def _connection(self) -> db.Conn:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.dsn)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def write(self, work: Callable[[db.Conn, bool], None], first_row: object) -> None:
        """Run ``work(conn, sanitised)`` in one transaction and commit; retry as documented.

        ``work`` writes the rows (``sanitised``: NUL characters must be replaced, see the module
        docstring); ``first_row`` (or a callable returning it) is logged if the database refuses
        the batch.
        """
        backoff = FIRST_BACKOFF_S
        sanitised = False
        attempt = 0
        while True:
            attempt += 1
            try:
                conn = self._connection()
                with conn.transaction():
                    work(conn, sanitised)
            except _RETRY as exc:
                self.close()
                METRICS.db_waiting = f"{self.name}: {type(exc).__name__}: {exc}".strip()
                logger.warning(
                    "database write to %s failed (attempt %d), retrying in %.1f s: %s",
                    self.name,
                    attempt,
                    backoff,
                    str(exc).strip() or type(exc).__name__,
                )
                _sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            except _NUL as exc:
                if sanitised:
                    raise
                logger.warning(
                    "%s: text with NUL characters, which PostgreSQL refuses; writing them as "
                    "\\x00 (%s)",
                    self.name,
                    exc,
                )
                sanitised = True
                continue
            except psycopg.Error as exc:
                detail = exc.diag.message_detail if exc.diag else None
                logger.error(
                    "database refused rows for %s: %s (%s); first row of the batch: %r",
                    self.name,
                    str(exc).strip(),
                    detail or "no detail",
                    first_row() if callable(first_row) else first_row,
                )
                raise
            if METRICS.db_waiting:
                logger.info(
                    "database write to %s succeeded again after %d attempts", self.name, attempt
                )
                METRICS.db_waiting = ""
            return


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _UpsertPartition(StatelessSinkPartition[Row]):
    def __init__(self, sink: UpsertSink) -> None:
        self.sink = sink
        self.writer = DatabaseWriter(sink.dsn, sink.table.name)

    def write_batch(self, items: list[Row]) -> None:
        table, after = self.sink.table, self.sink.after
        for rows in _chunks(items, self.sink.batch_rows):

            def work(conn: db.Conn, sanitised: bool, rows: list[Row] = rows) -> None:
                todo = _without_nul(rows) if sanitised else rows
                db.copy_upsert(conn, table.name, table.columns, todo, table.key, table.update)
                if after is not None:
                    after(conn, todo)

            self.writer.write(work, rows[0])
            METRICS.rows_out += len(rows)
            METRICS.last_write_ts = datetime.now(UTC)

    def close(self) -> None:
        self.writer.close()


class UpsertSink(DynamicSink[Row]):
    """Rows (tuples in ``columns`` order) into ``table``, idempotently (see the module doc).

    ``key`` is the natural key (a unique index including the time column); ``update`` the
    columns a replayed key overwrites (a correction; empty: the first write wins). ``after(conn,
    rows)`` runs after each upsert in the same transaction. At most ``batch_rows`` rows per
    transaction.
    """

    def __init__(
        self,
        dsn: str,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        update: Sequence[str] = (),
        after: After | None = None,
        *,
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> None:
        self.dsn = dsn
        self.table = Table(table, tuple(columns), tuple(key), tuple(update))
        self.after = after
        self.batch_rows = batch_rows

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _UpsertPartition:
        return _UpsertPartition(self)


class _MultiPartition(StatelessSinkPartition[tuple[str, Row]]):
    def __init__(self, sink: MultiUpsertSink) -> None:
        self.sink = sink
        self.writer = DatabaseWriter(sink.dsn, ",".join(sink.tables))

    def write_batch(self, items: list[tuple[str, Row]]) -> None:
        for chunk in _chunks(items, self.sink.batch_rows):
            by_table: defaultdict[str, list[Row]] = defaultdict(list)
            for table, row in chunk:
                by_table[table].append(row)

            def work(
                conn: db.Conn, sanitised: bool, by_table: Mapping[str, list[Row]] = by_table
            ) -> None:
                done: dict[str, list[Row]] = {}
                for name, rows in by_table.items():
                    spec = self.sink.tables[name]
                    todo = _without_nul(rows) if sanitised else rows
                    db.copy_upsert(conn, spec.name, spec.columns, todo, spec.key, spec.update)
                    done[name] = todo
                if self.sink.after is not None:
                    self.sink.after(conn, done)

            self.writer.name = ",".join(by_table)  # what the logs name: the tables of this batch
            self.writer.write(work, chunk[0])
            METRICS.rows_out += len(chunk)
            METRICS.last_write_ts = datetime.now(UTC)

    def close(self) -> None:
        self.writer.close()


class MultiUpsertSink(DynamicSink[tuple[str, Row]]):
    """``(table name, row)`` items into several tables, one transaction per batch.

    As :class:`UpsertSink`; ``tables`` describes each table; ``after(conn, rows_by_table)``
    runs in the same transaction. Raises ``KeyError`` on a table it was not told about (a bug).
    """

    def __init__(
        self,
        dsn: str,
        tables: Iterable[Table],
        after: MultiAfter | None = None,
        *,
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> None:
        self.dsn = dsn
        self.tables = {t.name: t for t in tables}
        self.after = after
        self.batch_rows = batch_rows

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _MultiPartition:
        return _MultiPartition(self)


# --- dead letters --------------------------------------------------------------------------

DEAD_LETTERS: Final = Table(
    "dead_letters",
    (
        "received_ts",
        "event_id",
        "origin",
        "reason",
        "payload",
        "payload_size",
        "payload_truncated",
        "schema_version",
        "topic",
        "partition",
        "offset",
    ),
    ("received_ts", "event_id"),
)


def letter_row(
    d: ev.DeadLetter,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
) -> tuple[Any, ...]:
    """The ``dead_letters`` row of a dead letter (columns of :data:`DEAD_LETTERS`); the Kafka
    position is None for one that did not come from Kafka (a connector's)."""
    return (
        d.received_ts,
        d.event_id,
        d.origin,
        d.reason.replace("\x00", "\\x00"),
        d.payload.replace("\x00", "\\x00"),  # PostgreSQL text cannot hold NUL
        d.payload_size,
        d.payload_truncated,
        d.schema_version,
        topic,
        partition,
        offset,
    )


def dead_letter_row(rejected: Rejected) -> tuple[Any, ...]:
    """The ``dead_letters`` row of a rejected message, with its Kafka position."""
    return letter_row(rejected.dead_letter, rejected.topic, rejected.partition, rejected.offset)


class _DeadLetterPartition(StatelessSinkPartition[Rejected]):
    def __init__(self, sink: DeadLetterSink) -> None:
        self.sink = sink
        self.writer = DatabaseWriter(sink.dsn, DEAD_LETTERS.name)
        self.producer = Producer(kafka.producer_config(sink.kafka))

    def write_batch(self, items: list[Rejected]) -> None:
        self._publish(items)
        rows = [dead_letter_row(r) for r in items]

        def work(conn: db.Conn, sanitised: bool) -> None:
            t = DEAD_LETTERS
            db.copy_upsert(conn, t.name, t.columns, rows, t.key, t.update)

        self.writer.write(work, rows[0])
        for r in items:
            logger.info(
                "dead letter topic=%s partition=%d offset=%d: %s",
                r.topic,
                r.partition,
                r.offset,
                r.dead_letter.reason,
            )

    def _publish(self, items: list[Rejected]) -> None:
        for r in items:
            self.producer.produce(
                self.sink.topic, ev.encode(r.dead_letter), key=ev.key(r.dead_letter)
            )
        backoff = FIRST_BACKOFF_S
        while (left := self.producer.flush(backoff)) > 0:
            METRICS.beat()
            logger.warning(
                "%d dead letter(s) not yet acknowledged by Kafka (topic %s); waiting",
                left,
                self.sink.topic,
            )
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    def close(self) -> None:
        self.producer.flush(10)
        self.writer.close()


class DeadLetterSink(DynamicSink[Rejected]):
    """Rejected messages into the ``dead_letters`` table (with topic, partition, offset) AND
    onto the dead-letter topic (``asbuilt.v1.dead_letters``, keyed by origin).

    Both at-least-once with the same deterministic dead-letter id: the table keeps one row per
    message; a consumer of the topic deduplicates on ``event_id``. Kafka first, then the
    database: a crash in between replays both.
    """

    def __init__(self, settings: Settings, dsn: str) -> None:
        self.dsn = dsn
        self.kafka = settings.kafka
        self.topic = topics.topic_name("dead_letters", settings.topic_prefix)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _DeadLetterPartition:
        return _DeadLetterPartition(self)
