"""The idempotent write path and retention, on the real TimescaleDB."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from asbuilt import db

pytestmark = pytest.mark.integration

COLUMNS = (
    "ts",
    "asset",
    "event_id",
    "counter",
    "value",
    "resettable",
    "rollover",
    "ingest_ts",
    "schema_version",
)
KEY = ("asset", "ts", "event_id")
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def _rows(n: int, start: datetime = T0) -> list[tuple[object, ...]]:
    return [
        (
            start + timedelta(seconds=i),
            f"acme/site1/pack/line{i % 3}/cartoner",
            uuid.UUID(int=i + 1),
            "processed",
            i,
            False,
            None,
            start + timedelta(seconds=i, milliseconds=40),
            1,
        )
        for i in range(n)
    ]


def _count(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    row = conn.execute("SELECT count(*) FROM counter_samples").fetchone()
    assert row is not None
    return int(str(row[0]))


def test_copy_upsert_writes_every_row_once_even_when_replayed(db_dsn: str) -> None:
    rows = _rows(5000)
    with psycopg.connect(db_dsn) as conn:
        assert db.copy_upsert(conn, "counter_samples", COLUMNS, rows, KEY) == 5000
        # A replay of an overlapping batch (what Kafka redelivery looks like) adds only the new.
        again = rows[4000:] + _rows(10, start=T0 + timedelta(hours=1))
        assert db.copy_upsert(conn, "counter_samples", COLUMNS, again, KEY) == 10
        assert _count(conn) == 5010
        stored = conn.execute(
            "SELECT ts, asset, event_id, value FROM counter_samples ORDER BY ts LIMIT 1"
        ).fetchone()
    assert stored == (rows[0][0], rows[0][1], rows[0][2], 0)


def test_copy_upsert_with_update_overwrites_the_named_columns(db_dsn: str) -> None:
    rows = _rows(3)
    corrected = [(*r[:4], 1000 + int(str(r[4])), *r[5:]) for r in rows]
    with psycopg.connect(db_dsn) as conn:
        db.copy_upsert(conn, "counter_samples", COLUMNS, rows, KEY)
        assert db.copy_upsert(conn, "counter_samples", COLUMNS, corrected, KEY, ["value"]) == 3
        values = [r[0] for r in conn.execute("SELECT value FROM counter_samples ORDER BY ts")]
    assert values == [1000, 1001, 1002]


def test_copy_upsert_is_all_or_nothing(db_dsn: str) -> None:
    bad = [*_rows(3), (T0, "a/b", uuid.uuid4(), "processed", -5, False, None, T0, 1)]
    with psycopg.connect(db_dsn) as conn:
        with pytest.raises(psycopg.errors.CheckViolation):
            db.copy_upsert(conn, "counter_samples", COLUMNS, bad, KEY)
        assert _count(conn) == 0
        # The connection is usable again afterwards (the sink retries on it).
        assert db.copy_upsert(conn, "counter_samples", COLUMNS, _rows(3), KEY) == 3


def test_copy_upsert_names_a_column_that_does_not_exist(db_dsn: str) -> None:
    with (
        psycopg.connect(db_dsn) as conn,
        pytest.raises(ValueError, match=r"no column\(s\) \['nope'\]"),
    ):
        db.copy_upsert(conn, "counter_samples", ("ts", "nope"), [], ("ts",))


def test_retention_drops_only_chunks_older_than_the_period_under_apache(db_dsn: str) -> None:
    now = datetime.now(UTC)
    old = _rows(10, start=now - timedelta(days=40))
    recent = [(r[0] + timedelta(days=39), r[1], uuid.uuid4(), *r[3:]) for r in old]
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        db.copy_upsert(conn, "counter_samples", COLUMNS, old + recent, KEY)
        assert db.license(conn) == "apache"
        dropped = db.apply_retention(conn, "counter_samples", timedelta(days=30))
        assert len(dropped) >= 1
        oldest = conn.execute("SELECT min(ts) FROM counter_samples").fetchone()
        assert _count(conn) == 10
    assert oldest is not None
    assert oldest[0] > now - timedelta(days=30)


def test_copy_upsert_with_update_takes_the_last_of_duplicates_in_one_batch(db_dsn: str) -> None:
    rows = _rows(2)
    redelivered = [rows[0], rows[1], (*rows[0][:4], 77, *rows[0][5:])]
    with psycopg.connect(db_dsn) as conn:
        assert db.copy_upsert(conn, "counter_samples", COLUMNS, redelivered, KEY, ["value"]) == 2
        values = [r[0] for r in conn.execute("SELECT value FROM counter_samples ORDER BY ts")]
    assert values == [77, 1]


def test_retention_without_a_period_keeps_everything(db_dsn: str) -> None:
    old = _rows(5, start=datetime.now(UTC) - timedelta(days=400))
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        db.copy_upsert(conn, "counter_samples", COLUMNS, old, KEY)
    assert db.retain(db_dsn, None) == {t: [] for t in db.RAW_TABLES}
    with psycopg.connect(db_dsn) as conn:
        assert _count(conn) == 5
