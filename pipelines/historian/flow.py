"""The historian: every contract event, from every event topic, into its raw hypertable.

    events (all six event topics) -> (table, row) -> one COPY-upsert per table per batch
    rejected messages             -> dead_letters table + dead-letter topic
    the dead-letter topic         -> dead_letters table: what the connectors dead-lettered
                                     (the historian's own are skipped: stored already)

Nothing lost: a batch is committed to the database before Bytewax can snapshot past it, and a
database outage blocks the flow until the write succeeds (:mod:`pipelines.common.sink`).
Nothing stored twice: every raw table's key is ``(asset, ts, event_id)`` with a deterministic
event id, and rows are written ``ON CONFLICT DO NOTHING``, so replays after a crash and
duplicate deliveries leave one row.
"""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from asbuilt.events import DeadLetter
from asbuilt.settings import Settings
from pipelines.common.runner import database_dsn
from pipelines.common.sink import (
    DEAD_LETTERS,
    DeadLetterSink,
    MultiUpsertSink,
    Row,
    Table,
    dead_letter_row,
    letter_row,
)
from pipelines.common.source import (
    EVENT_KINDS,
    Rejected,
    read_events,
    read_published_dead_letters,
)
from pipelines.historian import rows

TABLES = (
    *(Table(name, columns, rows.KEY) for name, columns in rows.COLUMNS.items()),
    DEAD_LETTERS,
)


def _letter_row(letter: DeadLetter) -> tuple[str, Row]:
    return DEAD_LETTERS.name, letter_row(letter)


def _rejected_row(rejected: Rejected) -> tuple[str, Row]:
    return DEAD_LETTERS.name, dead_letter_row(rejected)


def build_flow(settings: Settings) -> Dataflow:
    """The historian dataflow for ``settings`` (topics with ``settings.topic_prefix``)."""
    dsn = database_dsn(settings)
    flow = Dataflow("historian")
    events, rejected = read_events(flow, "read", settings, EVENT_KINDS)
    table_rows = op.map("rows", events, rows.table_row)
    letters, not_letters = read_published_dead_letters(flow, "read_dead_letters", settings)
    letter_rows = op.map("letter_rows", letters, _letter_row)
    odd_rows = op.map("odd_rows", not_letters, _rejected_row)
    everything = op.merge("all_rows", table_rows, letter_rows, odd_rows)
    sink = MultiUpsertSink(dsn, TABLES, batch_rows=settings.sink_batch_rows)
    op.output("store", everything, sink)
    op.output("dead_letters", rejected, DeadLetterSink(settings, dsn))
    return flow
