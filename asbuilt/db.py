"""Database access: a connection pool, the idempotent COPY-upsert, and retention.

The write path of every sink is :func:`copy_upsert`: binary COPY into a temporary staging table,
then ``INSERT … SELECT … ON CONFLICT`` on the table's natural key. COPY is the fastest way in;
the conflict clause makes a replay (Kafka redelivery, Bytewax recovery) leave no duplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

logger = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]

RAW_TABLES = (
    "equipment_states",
    "counter_samples",
    "process_values",
    "alarms",
    "batch_events",
    "material_movements",
    "dead_letters",
)


def pool(dsn: str, min_size: int = 1, max_size: int = 4, name: str = "asbuilt") -> ConnectionPool:
    """A connection pool; open it with ``with pool(...) as p`` or ``p.open()``."""
    return ConnectionPool(dsn, min_size=min_size, max_size=max_size, name=name, open=False)


def column_oids(conn: Conn, table: str, columns: Sequence[str]) -> list[int]:
    """Type OIDs of ``columns`` of ``table``, for binary COPY."""
    rows = conn.execute(
        """SELECT a.attname, a.atttypid::int FROM pg_attribute a
            WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped""",
        (table,),
    ).fetchall()
    types = {name: oid for name, oid in rows}
    missing = [c for c in columns if c not in types]
    if missing:
        msg = f"table {table} has no column(s) {missing}"
        raise ValueError(msg)
    return [types[c] for c in columns]


def copy_upsert(
    conn: Conn,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    key: Sequence[str],
    update: Sequence[str] = (),
) -> int:
    """Write ``rows`` idempotently; return how many rows were inserted or updated.

    ``key`` is the natural key (a unique index that includes the time column). Rows whose key
    exists are skipped, or, with ``update``, have those columns overwritten (a correction); with
    ``update``, of several rows sharing a key in one batch (an at-least-once redelivery) the last
    one wins.
    Atomic: all rows or none (a savepoint inside a transaction the caller keeps open, which
    the caller then commits).
    """
    stage = sql.Identifier(f"stage_{table.replace('.', '_')}")
    target = sql.Identifier(*table.split("."))
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    action: sql.Composable
    if update:
        action = sql.SQL("DO UPDATE SET ") + sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in update
        )
    else:
        action = sql.SQL("DO NOTHING")
    if update:  # ON CONFLICT DO UPDATE refuses to touch one row twice in a statement
        positions = [list(columns).index(k) for k in key]
        rows = list({tuple(row[p] for p in positions): row for row in rows}.values())
    with conn.transaction():
        oids = column_oids(conn, table, columns)
        conn.execute(
            sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS)").format(
                stage, target
            )
        )
        conn.execute(sql.SQL("TRUNCATE {}").format(stage))
        with conn.cursor().copy(
            sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(stage, cols)
        ) as copy:
            copy.set_types(oids)
            for row in rows:
                copy.write_row(row)
        cur = conn.execute(
            sql.SQL(
                "INSERT INTO {target} ({cols}) SELECT {cols} FROM {stage} "
                "ON CONFLICT ({key}) {action}"
            ).format(
                target=target,
                cols=cols,
                stage=stage,
                key=sql.SQL(", ").join(map(sql.Identifier, key)),
                action=action,
            )
        )
        return cur.rowcount


def license(conn: Conn) -> str:
    """The TimescaleDB license in force: 'apache' (community edition here) or 'timescale'."""
    row = conn.execute("SELECT current_setting('timescaledb.license', true)").fetchone()
    return str(row[0]) if row and row[0] else "apache"


def apply_retention(conn: Conn, table: str, keep: timedelta | None) -> list[str]:
    """Keep ``keep`` of ``table``'s history (None: keep everything); return the chunks dropped.

    Where the license allows policies, the table's retention policy is replaced by one for
    ``keep`` (or removed when ``keep`` is None) and the database runs it; under the Apache
    license (no job scheduler for policies) old chunks are dropped here, and the caller runs
    this periodically (the supervisor does, hourly, see :func:`retain`).
    """
    if license(conn) == "timescale":
        with conn.transaction():
            conn.execute("SELECT remove_retention_policy(%s, if_exists => true)", (table,))
            if keep is not None:
                conn.execute("SELECT add_retention_policy(%s, drop_after => %s)", (table, keep))
        return []
    if keep is None:
        return []
    rows = conn.execute(
        "SELECT drop_chunks(%s::regclass, older_than => now() - %s::interval)", (table, keep)
    ).fetchall()
    dropped = [str(r[0]) for r in rows]
    if dropped:
        logger.info("retention: dropped %d chunk(s) of %s older than %s", len(dropped), table, keep)
    return dropped


def retain(
    dsn: str, keep: timedelta | None, tables: Sequence[str] = RAW_TABLES
) -> dict[str, list[str]]:
    """Apply the retention period to every raw table; return the chunks dropped per table."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return {table: apply_retention(conn, table, keep) for table in tables}
