"""Faults under a running flow (the historian, the simplest flow on the shared plumbing):
SIGKILL at random points, a database outage, a broker that restarted with an empty log.

What must hold each time: the database ends up exactly as after an uninterrupted run over the
same input -- no duplicate, no missing row.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bytewax.operators as op
import psycopg
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main
from psycopg import sql

from asbuilt import events as ev
from asbuilt.services import stack
from asbuilt.services.supervisor import Supervisor
from asbuilt.settings import Settings
from pipelines.common.sink import UpsertSink
from pipelines.historian import rows
from tests.conftest import TEMPLATE_DB, Stack
from tests.flowkit import FlowProcess, count_rows, flow_settings, produce, wait_until
from tests.integration.test_historian import expected_rows, stored_rows, total_rows

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def plant_events(n: int, start: datetime = T0, seed: int = 0) -> list[ev.Event]:
    """``n`` events spread over 20 assets, mostly process values and counters, some states."""
    rng = random.Random(seed)
    ingest = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)  # fixed: the same input gives the same rows
    out: list[ev.Event] = []
    for i in range(n):
        asset = f"acme/basel/osd/line{i % 4}/m{i % 20}"
        ts = start + timedelta(milliseconds=37 * i)
        pick = rng.random()
        if pick < 0.6:
            out.append(
                ev.new_process_value(
                    asset=asset, ts=ts, signal="force", value=rng.uniform(0, 50), unit="kN",
                    status_code=0, ingest_ts=ingest,
                )
            )  # fmt: skip
        elif pick < 0.9:
            out.append(
                ev.new_counter_sample(
                    asset=asset, ts=ts, counter="processed", value=i, resettable=False,
                    ingest_ts=ingest,
                )
            )  # fmt: skip
        else:
            out.append(
                ev.new_state_change(
                    asset=asset, ts=ts, state=rng.choice(["Execute", "Held", "Suspended"]),
                    mode="Produce", ingest_ts=ingest,
                )
            )  # fmt: skip
    return out


@pytest.fixture
def second_db(local_stack: Stack) -> Iterator[str]:
    """Another fresh database for the same test (the uninterrupted reference run)."""
    name = f"r_{uuid.uuid4().hex[:12]}"
    admin = local_stack.dsn("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(TEMPLATE_DB)
            )
        )
    yield local_stack.dsn(name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_sigkill_at_random_points_leaves_the_tables_as_an_uninterrupted_run(
    local_stack: Stack, db_dsn: str, second_db: str, topic_prefix: str, tmp_path: Path
) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    events = plant_events(20_000, seed=seed)
    settings = flow_settings(
        local_stack, db_dsn, topic_prefix, tmp_path / "killed", snapshot_interval_s=0.5,
        sink_batch_rows=1000,
    )  # fmt: skip
    flow = FlowProcess("historian", settings)
    kills: list[int] = []  # rows stored when each SIGKILL hit
    try:
        produce(settings, events[:15_000])
        # Killed mid-stream: as soon as the stored rows pass a random mark (writes go in
        # transactions of 1000 rows, snapshots every 0.5 s, so each kill leaves written but
        # not yet snapshotted input to be replayed) ...
        for mark in sorted(rng.sample(range(500, 14_500), 5)):
            flow.start()
            wait_until(
                lambda mark=mark: total_rows(db_dsn) >= mark, 120, f"{mark} rows", [flow],
                interval_s=0.01,
            )  # fmt: skip
            flow.kill()
            kills.append(total_rows(db_dsn))
        # ... and at random moments while more input arrives.
        flow.start()
        produce(settings, events[15_000:])
        for _ in range(2):
            time.sleep(rng.uniform(0.1, 1.5))
            flow.kill()
            kills.append(total_rows(db_dsn))
            flow.start()
        wait_until(
            lambda: total_rows(db_dsn) >= len(events),
            300,
            f"all {len(events)} events stored after SIGKILLs at {kills} rows (seed {seed})",
            [flow],
        )
        wait_until(lambda: "recovery_store_reset" in flow.metrics(), 60, "metrics", [flow])
        resumed = flow.metrics()["recovery_store_reset"] is False
    finally:
        if flow.alive():
            flow.stop()

    reference = flow_settings(local_stack, second_db, topic_prefix, tmp_path / "reference")
    with FlowProcess("historian", reference) as clean:
        wait_until(lambda: total_rows(second_db) >= len(events), 300, "the reference run", [clean])
    killed_rows = stored_rows(db_dsn)
    assert killed_rows == stored_rows(second_db), f"seed {seed}"
    assert killed_rows == expected_rows(events), f"seed {seed}"
    assert resumed, "the last restart should have resumed from the recovery store"
    assert any(0 < k < len(events) for k in kills), f"no kill hit mid-stream: {kills}"


@pytest.fixture
def own_database(tmp_path: Path) -> Iterator[tuple[str, Supervisor]]:
    """A TimescaleDB cluster of its own for one test (to stop it under a running flow)."""
    settings = stack.private_settings(tmp_path / "db" / ".asbuilt", db_name="faults")
    supervisor = Supervisor(settings, [stack.infrastructure(settings)[0]])
    supervisor.start_all()
    try:
        yield stack.database_dsn(settings), supervisor
    finally:
        supervisor.stop_all()
        from asbuilt.services.postgres import EmbeddedPostgres

        EmbeddedPostgres(settings).destroy()


def test_a_database_outage_delays_but_loses_nothing(
    local_stack: Stack,
    own_database: tuple[str, Supervisor],
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    dsn, database = own_database
    settings = flow_settings(local_stack, dsn, topic_prefix, tmp_path)
    before, during = plant_events(3000, seed=1), plant_events(3000, start=T0 + timedelta(hours=1))
    produce(settings, before)
    with FlowProcess("historian", settings) as flow:
        wait_until(lambda: total_rows(dsn) == len(before), 120, "the first events", [flow])
        database.stop_all()
        produce(settings, during)
        wait_until(
            lambda: flow.metrics().get("db_waiting"),
            120,
            "the flow to notice the database is gone and wait for it",
            [flow],
        )
        time.sleep(3)  # a few retries with backoff
        assert flow.alive(), flow.output()
        database.start_all()
        wait_until(
            lambda: total_rows(dsn) == len(before) + len(during),
            180,
            "every event written after the database came back",
            [flow],
        )
        wait_until(lambda: not flow.metrics().get("db_waiting"), 30, "db_waiting cleared", [flow])
        assert "retrying in" in flow.output(200)
    assert stored_rows(dsn) == expected_rows(before + during)


def test_a_broker_restarted_with_an_empty_log_resets_recovery_and_stores_new_events(
    broker_only: tuple[Settings, Supervisor], db_dsn: str, tmp_path: Path
) -> None:
    broker_settings, broker = broker_only
    settings = flow_settings(
        _Bootstrap(broker_settings.bootstrap),
        db_dsn,
        "",
        tmp_path,  # type: ignore[arg-type]
    )
    old = plant_events(500, seed=2)
    new = plant_events(200, start=T0 + timedelta(days=1), seed=3)  # fewer: old offsets > new log
    flow = FlowProcess("historian", settings)
    try:
        flow.start()
        produce(settings, old)
        wait_until(lambda: total_rows(db_dsn) == len(old), 120, "the old log's events", [flow])
        wait_until(lambda: own_metrics(flow), 30, "the flow's metrics", [flow])
        epoch_before = flow.metrics()["log_epoch"]
        flow.stop()

        broker.stop_all()
        broker.start_all()  # memory log: everything is gone, offsets start at 0 again
        produce(settings, new)

        flow.start()
        wait_until(
            lambda: total_rows(db_dsn) == len(old) + len(new),
            120,
            "the new log's events (not skipped by stale offsets)",
            [flow],
        )
        wait_until(lambda: own_metrics(flow), 30, "the restarted flow's metrics", [flow])
        metrics = flow.metrics()
    finally:
        if flow.alive():
            flow.stop()
    assert metrics["log_epoch"] != epoch_before
    assert metrics["recovery_store_reset"] is True
    assert stored_rows(db_dsn) == expected_rows(old + new)


def own_metrics(flow: FlowProcess) -> bool:
    """The metrics file is this process's (not the previous run's) and names the log epoch."""
    m = flow.metrics()
    return flow.proc is not None and m.get("pid") == flow.proc.pid and "log_epoch" in m


class _Bootstrap:
    """Stands in for the session Stack where only ``bootstrap`` is used (a private broker)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap


COUNTER_COLUMNS = rows.COLUMNS["counter_samples"]


def _counter_rows(n: int, value: int = 1) -> list[tuple[object, ...]]:
    ingest = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    return [
        rows.row(
            ev.new_counter_sample(
                asset="acme/basel", ts=T0 + timedelta(seconds=i), counter="processed",
                value=value, resettable=False, ingest_ts=ingest,
            )
        )
        for i in range(n)
    ]  # fmt: skip


def test_upsert_sink_runs_after_in_the_same_transaction(db_dsn: str) -> None:
    """``after`` sees the batch's rows inside the write's transaction; if it fails, the rows
    are not committed either (the OEE roll-ups can never disagree with their minutes)."""
    seen: list[int] = []

    def after(conn: psycopg.Connection[tuple[object, ...]], batch: list[object]) -> None:
        row = conn.execute("SELECT count(*) FROM counter_samples").fetchone()
        seen.append(row[0] if row else -1)
        if len(seen) == 2:
            raise ValueError("after failed")

    flow = Dataflow("sink_after")
    data = _counter_rows(6)
    stream = op.input("in", flow, TestingSource([data[:3], data[3:]], batch_size=1))
    rows_ = op.flat_map("rows", stream, lambda batch: batch)
    op.output(
        "out",
        rows_,
        UpsertSink(db_dsn, "counter_samples", COUNTER_COLUMNS, rows.KEY, after=after, batch_rows=3),
    )
    with pytest.raises(Exception, match="error writing output batch"):
        run_main(flow)
    assert seen == [3, 6]  # inside the transaction, the batch's rows are there ...
    assert count_rows(db_dsn, "counter_samples") == 3  # ... and the failed one rolled back


def test_a_row_the_database_refuses_stops_the_flow_and_says_which(
    db_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    bad = list(_counter_rows(1)[0])
    bad[COUNTER_COLUMNS.index("value")] = -5  # CHECK (value >= 0)
    flow = Dataflow("sink_refused")
    stream = op.input("in", flow, TestingSource([tuple(bad)]))
    op.output("out", stream, UpsertSink(db_dsn, "counter_samples", COUNTER_COLUMNS, rows.KEY))
    with pytest.raises(Exception, match="error writing output batch"):
        run_main(flow)
    message = "\n".join(r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    assert "counter_samples" in message
    assert "check constraint" in message
    assert "-5" in message
    assert count_rows(db_dsn, "counter_samples") == 0
