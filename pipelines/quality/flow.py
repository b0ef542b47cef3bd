"""The quality flow: great-expectations suites over closed one-minute windows of every event topic
and, on a schedule, over the derived tables.

Run it with ``python -m pipelines.quality``. Wiring (step ids in brackets)::

    every event topic [read]   (our own partition: one Polled item per Kafka poll, each message
                                a frame row -- a contract event, or a refused message parsed
                                leniently -- with its ingest time and origin topic[p]@offset)
      + wall-clock ticks every TICK, with each kind's message count [tick] -> one per kind
      -> per kind [window]: rows into one-minute windows of ingest time; a window closes when
         the kind's ingest clock (the newest ingest time read on its partitions) passes its end
         + ASBUILT_DQ_GRACE_S, or on a tick after the kind's partitions read nothing for a whole
         tick interval and the wall clock is past end + grace (the last window of a quiet topic)
         -> on close: the polars frame (pipelines.quality.frames) -> GX suite events.<kind>
         -> WindowResults (dq_results), dq_asset_kind_minutes rows, dq alerts
      + table ticks every ASBUILT_DQ_TABLE_INTERVAL_S [table_tick] -> [tables]: the suites
         table.oee_minutes and table.downtime_events over each UTC hour of the table from the
         hour before the newest hour validated last time up to the newest hour (the first
         time: the newest FIRST_LOOKBACK, 24 h) -> WindowResults, dq alerts
      -> [write]: one transaction per batch: per window, DELETE its dq_results rows and insert
         the new ones (a re-validation replaces, a replay writes the same rows); likewise per
         window DELETE the kind's dq_asset_kind_minutes rows of the minute and insert the new
         ones, then recompute the touched dq_asset_minutes rows from them (a summary row with
         no kind row left is deleted: a replay that assigns rows differently leaves nothing
         behind)
      -> alerts table [write_alerts] and alerts topic [publish_alerts], as the downtime flow

Ingest time is the event's ``ingest_ts``; for a message the contract refused, the Kafka record
timestamp (its payload's times are what is in doubt); never more than MAX_INGEST_AHEAD after
this process's clock.

**An event for a window already closed** (a partition read late, a producer behind the others)
is never lost and never validated twice: it joins the oldest window of its kind still open, and
is validated and counted with it (``window_start`` = the window it was validated in; its own
ingest time is in the row's examples). Rows are taken one at a time in Kafka order, so how polls
cut the stream does not change which window a row joins -- with one partition per kind a replay
after a crash writes exactly the same rows. (With several partitions per kind, the interleaving
of partitions decides which events are late; both outcomes are valid.)

Why a tick closes a window only after a whole tick interval without input for its kind: while a
backlog is read (a restart, a back-fill) the data closes the windows; only a kind that has gone
quiet is closed by the wall clock.

At start: ``ASBUILT_DQ_MIN_COVERAGE`` into ``dq_settings`` (upsert). Metrics (the metrics file):
``dq_windows``, ``dq_validate_s`` (GX time, total), ``dq_validate_max_s``, ``dq_window_s`` (frame
+ GX + rows, total) and ``dq_rows_validated``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeAlias

import bytewax.operators as op
import msgspec
import psycopg
from bytewax.dataflow import Dataflow
from bytewax.inputs import SimplePollingSource
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import Message
from psycopg import sql
from psycopg.types.json import Jsonb

from asbuilt import db, topics
from asbuilt import events as ev
from asbuilt.settings import Settings
from pipelines.common.metrics import METRICS
from pipelines.common.runner import database_dsn
from pipelines.common.sink import DatabaseWriter, UpsertSink, _clean, connect
from pipelines.common.source import (
    EventSource,
    KafkaPartition,
    consumer_config,
    record_time,
)
from pipelines.downtime.alerts import Alert
from pipelines.downtime.flow import ALERT_COLUMNS, AlertTopicSink, alert_row
from pipelines.oee.flow import plant_of
from pipelines.quality.alerts import SuiteAlerts
from pipelines.quality.frames import (
    ASSET_KIND_COLUMNS,
    COMMON_FIELDS,
    KINDS,
    MAX_SKEW_AHEAD_S,
    Carry,
    Limits,
    asset_minute_rows,
    event_row,
    rejected_row,
    window_frame,
)
from pipelines.quality.gx import DQ_RESULT_COLUMNS, DqResult, Suite, validator
from pipelines.quality.suites import (
    DOWNTIME_TABLE_COLUMNS,
    OEE_TABLE_COLUMNS,
    TABLES,
    downtime_frame,
    event_suite,
    limits_of,
    oee_frame,
    table_suite,
)

logger = logging.getLogger(__name__)

NAME: Final = "quality"
TICK: Final = timedelta(seconds=5)
TICK_POLL: Final = timedelta(milliseconds=20)
WINDOW: Final = timedelta(minutes=1)
HOUR: Final = timedelta(hours=1)
MAX_INGEST_AHEAD: Final = timedelta(minutes=5)
"""An ingest time further ahead of this process's clock is windowed as now + this: one event
stamped in the year 2100 would otherwise move its kind's clock there and hold every later event
of the kind in one window that never closes."""
FIRST_LOOKBACK: Final = timedelta(hours=24)
"""How far back from a table's newest hour the first validation of a run reaches."""

_DECODE: Final = msgspec.json.Decoder(ev.Event).decode
_KIND_OF_TYPE: Final = {t: topics.topic_kind_for(t) for t in ev.EVENT_TYPES}

_INGEST: Final = [n for n, _ in COMMON_FIELDS].index("ingest_ts")

READ_COUNTS: dict[str, int] = dict.fromkeys(KINDS, 0)
"""Messages read per kind by this process (the ticks tell a quiet kind from a busy one)."""


# --- the source --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Polled:
    """One poll of one partition: ``(ingest time, frame row)`` per message, in offset order."""

    kind: str
    rows: list[tuple[datetime, tuple[Any, ...]]]


class _QualityPartition(KafkaPartition[Polled]):
    """A partition of an event topic as frame rows: events by the contract, every other
    message parsed leniently with the dead letter's reason (see pipelines.quality.frames)."""

    kind: str = ""

    def _decode(self, msgs: list[Message]) -> Polled:
        kind = self.kind
        prefix = f"{self._topic}[{self._part_idx}]@"
        rows: list[tuple[datetime, tuple[Any, ...]]] = []
        last_offset = None
        bad = 0
        for msg in msgs:
            if msg.error() is not None:
                if self._kafka_error(msg):
                    last_offset = msg.offset()
                continue
            offset = msg.offset()
            last_offset = offset
            origin = f"{prefix}{offset}"
            value = msg.value()
            try:
                event = _DECODE(value)  # type: ignore[arg-type]  # None: TypeError
            except (msgspec.DecodeError, TypeError, UnicodeError, RecursionError):
                event = None
            if (
                event is not None
                and event.schema_version <= ev.SCHEMA_VERSION
                and _KIND_OF_TYPE[type(event)] == kind
            ):
                row = event_row(kind, event, origin)
                if row[_INGEST] is not None:
                    rows.append((row[_INGEST], row))
                    continue
                # an ingest time with no UTC equivalent: windowed by the record time instead
                rows.append((record_time(msg.timestamp()) or datetime.now(UTC), row))
                continue
            bad += 1
            received = record_time(msg.timestamp()) or datetime.now(UTC)
            if event is not None and _KIND_OF_TYPE[type(event)] != kind:
                reason = f"a {_KIND_OF_TYPE[type(event)]} event on the {kind} topic"
            else:
                letter = ev.decode(value, origin, received)
                reason = letter.reason if isinstance(letter, ev.DeadLetter) else "refused"
            rows.append((received, rejected_row(kind, value, origin, reason)))
        if last_offset is not None:
            self._offset = last_offset + 1
        METRICS.items_in += len(rows) - bad
        METRICS.dead_letters += bad
        READ_COUNTS[kind] += len(rows)
        return Polled(kind, rows)


def quality_source(settings: Settings) -> EventSource[Polled]:
    """Every event topic (with the settings' prefix) as :class:`Polled` items."""
    kind_of = {topics.topic_name(k, settings.topic_prefix): k for k in KINDS}

    def partition(
        config: dict[str, Any], topic: str, idx: int, resume: int | None
    ) -> _QualityPartition:
        part = _QualityPartition(config, topic, idx, resume)
        part.kind = kind_of[topic]
        return part

    return EventSource(consumer_config(settings), list(kind_of), partition)


@dataclass(frozen=True, slots=True)
class Tick:
    """The wall clock and the messages read per kind so far (by this process)."""

    now: datetime
    counts: dict[str, int]


class Ticks(SimplePollingSource[Tick | None]):
    """A :class:`Tick` every ``interval`` (polled every :data:`TICK_POLL`, as the downtime
    flow's ticks: a slow input would hold back every step's epochs)."""

    def __init__(self, interval: timedelta) -> None:
        super().__init__(TICK_POLL)
        self._every = interval
        self._next: datetime | None = None

    def next_item(self) -> Tick | None:
        now = datetime.now(UTC)
        if self._next is not None and now < self._next:
            return None
        self._next = now + self._every
        return Tick(now, dict(READ_COUNTS))


# --- windows of one kind -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WindowResults:
    """The dq_results rows of one validated window (they replace the window's rows)."""

    suite: str
    window_start: datetime
    results: list[DqResult]


@dataclass(frozen=True, slots=True)
class AssetKindRows:
    """The ``dq_asset_kind_minutes`` rows of one window: they replace every row of the kind and
    minute (``kind``, ``ts``; empty ``rows``: the minute has none left). A ``kind`` of None:
    the rows are upserted only (their keys replaced, no other row of the minute removed)."""

    rows: list[tuple[Any, ...]]
    kind: str | None = None
    ts: datetime | None = None


Out: TypeAlias = "WindowResults | AssetKindRows | Alert"


def _floor(ts: datetime, step: timedelta) -> datetime:
    ts = ts.astimezone(UTC)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((ts - epoch) // step) * step


@dataclass
class KindState:
    """Bytewax state of one kind: open windows, clocks, carry, alerts (snapshotted)."""

    kind: str
    windows: dict[datetime, list[tuple[Any, ...]]] = field(default_factory=dict)
    clock: datetime | None = None  # newest ingest time read
    closed_until: datetime | None = None  # every window starting before this is closed
    carry: Carry = field(default_factory=Carry)
    alerts: SuiteAlerts | None = None
    last_count: int | None = None  # READ_COUNTS at the previous tick


def _timed_validate(suite: Suite, frame: Any, window: tuple[datetime, datetime]) -> list[DqResult]:
    t = time.perf_counter()
    results = validator().validate(suite, frame, window, datetime.now(UTC))
    spent = time.perf_counter() - t
    extra = METRICS.extra
    extra["dq_validations"] = extra.get("dq_validations", 0) + 1
    extra["dq_validate_s"] = round(extra.get("dq_validate_s", 0.0) + spent, 4)
    extra["dq_validate_max_s"] = round(max(extra.get("dq_validate_max_s", 0.0), spent), 4)
    extra["dq_rows_validated"] = extra.get("dq_rows_validated", 0) + frame.height
    return results


class WindowStep:
    """The per-kind mapper of ``stateful_flat_map`` (see the module docstring)."""

    def __init__(self, grace: timedelta, limits: Limits) -> None:
        self.grace = grace
        self.limits = limits

    def __call__(self, state: KindState | None, item: Polled | Tick) -> tuple[KindState, list[Out]]:
        if state is None:
            kind = item.kind if isinstance(item, Polled) else None
            if kind is None:
                return None, []  # type: ignore[return-value]  # no state before the first row
            state = KindState(kind, alerts=SuiteAlerts(event_suite(kind, self.limits).name))
        out: list[Out] = []
        if isinstance(item, Tick):
            count = item.counts.get(state.kind, 0)
            idle = state.last_count is not None and count == state.last_count
            state.last_count = count
            if idle:
                while state.windows:
                    start = min(state.windows)
                    if item.now < start + WINDOW + self.grace:
                        break
                    out += self.close(state, start)
            return state, out
        grace = self.grace
        windows = state.windows
        horizon = datetime.now(UTC) + MAX_INGEST_AHEAD
        for ingest, row in item.rows:
            if ingest > horizon:  # a producer's clock far ahead must not stall the kind
                ingest = horizon
            start = _floor(ingest, WINDOW)
            if state.closed_until is not None and start < state.closed_until:
                start = state.closed_until  # late: the oldest window still open
            bucket = windows.get(start)
            if bucket is None:
                windows[start] = [row]
            else:
                bucket.append(row)
            if state.clock is None or ingest > state.clock:
                state.clock = ingest
                while windows:
                    first = min(windows)
                    if first + WINDOW + grace >= state.clock:
                        break
                    out += self.close(state, first)
        return state, out

    def close(self, state: KindState, start: datetime) -> list[Out]:
        """Validate and forget the window starting at ``start`` (and mark everything before
        its end closed)."""
        METRICS.beat()  # a backlog closes many windows in one call: not a hung flow
        t = time.perf_counter()
        rows = state.windows.pop(start)
        end = start + WINDOW
        state.closed_until = end if state.closed_until is None else max(state.closed_until, end)
        frame, state.carry = window_frame(state.kind, rows, state.carry, self.limits)
        suite = event_suite(state.kind, self.limits)
        results = _timed_validate(suite, frame, (start, end))
        out: list[Out] = [WindowResults(suite.name, start, results)]
        minute_rows = asset_minute_rows(state.kind, frame, start)
        out.append(AssetKindRows(minute_rows, state.kind, start))  # even none: replaces
        assert state.alerts is not None
        out += state.alerts.on_window(start, end, results)
        failed = sorted({r.expectation for r in results if not r.success})
        if failed:
            logger.info("%s window %s: %d rows, failing: %s", suite.name, start.isoformat(),
                        frame.height, ", ".join(failed))  # fmt: skip
        extra = METRICS.extra
        extra["dq_windows"] = extra.get("dq_windows", 0) + 1
        extra["dq_window_s"] = round(extra.get("dq_window_s", 0.0) + time.perf_counter() - t, 4)
        return out


# --- table suites ------------------------------------------------------------------------------

_TABLE_QUERIES: Final = {
    "oee_minutes": (
        "ts",
        f"SELECT {', '.join(OEE_TABLE_COLUMNS)} FROM oee_minutes "
        "WHERE ts >= %s AND ts < %s ORDER BY asset, ts",
        oee_frame,
    ),
    "downtime_events": (
        "start_ts",
        f"SELECT {', '.join(DOWNTIME_TABLE_COLUMNS)} FROM downtime_events "
        "WHERE start_ts >= %s AND start_ts < %s ORDER BY asset, start_ts",
        downtime_frame,
    ),
}


@dataclass
class TableState:
    """Bytewax state of the table suites: the newest hour validated per table, alerts."""

    newest: dict[str, datetime] = field(default_factory=dict)
    alerts: dict[str, SuiteAlerts] = field(default_factory=dict)


class TableStep:
    """The mapper of the table suites (key ``"tables"``): on a tick, validate the hours due."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._conn: psycopg.Connection[Any] | None = None

    def __getstate__(self) -> dict[str, Any]:  # the step is not state; never pickle a socket
        return {"dsn": self.dsn, "_conn": None}

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.dsn)
        return self._conn

    def __call__(self, state: TableState | None, _tick: Tick) -> tuple[TableState, list[Out]]:
        state = state or TableState()
        out: list[Out] = []
        for name in TABLES:
            try:
                out += self.validate_table(state, name)
            except psycopg.OperationalError as exc:
                logger.warning("table suite %s skipped this time: %s", name, exc)
                self._conn = None
        return state, out

    def validate_table(self, state: TableState, name: str) -> list[Out]:
        column, query, build = _TABLE_QUERIES[name]
        conn = self._connection()
        newest = sql.SQL("SELECT max({}) FROM {}").format(
            sql.Identifier(column), sql.Identifier(name)
        )
        row = conn.execute(newest).fetchone()
        if row is None or row[0] is None:
            return []
        top = _floor(row[0], HOUR)
        first = state.newest[name] - HOUR if name in state.newest else top - FIRST_LOOKBACK
        suite = table_suite(name)
        alerts = state.alerts.setdefault(suite.name, SuiteAlerts(suite.name))
        out: list[Out] = []
        hour = first
        while hour <= top:
            METRICS.beat()
            rows = conn.execute(query, (hour, hour + HOUR)).fetchall()
            if rows:
                results = _timed_validate(suite, build(rows), (hour, hour + HOUR))
                out.append(WindowResults(suite.name, hour, results))
                out += alerts.on_window(hour, hour + HOUR, results)
            hour += HOUR
        state.newest[name] = top
        return out


# --- the sink ----------------------------------------------------------------------------------


def result_row(r: DqResult, sanitised: bool = False) -> tuple[Any, ...]:
    """A ``dq_results`` row (columns of :data:`DQ_RESULT_COLUMNS`), jsonb columns wrapped.

    ``sanitised``: every NUL in a text or inside the jsonb values (keys too) written as
    ``\\x00``, as the other sinks do -- PostgreSQL stores no NUL, and a refused message's
    asset or example value may hold one (the retry of :class:`DatabaseWriter` asks for this)."""
    if sanitised:
        r = DqResult(*_clean(r.row()))
    return (
        r.window_start, r.window_end, r.suite, r.expectation, r.asset, r.success,
        r.element_count, r.unexpected_count,
        None if r.observed_value is None else Jsonb(r.observed_value),
        Jsonb(r.examples), r.expectation_type, Jsonb(r.kwargs), r.validated_at,
    )  # fmt: skip


_SUMMARY_SQL: Final = """
INSERT INTO dq_asset_minutes (ts, asset, events, rejected, pv_good, pv_uncertain, pv_bad,
                              skew_s_min, skew_s_p50, skew_s_max, last_ts, last_ingest_ts)
SELECT ts, asset, sum(events), sum(rejected), sum(pv_good), sum(pv_uncertain), sum(pv_bad),
       min(skew_s_min), percentile_cont(0.5) WITHIN GROUP (ORDER BY skew_s_p50),
       max(skew_s_max), max(last_ts), max(last_ingest_ts)
FROM dq_asset_kind_minutes
WHERE (asset, ts) IN (SELECT * FROM unnest(%s::text[], %s::timestamptz[]))
GROUP BY ts, asset
ON CONFLICT (asset, ts) DO UPDATE SET
    events = EXCLUDED.events, rejected = EXCLUDED.rejected, pv_good = EXCLUDED.pv_good,
    pv_uncertain = EXCLUDED.pv_uncertain, pv_bad = EXCLUDED.pv_bad,
    skew_s_min = EXCLUDED.skew_s_min, skew_s_p50 = EXCLUDED.skew_s_p50,
    skew_s_max = EXCLUDED.skew_s_max, last_ts = EXCLUDED.last_ts,
    last_ingest_ts = EXCLUDED.last_ingest_ts
"""


_DELETE_KIND_MINUTES_SQL: Final = """
DELETE FROM dq_asset_kind_minutes
WHERE (kind, ts) IN (SELECT * FROM unnest(%s::text[], %s::timestamptz[]))
RETURNING asset, ts
"""
"""Every row of the (kind, minute) pairs a batch replaces: a replay may assign rows to other
minutes (or none to an asset), and what it no longer writes must not stay behind."""

_DELETE_EMPTY_SUMMARY_SQL: Final = """
DELETE FROM dq_asset_minutes m
WHERE (m.asset, m.ts) IN (SELECT * FROM unnest(%s::text[], %s::timestamptz[]))
  AND NOT EXISTS (SELECT 1 FROM dq_asset_kind_minutes k WHERE k.asset = m.asset AND k.ts = m.ts)
"""
"""A summary row whose every kind row is gone (see :data:`_DELETE_KIND_MINUTES_SQL`)."""

_KEY: Final = ("suite", "expectation", "asset", "window_start")
_UPDATE: Final = DQ_RESULT_COLUMNS[5:]


def write_quality(
    conn: db.Conn, items: Iterable[WindowResults | AssetKindRows], sanitised: bool = False
) -> int:
    """Write a batch in the caller's transaction (see the module docstring); rows written.

    ``sanitised``: NUL characters replaced in every value (see :func:`result_row`)."""
    n = 0
    kind_rows: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    replaced: dict[tuple[str, datetime], list[tuple[Any, ...]]] = {}
    with conn.cursor() as cur:
        for item in items:
            if isinstance(item, WindowResults):
                cur.execute(
                    "DELETE FROM dq_results WHERE suite = %s AND window_start = %s",
                    (_clean(item.suite) if sanitised else item.suite, item.window_start),
                )
                rows = [result_row(r, sanitised) for r in item.results]
                db.copy_upsert(conn, "dq_results", DQ_RESULT_COLUMNS, rows, _KEY, _UPDATE)
                n += len(rows)
            else:
                rows = [_clean(r) for r in item.rows] if sanitised else item.rows
                if item.kind is not None and item.ts is not None:
                    replaced[(item.kind, item.ts)] = rows  # a later close of the minute wins
                    continue
                for r in rows:
                    kind_rows[(r[0], r[1], r[2])] = r
    touched: set[tuple[str, datetime]] = set()
    if replaced:
        kinds = [k for k, _ in replaced]
        minutes = [t for _, t in replaced]
        gone = conn.execute(_DELETE_KIND_MINUTES_SQL, (kinds, minutes)).fetchall()
        touched.update((a, t) for a, t in gone)
        for (kind, ts), rows in replaced.items():
            for key in [k for k in kind_rows if (k[2], k[0]) == (kind, ts)]:
                del kind_rows[key]
            for r in rows:
                kind_rows[(r[0], r[1], r[2])] = r
    if kind_rows:
        rows = list(kind_rows.values())
        db.copy_upsert(
            conn, "dq_asset_kind_minutes", ASSET_KIND_COLUMNS, rows, ("asset", "kind", "ts"),
            ASSET_KIND_COLUMNS[3:],
        )  # fmt: skip
        touched.update((r[1], r[0]) for r in rows)
        n += len(rows)
    if touched:
        keys = sorted(touched)
        params = ([a for a, _ in keys], [t for _, t in keys])
        conn.execute(_SUMMARY_SQL, params)
        conn.execute(_DELETE_EMPTY_SUMMARY_SQL, params)
    return n


class _QualityPartition_(StatelessSinkPartition[Any]):
    def __init__(self, dsn: str) -> None:
        self.writer = DatabaseWriter(dsn, "dq_results,dq_asset_minutes")

    def write_batch(self, items: list[Any]) -> None:
        written: list[int] = []

        def work(conn: db.Conn, sanitised: bool) -> None:
            written.append(write_quality(conn, items, sanitised))

        self.writer.write(work, lambda: items[0])
        METRICS.rows_out += written[-1] if written else 0
        METRICS.last_write_ts = datetime.now(UTC)

    def close(self) -> None:
        self.writer.close()


class QualitySink(DynamicSink[Any]):
    """:class:`WindowResults` and :class:`AssetKindRows` into TimescaleDB, one transaction per
    batch, retried by :class:`~pipelines.common.sink.DatabaseWriter`."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _QualityPartition_:
        return _QualityPartition_(self.dsn)


def write_settings(dsn: str, settings: Settings) -> None:
    """``ASBUILT_DQ_MIN_COVERAGE`` into ``dq_settings`` (retried as the sinks do)."""

    def work(conn: db.Conn, _sanitised: bool) -> None:
        conn.execute(
            "INSERT INTO dq_settings (name, value, description) VALUES (%s, %s, %s) "
            "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            (
                "oee_min_coverage",
                settings.dq_min_coverage,
                "an OEE figure whose data coverage is below this is not trustworthy",
            ),
        )

    writer = DatabaseWriter(dsn, "dq_settings")
    try:
        writer.write(work, settings.dq_min_coverage)
    finally:
        writer.close()


def quality_alert_row(a: Alert) -> tuple[Any, ...]:
    """:func:`~pipelines.downtime.flow.alert_row` with every NUL in the evidence written as
    ``\\x00``: the alerts sink's sanitised retry cleans text columns but cannot look inside a
    jsonb value, and a dq alert's evidence quotes refused messages (examples)."""
    row = alert_row(a)
    return (*row[:9], Jsonb(_clean(a.evidence)), *row[10:])


# --- the flow ----------------------------------------------------------------------------------


def _is(kind: type) -> Callable[[Any], bool]:
    return lambda x: isinstance(x, kind)


def build_flow(settings: Settings, tick: timedelta = TICK) -> Dataflow:
    """The quality dataflow for ``settings`` (see the module docstring)."""
    dsn = database_dsn(settings)
    # as the stack tells the connector: accelerated simulated time runs ahead of the wall clock
    simulated = settings.opcua_endpoint is None and settings.sim_speed > 1
    limits = limits_of(plant_of(settings), max_ahead_s=None if simulated else MAX_SKEW_AHEAD_S)
    grace = timedelta(seconds=settings.dq_grace_s)
    validator()  # GX imported and its context made before the flow runs (seconds)
    write_settings(dsn, settings)
    METRICS.beat()
    logger.info(
        "quality: %d kinds, grace %.0f s, tables every %.0f s, %d instrument ranges, source "
        "times ahead of ingest: %s",
        len(KINDS), settings.dq_grace_s, settings.dq_table_interval_s, len(limits.signals),
        "no limit (accelerated simulator)" if limits.max_ahead_s is None
        else f"up to {limits.max_ahead_s:.0f} s",
    )  # fmt: skip

    flow = Dataflow(NAME)
    polled = op.input("read", flow, quality_source(settings))
    keyed = op.map("by_kind", polled, lambda p: (p.kind, p))
    ticks = op.input("tick", flow, Ticks(tick))
    kind_ticks = op.flat_map("tick_kinds", ticks, lambda t: [(k, t) for k in KINDS])
    window_in = op.merge("window_in", keyed, kind_ticks)
    step: Any = WindowStep(grace, limits)  # Bytewax's types say Tick | None: None never comes
    window_out = op.stateful_flat_map("window", window_in, step)

    table_ticks = op.input(
        "table_tick", flow, Ticks(timedelta(seconds=settings.dq_table_interval_s))
    )
    tables_in = op.key_on("one_table_step", table_ticks, lambda _t: "tables")
    table_step: Any = TableStep(dsn)
    tables_out = op.stateful_flat_map("tables", tables_in, table_step)

    outs = op.map("unkey", op.merge("outs", window_out, tables_out), lambda kv: kv[1])
    rows = op.filter("rows", outs, lambda x: not isinstance(x, Alert))
    op.output("write", rows, QualitySink(dsn))
    alerts: Any = op.filter("alerts", outs, _is(Alert))
    op.output(
        "write_alerts",
        op.map("alert_rows", alerts, quality_alert_row),
        UpsertSink(dsn, "alerts", ALERT_COLUMNS, ("alert_id",), update=ALERT_COLUMNS[1:]),
    )
    op.output("publish_alerts", alerts, AlertTopicSink(settings))
    return flow
