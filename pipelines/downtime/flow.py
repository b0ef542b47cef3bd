"""The downtime flow: events -> timeline -> downtime events and alerts.

Run it with ``python -m pipelines.downtime``.

Wiring (one Bytewax dataflow; step ids in brackets)::

    states, counters, process values [read]      (one item per Kafka poll)
      -> the poll's events grouped by asset [group]  (as the OEE flow: batches, not items)
      -> per asset [asset]: the OEE timeline (pipelines.accounting.timeline) turns events into
         segments and minute rows; the DowntimeTracker turns segments into Replacements of
         downtime rows; a small activity summary per asset (for silent/stale)
      -> Replacements -> downtime_events [write_downtime]: per replacement, DELETE the asset's
         rows whose start lies in [first, last] and INSERT the recomputed ones, all in one
         transaction (deterministic and idempotent: a replay writes the same rows)
      -> alert inputs (replacements, minute rows, summaries) + clock ticks [tick]
         -> one alert engine for all assets [alerts] -> Alert records
         -> alerts table [write_alerts] (upsert on alert_id; every column but acked_by and
            acked_at, which belong to the people who acknowledge)
         -> alerts topic [publish_alerts] (asbuilt.v1.alerts with ASBUILT_TOPIC_PREFIX, keyed
            by asset, JSON of :class:`~pipelines.downtime.alerts.Alert`)

Delivery: Bytewax recovery replays at most one snapshot interval after a crash, so the table and
the topic are at-least-once. The table absorbs it (same alert_id, same revision: same row);
consumers of the topic deduplicate on ``(alert_id, revision)`` -- a higher revision supersedes
a lower one of the same alert_id. (Evidence that grows on clock ticks -- a running stop's
minutes -- may be revised at other moments in a replay; the final record is the same.)

Messages that are not valid events are the historian's to dead-letter (it reads the same topics);
events too late to correct are the OEE flow's; the plant's ``assets`` rows are written by the OEE
flow. This flow writes ``downtime_events`` and ``alerts`` only.

The tick input (:class:`Ticks`, every :data:`TICK` of wall-clock time) lets the ``silent`` rule
fire when an asset sends nothing at all, and advances long stops of machines that went quiet.

The per-asset activity summaries (for silent, stale and the alert engine's event clock) are
sampled: an event is summarised when :data:`SUMMARY_EVERY` of ingest time or
:data:`SUMMARY_EVERY_EVENT_TIME` of event time (a replay or back-fill moves event time fast) has
passed since the last summarised event; each summary carries the ingest time of the asset's
event before it, so silences are measured exactly. The single alert engine thus sees a few items
per asset and second whatever the event rate; its clocks lag the events by at most those
intervals.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeAlias

import bytewax.operators as op
import msgspec
from bytewax.dataflow import Dataflow
from bytewax.inputs import SimplePollingSource
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import Producer
from psycopg.types.json import Jsonb

from asbuilt import db, kafka, topics
from asbuilt.events import Event, StateChange
from asbuilt.settings import Settings
from pipelines.accounting.model import MinuteRow, Segment
from pipelines.accounting.timeline import AssetTimeline, SegmentGone, TimelineConfig
from pipelines.common.metrics import METRICS
from pipelines.common.runner import database_dsn
from pipelines.common.sink import FIRST_BACKOFF_S, MAX_BACKOFF_S, DatabaseWriter, UpsertSink
from pipelines.common.source import source
from pipelines.common.state import Kept
from pipelines.downtime.alerts import Alert, AlertEngine, BatchSummary, load_rules
from pipelines.downtime.downtime import Downtime, DowntimeTracker, Replacement
from pipelines.oee.flow import group, plant_of, timeline_config

logger = logging.getLogger(__name__)

NAME: Final = "downtime"
TICK: Final = timedelta(seconds=5)
TICK_POLL: Final = timedelta(milliseconds=20)
SUMMARY_EVERY: Final = timedelta(seconds=5)
SUMMARY_EVERY_EVENT_TIME: Final = timedelta(seconds=10)
KINDS: Final = ("states", "counters", "process_values")

DOWNTIME_COLUMNS: Final = (
    "asset", "start_ts", "end_ts", "state", "mode", "stop_reason", "category", "loss", "shift",
    "updated_ts",
)  # fmt: skip
ALERT_COLUMNS: Final = (
    "alert_id", "rule", "asset", "raised_ts", "updated_ts", "cleared_ts", "status", "severity",
    "message", "evidence", "revision",
)  # fmt: skip

AlertInput: TypeAlias = "BatchSummary | Replacement | list[MinuteRow] | Tick"


# --- per asset -------------------------------------------------------------------------------


@dataclass
class AssetState:
    """Bytewax state of one asset: its timeline, its downtimes, the last summary sent (held in
    a :class:`~pipelines.common.state.Kept`: snapshotted as one pickle)."""

    timeline: AssetTimeline
    tracker: DowntimeTracker
    summarised: tuple[datetime, datetime | None] | None = None  # (ingest, clock) last sent
    frontier: datetime | None = None  # newest ingest time of a state change read
    clock: tuple[datetime, datetime] | None = None  # newest consistent (ts, ingest)
    previous_ingest: datetime | None = None  # of the event before this one


def asset_step(cfg: TimelineConfig, minor_stop_s: float) -> Any:
    """The per-asset mapper of ``stateful_flat_map``: the asset's events of one poll in,
    downtime replacements and alert inputs out (events taken one by one inside, so the result
    does not depend on how polls cut the stream)."""

    def step(
        kept: Kept[AssetState] | None, events: list[Event]
    ) -> tuple[Kept[AssetState], list[Any]]:
        if kept is None:
            kept = Kept(AssetState(AssetTimeline(events[0].asset), DowntimeTracker(minor_stop_s)))
        state = kept.value
        out: list[Any] = []
        minutes: list[MinuteRow] = []
        timeline, tracker = state.timeline, state.tracker
        for event in events:
            outputs = timeline.push(event, cfg)
            if outputs:
                segments = [o for o in outputs if isinstance(o, Segment)]
                gone = [o.start for o in outputs if isinstance(o, SegmentGone)]
                minutes += [o for o in outputs if isinstance(o, MinuteRow)]
                change = tracker.apply(segments, event.ingest_ts, gone, asset=event.asset)
                if change is not None:
                    out.append(change)
            # the consistent clock: state changes, and events ingested before the newest
            # state change read (see pipelines/downtime/alerts.py, Clocks)
            ingest = event.ingest_ts
            if isinstance(event, StateChange):
                if state.frontier is None or ingest > state.frontier:
                    state.frontier = ingest
                consistent = True
            else:
                consistent = state.frontier is not None and ingest <= state.frontier
            if consistent and (state.clock is None or event.ts > state.clock[0]):
                state.clock = (event.ts, ingest)
            # activity summary (sampled): when ingest or the clock moved on far enough
            last = state.summarised
            clock_ts = state.clock[0] if state.clock is not None else None
            if (
                last is None
                or ingest - last[0] >= SUMMARY_EVERY
                or (
                    clock_ts is not None
                    and (last[1] is None or clock_ts - last[1] >= SUMMARY_EVERY_EVENT_TIME)
                )
            ):
                state.summarised = (ingest, clock_ts)
                out.append(
                    BatchSummary(
                        asset=event.asset,
                        first_ingest=ingest,
                        last_ingest=ingest,
                        last_lag_s=(ingest - event.ts).total_seconds(),
                        clock_ts=clock_ts,
                        clock_ingest=state.clock[1] if state.clock is not None else None,
                        previous_ingest=state.previous_ingest,
                    )
                )
            state.previous_ingest = ingest
        if minutes:
            out.append(minutes)
        return kept, out

    return step


# --- alerts ----------------------------------------------------------------------------------


def alert_step(engine_factory: Any) -> Any:
    """The mapper of the single alert engine (key ``"alerts"``)."""

    def step(engine: AlertEngine | None, item: AlertInput) -> tuple[AlertEngine, list[Alert]]:
        if engine is None:
            engine = engine_factory()
        if isinstance(item, Tick):
            return engine, engine.on_tick(item.now, item.source_idle)
        if isinstance(item, BatchSummary):
            return engine, engine.on_batch(item)
        if isinstance(item, Replacement):
            return engine, engine.on_downtimes(item.asset, item.rows, item.first, item.last)
        return engine, engine.on_minutes(item)

    return step


@dataclass(frozen=True, slots=True)
class Tick:
    """The wall clock, and whether the flow's source read nothing since the previous tick."""

    now: datetime
    source_idle: bool


class Ticks(SimplePollingSource[Tick | None]):
    """A :class:`Tick` every ``interval``; ``source_idle`` from the flow's items-in counter.

    The source is polled every :data:`TICK_POLL` and emits nothing in between: an input that
    sleeps for seconds holds back the progress (epochs) of every step downstream of it.
    Measured (300k events, 15 assets, one partition per topic): a 5 s poll throttled the flow
    to ~2k events/s; 100 ms gave 26k, 20 ms 33k -- the same as without the tick input.
    """

    def __init__(self, interval: timedelta) -> None:
        super().__init__(TICK_POLL)
        self._every = interval
        self._next: datetime | None = None
        self._seen = -1

    def next_item(self) -> Tick | None:
        now = datetime.now(UTC)
        if self._next is not None and now < self._next:
            return None
        self._next = now + self._every
        seen = METRICS.items_in
        idle, self._seen = seen == self._seen, seen
        return Tick(now, idle)


def alert_row(a: Alert) -> tuple[Any, ...]:
    """The ``alerts`` row of an alert (columns of :data:`ALERT_COLUMNS`)."""
    return (
        a.alert_id, a.rule, a.asset, a.raised_ts, a.updated_ts, a.cleared_ts, a.status,
        a.severity, a.message, Jsonb(a.evidence), a.revision,
    )  # fmt: skip


def downtime_row(d: Downtime) -> tuple[Any, ...]:
    return (
        d.asset, d.start, d.end, d.state, d.mode, d.stop_reason, d.category, d.loss, d.shift,
        d.updated_ts,
    )  # fmt: skip


# --- sinks -----------------------------------------------------------------------------------


def apply_replacements(conn: db.Conn, items: Iterable[Replacement]) -> int:
    """Apply replacements in order in the caller's transaction; return rows inserted."""
    cols = ", ".join(DOWNTIME_COLUMNS)
    marks = ", ".join(["%s"] * len(DOWNTIME_COLUMNS))
    n = 0
    with conn.cursor() as cur:
        for r in items:
            cur.execute(
                "DELETE FROM downtime_events WHERE asset = %s AND start_ts BETWEEN %s AND %s",
                (r.asset, r.first, r.last),
            )
            if r.rows:
                cur.executemany(
                    f"INSERT INTO downtime_events ({cols}) VALUES ({marks})",
                    [downtime_row(d) for d in r.rows],
                )
                n += len(r.rows)
    return n


class _ReplacePartition(StatelessSinkPartition[Replacement]):
    def __init__(self, dsn: str) -> None:
        self.writer = DatabaseWriter(dsn, "downtime_events")

    def write_batch(self, items: list[Replacement]) -> None:
        def work(conn: db.Conn, sanitised: bool) -> None:
            apply_replacements(conn, items)

        self.writer.write(work, lambda: items[0])
        METRICS.rows_out += sum(len(r.rows) for r in items)
        METRICS.last_write_ts = datetime.now(UTC)

    def close(self) -> None:
        self.writer.close()


class ReplacementSink(DynamicSink[Replacement]):
    """Downtime replacements into ``downtime_events`` (delete range + insert, one transaction
    per batch; retried by :class:`~pipelines.common.sink.DatabaseWriter`)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _ReplacePartition:
        return _ReplacePartition(self.dsn)


_ENCODE: Final = msgspec.json.Encoder().encode


class _AlertTopicPartition(StatelessSinkPartition[Alert]):
    def __init__(self, sink: AlertTopicSink) -> None:
        self.sink = sink
        self.producer = Producer(kafka.producer_config(sink.kafka))

    def write_batch(self, items: list[Alert]) -> None:
        for a in items:
            self.producer.produce(self.sink.topic, _ENCODE(a), key=a.asset.encode())
        backoff = FIRST_BACKOFF_S
        while (left := self.producer.flush(backoff)) > 0:  # acknowledged before the snapshot
            METRICS.beat()
            logger.warning(
                "%d alert(s) not yet acknowledged by Kafka (topic %s)", left, self.sink.topic
            )
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    def close(self) -> None:
        self.producer.flush(10)


class AlertTopicSink(DynamicSink[Alert]):
    """Alerts onto the alerts topic, keyed by asset; flushed per batch (at-least-once)."""

    def __init__(self, settings: Settings) -> None:
        self.kafka = settings.kafka
        self.topic = topics.topic_name("alerts", settings.topic_prefix)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _AlertTopicPartition:
        return _AlertTopicPartition(self)


# --- the flow --------------------------------------------------------------------------------


def build_flow(settings: Settings, tick: timedelta = TICK) -> Dataflow:
    """The downtime-and-alerts dataflow (see the module docstring)."""
    dsn = database_dsn(settings)
    cfg = timeline_config(settings, plant_of(settings))
    rules = load_rules(settings.alert_rules)
    logger.info("downtime: %d alert rule(s): %s", len(rules), ", ".join(r.name for r in rules))

    flow = Dataflow(NAME)
    # bad messages are the historian's (it dead-letters them once); too-late events the OEE flow's
    decoded = op.input("read", flow, source(settings, KINDS, align_s=settings.oee_lateness_s / 2))
    batches = op.flat_map("group", decoded, group)
    outs = op.stateful_flat_map("asset", batches, asset_step(cfg, settings.minor_stop_s))
    items = op.map("unkey", outs, lambda kv: kv[1])
    changes = op.filter("replacements", items, lambda x: isinstance(x, Replacement))
    op.output("write_downtime", changes, ReplacementSink(dsn))

    ticks = op.input("tick", flow, Ticks(tick))
    alert_in = op.merge("alert_inputs", items, ticks)
    engine_keyed = op.key_on("one_engine", alert_in, lambda _x: "alerts")
    keyed_alerts = op.stateful_flat_map(
        "alerts", engine_keyed, alert_step(lambda: AlertEngine(rules, settle=tick))
    )
    alerts = op.map("alerts_unkey", keyed_alerts, lambda kv: kv[1])
    op.output(
        "write_alerts",
        op.map("alert_rows", alerts, alert_row),
        UpsertSink(dsn, "alerts", ALERT_COLUMNS, ("alert_id",), update=ALERT_COLUMNS[1:]),
    )
    op.output("publish_alerts", alerts, AlertTopicSink(settings))
    return flow
