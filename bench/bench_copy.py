"""Ingest into a hypertable: the idempotent COPY-upsert against row-by-row ``executemany``.

Ours: :func:`asbuilt.db.copy_upsert` (binary COPY into a staging table, then ``INSERT … SELECT …
ON CONFLICT DO NOTHING``), in batches of 10,000 rows. Peer: psycopg ``executemany`` of the same
``INSERT … ON CONFLICT DO NOTHING``, the idempotent path a hand-written sink usually takes. Both
write counter samples (8 columns) into an empty ``counter_samples`` hypertable.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import psycopg

from asbuilt import db
from bench.harness import Context, Figure

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
BATCH = 10_000
T0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)


def _rows(n: int) -> list[tuple[object, ...]]:
    return [
        (
            T0 + timedelta(milliseconds=100 * i),
            f"acme/basel/pack/line{i % 5}/cartoner{i % 10}",
            uuid.uuid4(),
            "processed",
            i,
            False,
            2**31 - 1,
            T0 + timedelta(milliseconds=100 * i + 40),
            1,
        )
        for i in range(n)
    ]


def _ours(
    conn: psycopg.Connection[tuple[object, ...]], rows: Sequence[tuple[object, ...]]
) -> float:
    start = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        db.copy_upsert(conn, "counter_samples", COLUMNS, rows[i : i + BATCH], KEY)
        conn.commit()
    return len(rows) / (time.perf_counter() - start)


def _peer(
    conn: psycopg.Connection[tuple[object, ...]], rows: Sequence[tuple[object, ...]]
) -> float:
    insert = (
        f"INSERT INTO counter_samples ({', '.join(COLUMNS)}) "
        f"VALUES ({', '.join(['%s'] * len(COLUMNS))}) ON CONFLICT (asset, ts, event_id) DO NOTHING"
    )
    start = time.perf_counter()
    with conn.cursor() as cur:
        for i in range(0, len(rows), BATCH):
            cur.executemany(insert, rows[i : i + BATCH])
            conn.commit()
    return len(rows) / (time.perf_counter() - start)


def measure(ctx: Context) -> list[Figure]:
    n_ours, n_peer = (20_000, 5_000) if ctx.quick else (200_000, 50_000)
    with psycopg.connect(ctx.dsn) as conn:
        conn.execute("TRUNCATE counter_samples")
        conn.commit()
        ours = _ours(conn, _rows(n_ours))
        conn.execute("TRUNCATE counter_samples")
        conn.commit()
        peer = _peer(conn, _rows(n_peer))
        conn.execute("TRUNCATE counter_samples")
        conn.commit()
    return [
        Figure(
            bench="idempotent ingest into a hypertable",
            metric=f"rows/s, counter samples, batches of {BATCH:,}",
            unit="rows/s",
            ours_name="COPY → staging → INSERT … ON CONFLICT (asbuilt.db.copy_upsert)",
            ours=ours,
            peer_name="executemany INSERT … ON CONFLICT",
            peer=peer,
            higher_is_better=True,
            note=f"{n_ours:,} rows ours, {n_peer:,} rows peer, into an empty table",
        )
    ]
