"""The OEE flow: states, counters and process values → one-minute ISO 22400 rows per asset.

Run it with ``python -m pipelines.oee``. Wiring (step ids in brackets)::

    states, counters, process_values topics [read]       (Decoded: one item per Kafka poll;
         partitions aligned within half the lateness of record time, so a backlog is read in
         step across the topics: pipelines.common.source)
      -> per poll, the events grouped by asset [group]    (asset, [events]) -- batches, not items
      -> per asset [timeline]: pipelines.accounting.timeline.AssetTimeline (Bytewax state,
         snapshotted as one pickle: pipelines.common.state.Kept) -> MinuteRow (new, or
         corrected with revision + 1) and TooLate
      -> ("oee_minutes", row) / ("dead_letters", row) [rows]
      -> gathered for up to GATHER_WAIT or ASBUILT_SINK_BATCH_ROWS rows [gather, batch]
      -> one transaction per batch [write]: COPY-upsert oee_minutes (every non-key column is
         updated: a correction overwrites), dead letters for events too late to correct, then
         in the same transaction: refresh_oee_rollups(assets, from, to) over the span written,
         the shift instances of that span into ``shifts`` (ON CONFLICT DO NOTHING).
    At start (before the flow runs): the plant model's ``assets`` (upsert).

Why grouping per poll: Bytewax pays about a microsecond per item and step; the timeline of an
asset takes the events of one poll in one call, so the per-item cost is paid per (poll, asset)
instead of per event. The result does not depend on how polls cut the stream (the timeline
takes events one by one inside), so a replay after a crash writes identical rows.

Messages that are not valid events are left to the historian, which reads the same topics and
records them as dead letters once (this flow would only write them twice).

Settings: ``ASBUILT_OEE_LATENESS_S`` (how long a minute waits for late events),
``ASBUILT_OEE_CORRECTION_HORIZON_H`` (how far back a late event still corrects),
``ASBUILT_LOSS_MAPPING`` (the state → category mapping), ``ASBUILT_PLANT_MODEL`` (assets, ideal
cycle times, the shift calendar).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from asbuilt import db
from asbuilt.events import DEAD_LETTER_PAYLOAD_LIMIT, Event, new_dead_letter
from asbuilt.plant import PlantModel, default_plant, load_plant
from asbuilt.settings import Settings
from pipelines.accounting.mapping import load_mapping
from pipelines.accounting.model import CATEGORIES, MinuteRow
from pipelines.accounting.schedule import Schedule
from pipelines.accounting.timeline import AssetTimeline, TimelineConfig, TooLate
from pipelines.common.gather import gather
from pipelines.common.runner import database_dsn
from pipelines.common.sink import DEAD_LETTERS, DatabaseWriter, MultiUpsertSink, Row, Table
from pipelines.common.source import Decoded, source
from pipelines.common.state import Kept

logger = logging.getLogger(__name__)

NAME: Final = "oee"
KINDS: Final = ("states", "counters", "process_values")
GATHER_WAIT: Final = timedelta(seconds=1)
"""How long rows wait to be written together: every write is one transaction with the roll-up
refresh (~30-70 ms whatever its size), so while a backlog is read, writing each poll's few rows
on its own would spend most of the time in transactions (measured: 294 writes of 51 rows for 1 M
events; a write every 250 ms: 95k events/s). At most this much is added to the latency of a row
(target: window close -> row visible p99 < 2 s)."""

OEE_COLUMNS: Final = (
    "ts",
    "asset",
    *(f"{c}_s" for c in CATEGORIES),
    "processed",
    "defective",
    "rework",
    "ideal_cycle_s",
    "shift",
    "shift_start",
    "mapping_version",
    "revision",
    "corrected_at",
)
OEE_MINUTES: Final = Table("oee_minutes", OEE_COLUMNS, ("asset", "ts"), OEE_COLUMNS[2:])
TOO_LATE: Final = Table(DEAD_LETTERS.name, DEAD_LETTERS.columns, DEAD_LETTERS.key)

ASSET_COLUMNS: Final = ("asset", "site", "area", "line", "ideal_cycle_s", "count_unit", "timezone")


# --- configuration -----------------------------------------------------------------------------


def plant_of(settings: Settings) -> PlantModel:
    """The plant model of the settings (``ASBUILT_PLANT_MODEL``, else the bundled one)."""
    return default_plant() if settings.plant_model is None else load_plant(settings.plant_model)


def timeline_config(settings: Settings, plant: PlantModel) -> TimelineConfig:
    """The timeline's shared, read-only configuration (the same as the downtime flow's)."""
    return TimelineConfig(
        mapping=load_mapping(settings.loss_mapping),
        schedule=Schedule(plant.calendar),
        lateness_s=settings.oee_lateness_s,
        horizon_s=max(settings.oee_correction_horizon_h * 3600.0, settings.oee_lateness_s),
        ideal_cycle_s={path: a.ideal_cycle_s for path, a in plant.assets.items()},
    )


def asset_rows(plant: PlantModel) -> list[tuple[Any, ...]]:
    """The ``assets`` rows of the plant model: ISA-95 paths, PRU, count unit, time zone."""
    out = []
    for path, asset in plant.assets.items():
        parts = path.split("/")
        out.append(
            (
                path,
                "/".join(parts[:2]),
                "/".join(parts[:3]) if len(parts) >= 3 else None,
                "/".join(parts[:4]) if len(parts) >= 4 else None,
                asset.ideal_cycle_s,
                asset.count_unit,
                plant.calendar.timezone,
            )
        )
    return out


# --- pure steps --------------------------------------------------------------------------------


def group(item: Decoded) -> list[tuple[str, list[Event]]]:
    """The events of one poll grouped by asset, each group in arrival (offset) order."""
    groups: dict[str, list[Event]] = {}
    for event in item.events:
        bucket = groups.get(event.asset)
        if bucket is None:
            groups[event.asset] = [event]
        else:
            bucket.append(event)
    return list(groups.items())


def minute_row(row: MinuteRow) -> tuple[Any, ...]:
    """An ``oee_minutes`` row (columns of :data:`OEE_COLUMNS`)."""
    s = row.seconds
    return (
        row.ts,
        row.asset,
        *(s[c] for c in CATEGORIES),
        row.processed,
        row.defective,
        row.rework,
        row.ideal_cycle_s,
        row.shift,
        row.shift_start,
        row.mapping_version,
        row.revision,
        row.corrected_at,
    )


def too_late_row(late: TooLate) -> tuple[Any, ...]:
    """A ``dead_letters`` row saying that an event came too late to be accounted in OEE."""
    payload = json.dumps(
        {
            "asset": late.asset,
            "kind": late.kind,
            "event_id": late.event_id,
            "ts": late.ts.isoformat(),
            "ingest_ts": late.ingest_ts.isoformat(),
        }
    ).encode()
    letter = new_dead_letter(
        reason=f"oee: {late.reason}",
        origin=f"oee/{late.asset}/{late.event_id}",
        payload=payload,
        received_ts=late.ingest_ts,
    )
    return (
        letter.received_ts,
        letter.event_id,
        letter.origin,
        letter.reason,
        letter.payload[:DEAD_LETTER_PAYLOAD_LIMIT],
        letter.payload_size,
        letter.payload_truncated,
        letter.schema_version,
        None,
        None,
        None,
    )


def timeline_step(cfg: TimelineConfig) -> Any:
    """The per-asset mapper of ``stateful_flat_map``: a batch of events in, table rows out."""

    def step(
        state: Kept[AssetTimeline] | None, events: list[Event]
    ) -> tuple[Kept[AssetTimeline], list[tuple[str, Row]]]:
        if state is None:
            state = Kept(AssetTimeline(events[0].asset))
        out: list[tuple[str, Row]] = []
        for o in state.value.push_many(events, cfg):
            if isinstance(o, MinuteRow):
                out.append((OEE_MINUTES.name, minute_row(o)))
            elif isinstance(o, TooLate):
                logger.warning("asset=%s event %s: %s", o.asset, o.event_id, o.reason)
                out.append((TOO_LATE.name, too_late_row(o)))
        return state, out

    return step


# --- the sink's after hook ---------------------------------------------------------------------


def _multirange(breaks: tuple[tuple[datetime, datetime], ...]) -> str:
    return "{" + ",".join(f'["{a.isoformat()}","{b.isoformat()}")' for a, b in breaks) + "}"


class AfterWrite:
    """Runs in the write's transaction: the roll-ups and the shift instances of the span."""

    def __init__(self, plant: PlantModel, schedule: Schedule) -> None:
        self.schedule = schedule
        self.site = f"{plant.enterprise}/{plant.site}"

    def __call__(self, conn: db.Conn, rows_by_table: Mapping[str, list[Row]]) -> None:
        rows = rows_by_table.get(OEE_MINUTES.name)
        if not rows:
            return
        first = min(r[0] for r in rows)
        last = max(r[0] for r in rows) + timedelta(minutes=1)
        assets = sorted({r[1] for r in rows})
        instances = self.schedule.instances(first, last, self.site)
        if instances:  # a handful per batch; a repeat is a no-op (and so is a retried batch)
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO shifts (site, shift, start_ts, end_ts, breaks) "
                    "VALUES (%s, %s, %s, %s, %s::tstzmultirange) ON CONFLICT DO NOTHING",
                    [(i.site, i.shift, i.start, i.end, _multirange(i.breaks)) for i in instances],
                )
        conn.execute("SELECT refresh_oee_rollups(%s, %s, %s)", (assets, first, last))


def write_assets(dsn: str, plant: PlantModel) -> None:
    """Upsert the plant model's ``assets`` (master data the views join), retrying while the
    database is unreachable (as the sinks do)."""
    rows = asset_rows(plant)

    def work(conn: db.Conn, _sanitised: bool) -> None:
        db.copy_upsert(conn, "assets", ASSET_COLUMNS, rows, ("asset",), ASSET_COLUMNS[1:])

    writer = DatabaseWriter(dsn, "assets")
    try:
        writer.write(work, rows[0] if rows else None)
    finally:
        writer.close()


# --- the flow ----------------------------------------------------------------------------------


def build_flow(settings: Settings) -> Dataflow:
    """The OEE dataflow for ``settings`` (see the module docstring)."""
    dsn = database_dsn(settings)
    plant = plant_of(settings)
    cfg = timeline_config(settings, plant)
    logger.info(
        "oee: %d assets, mapping %s (version %s), lateness %.0f s, correction horizon %.0f s",
        len(plant.assets),
        cfg.mapping.source,
        cfg.mapping.version,
        cfg.lateness_s,
        cfg.horizon_s,
    )
    write_assets(dsn, plant)
    flow = Dataflow(NAME)
    decoded = op.input("read", flow, source(settings, KINDS, align_s=settings.oee_lateness_s / 2))
    batches = op.flat_map("group", decoded, group)
    keyed_rows = op.stateful_flat_map("timeline", batches, timeline_step(cfg))
    # one key for all rows: gathered into write batches (Bytewax state, so a crash loses none;
    # pipelines.common.gather, as Bytewax's collect restarts its timeout at every item)
    to_write = op.map("rows", keyed_rows, lambda kv: (NAME, kv[1]))
    gathered = gather("gather", to_write, GATHER_WAIT, settings.sink_batch_rows)
    rows = op.flat_map("batch", gathered, lambda kv: kv[1])
    op.output(
        "write",
        rows,
        MultiUpsertSink(
            dsn,
            (OEE_MINUTES, TOO_LATE),
            after=AfterWrite(plant, cfg.schedule),
            batch_rows=settings.sink_batch_rows,
        ),
    )
    return flow
