"""Schema migrations: numbered SQL files in ``sql/``, each applied once, recorded with a checksum.

- ``sql/NNN_name.sql`` run in number order, each in its own transaction together with its record
  in ``asbuilt_meta.schema_migrations``. A recorded migration whose file changed since is refused:
  shipped migrations never change; a fix is a new number.
- ``sql/repeatable/*.sql`` (views, functions: ``CREATE OR REPLACE``) are re-applied after the
  numbered ones on every run, in name order.
- One advisory lock: two migrators never interleave.
- License-dependent features (compression, continuous aggregates, policies) are guarded inside the
  SQL by ``current_setting('timescaledb.license')``; the Apache fallback lives in the application.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from asbuilt.errors import MigrationError

logger = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
LOCK_ID = 0x61736275696C74  # "asbuilt" as an integer: the advisory lock of the migrator
_NUMBERED = re.compile(r"^(\d{3,})_[a-z0-9_]+\.sql$")

_META = """
CREATE SCHEMA IF NOT EXISTS asbuilt_meta;
CREATE TABLE IF NOT EXISTS asbuilt_meta.schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    duration_ms integer NOT NULL
);
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(sql_dir: Path = SQL_DIR) -> tuple[list[Migration], list[Migration]]:
    """The numbered migrations in order, and the repeatable ones; refuse a malformed folder."""
    numbered: list[Migration] = []
    for path in sorted(sql_dir.glob("*.sql")):
        match = _NUMBERED.match(path.name)
        if match is None:
            msg = f"{path}: migration files are named NNN_lower_snake_case.sql"
            raise MigrationError(msg)
        numbered.append(Migration(int(match.group(1)), path.name, path.read_text()))
    versions = [m.version for m in numbered]
    duplicates = sorted({v for v in versions if versions.count(v) > 1})
    if duplicates:
        msg = f"{sql_dir}: two migrations share the number(s) {duplicates}; renumber one"
        raise MigrationError(msg)
    repeatable = [
        Migration(0, p.name, p.read_text()) for p in sorted((sql_dir / "repeatable").glob("*.sql"))
    ]
    return numbered, repeatable


def migrate(dsn: str, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply what is pending; return the names applied (repeatables included)."""
    numbered, repeatable = discover(sql_dir)
    applied_now: list[str] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_ID,))
        try:
            conn.execute(_META)
            recorded = {
                row[0]: (row[1], row[2])
                for row in conn.execute(
                    "SELECT version, name, checksum FROM asbuilt_meta.schema_migrations"
                )
            }
            _check_recorded(numbered, recorded)
            for migration in numbered:
                if migration.version in recorded:
                    continue
                _apply(conn, migration)
                applied_now.append(migration.name)
            for migration in repeatable:
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                applied_now.append(f"repeatable/{migration.name}")
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_ID,))
    return applied_now


def _check_recorded(numbered: list[Migration], recorded: dict[int, tuple[str, str]]) -> None:
    files = {m.version: m for m in numbered}
    for version, (name, checksum) in sorted(recorded.items()):
        migration = files.get(version)
        if migration is None:
            msg = (
                f"migration {name} is recorded as applied but its file is gone from sql/; "
                "this database is newer than this checkout — use the matching asbuilt version"
            )
            raise MigrationError(msg)
        if migration.checksum != checksum:
            msg = (
                f"migration {migration.name} was edited after it was applied "
                f"(recorded checksum {checksum[:12]}…, file now {migration.checksum[:12]}…). "
                "Applied migrations must never change: revert the edit and put the change "
                "in a new numbered migration."
            )
            raise MigrationError(msg)


def _apply(conn: psycopg.Connection[tuple[object, ...]], migration: Migration) -> None:
    logger.info("applying migration %s", migration.name)
    try:
        with conn.transaction():
            row = conn.execute("SELECT clock_timestamp()").fetchone()
            conn.execute(migration.sql.encode())
            conn.execute(
                """INSERT INTO asbuilt_meta.schema_migrations (version, name, checksum, duration_ms)
                   VALUES (%s, %s, %s,
                           (extract(epoch FROM clock_timestamp() - %s) * 1000)::integer)""",
                (migration.version, migration.name, migration.checksum, row[0] if row else None),
            )
    except psycopg.Error as exc:
        msg = f"migration {migration.name} failed and was rolled back: {exc}"
        raise MigrationError(msg) from exc


def status(dsn: str, sql_dir: Path = SQL_DIR) -> list[tuple[str, str]]:
    """(name, 'applied <when>' | 'pending') for every numbered migration."""
    numbered, _ = discover(sql_dir)
    with psycopg.connect(dsn) as conn:
        exists = conn.execute("SELECT to_regclass('asbuilt_meta.schema_migrations')").fetchone()
        recorded: dict[int, str] = {}
        if exists and exists[0] is not None:
            recorded = {
                v: str(at)
                for v, at in conn.execute(
                    "SELECT version, applied_at FROM asbuilt_meta.schema_migrations"
                )
            }
    return [
        (m.name, f"applied {recorded[m.version]}" if m.version in recorded else "pending")
        for m in numbered
    ]
