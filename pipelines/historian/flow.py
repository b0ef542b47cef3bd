"""The historian: every contract event, from every event topic, into its raw hypertable.

    events (all six event topics) -> (table, row) -> one COPY-upsert per table per batch
    rejected messages             -> dead_letters table + dead-letter topic

Nothing lost: a batch is committed to the database before Bytewax can snapshot past it, and a
database outage blocks the flow until the write succeeds (:mod:`pipelines.common.sink`).
Nothing stored twice: every raw table's key is ``(asset, ts, event_id)`` with a deterministic
event id, and rows are written ``ON CONFLICT DO NOTHING``, so replays after a crash and
duplicate deliveries leave one row.
"""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from asbuilt.settings import Settings
from pipelines.common.runner import database_dsn
from pipelines.common.sink import DeadLetterSink, MultiUpsertSink, Table
from pipelines.common.source import EVENT_KINDS, read_events
from pipelines.historian import rows

TABLES = tuple(Table(name, columns, rows.KEY) for name, columns in rows.COLUMNS.items())


def build_flow(settings: Settings) -> Dataflow:
    """The historian dataflow for ``settings`` (topics with ``settings.topic_prefix``)."""
    dsn = database_dsn(settings)
    flow = Dataflow("historian")
    events, rejected = read_events(flow, "read", settings, EVENT_KINDS)
    table_rows = op.map("rows", events, rows.table_row)
    op.output(
        "store", table_rows, MultiUpsertSink(dsn, TABLES, batch_rows=settings.sink_batch_rows)
    )
    op.output("dead_letters", rejected, DeadLetterSink(settings, dsn))
    return flow
