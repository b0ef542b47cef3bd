"""Migrations against the real TimescaleDB: once, in order, checksummed, locked, license-aware."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import psycopg
import pytest

from asbuilt import db, migrations
from asbuilt.errors import MigrationError

pytestmark = pytest.mark.integration


def _sql_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "sql"
    shutil.copytree(migrations.SQL_DIR, folder)
    return folder


def test_fresh_database_gets_every_raw_table_as_a_hypertable(empty_db_dsn: str) -> None:
    applied = migrations.migrate(empty_db_dsn)
    assert applied[0] == "001_raw_events.sql"
    with psycopg.connect(empty_db_dsn) as conn:
        hypertables = {
            r[0]
            for r in conn.execute("SELECT hypertable_name FROM timescaledb_information.hypertables")
        }
        recorded = conn.execute(
            "SELECT name, checksum FROM asbuilt_meta.schema_migrations ORDER BY version"
        ).fetchall()
    assert hypertables >= set(db.RAW_TABLES)
    numbered, _ = migrations.discover()
    assert recorded == [(m.name, m.checksum) for m in numbered]


def test_second_run_applies_nothing(db_dsn: str) -> None:
    applied = migrations.migrate(db_dsn)
    assert not [name for name in applied if not name.startswith("repeatable/")]
    assert all(state.startswith("applied") for _, state in migrations.status(db_dsn))


def test_apache_license_switches_off_the_failing_builtin_job(db_dsn: str) -> None:
    with psycopg.connect(db_dsn) as conn:
        license_ = conn.execute("SHOW timescaledb.license").fetchone()
        scheduled = conn.execute(
            "SELECT scheduled FROM _timescaledb_config.bgw_job "
            "WHERE proc_name = 'policy_job_stat_history_retention'"
        ).fetchall()
    assert license_ == ("apache",)
    assert scheduled
    assert not any(s for (s,) in scheduled)


def test_an_edited_applied_migration_is_refused(db_dsn: str, tmp_path: Path) -> None:
    folder = _sql_copy(tmp_path)
    first = sorted(folder.glob("001_*.sql"))[0]
    first.write_text(first.read_text() + "\n-- an innocent-looking edit\n")
    with pytest.raises(MigrationError, match=r"was edited after it was applied.*new numbered"):
        migrations.migrate(db_dsn, folder)


def test_a_new_migration_is_applied_once_in_order(db_dsn: str, tmp_path: Path) -> None:
    folder = _sql_copy(tmp_path)
    (folder / "900_second.sql").write_text("CREATE TABLE t_second (id int);")
    (folder / "901_third.sql").write_text("ALTER TABLE t_second ADD COLUMN note text;")
    assert migrations.migrate(db_dsn, folder)[:2] == ["900_second.sql", "901_third.sql"]
    assert "900_second.sql" not in migrations.migrate(db_dsn, folder)


def test_a_failing_migration_is_rolled_back_and_not_recorded(db_dsn: str, tmp_path: Path) -> None:
    folder = _sql_copy(tmp_path)
    (folder / "900_broken.sql").write_text(
        "CREATE TABLE t_half (id int); SELECT no_such_function();"
    )
    with pytest.raises(MigrationError, match=r"900_broken\.sql failed and was rolled back"):
        migrations.migrate(db_dsn, folder)
    with psycopg.connect(db_dsn) as conn:
        assert conn.execute("SELECT to_regclass('t_half')").fetchone() == (None,)
        assert conn.execute(
            "SELECT count(*) FROM asbuilt_meta.schema_migrations WHERE version = 900"
        ).fetchone() == (0,)


def test_concurrent_migrators_apply_each_migration_once(db_dsn: str, tmp_path: Path) -> None:
    folder = _sql_copy(tmp_path)
    # Slow enough that the two runs overlap; without the lock the second CREATE would fail.
    (folder / "900_slow.sql").write_text("SELECT pg_sleep(0.5); CREATE TABLE t_once (id int);")
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(migrations.migrate(db_dsn, folder))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted("900_slow.sql" in r for r in results) == [False, True]


def test_malformed_migration_names_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    folder.mkdir()
    (folder / "1-Init.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNN_lower_snake_case"):
        migrations.discover(folder)
    (folder / "1-Init.sql").unlink()
    (folder / "001_a.sql").write_text("SELECT 1;")
    (folder / "001_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="share the number"):
        migrations.discover(folder)


def test_database_check_constraints_refuse_what_the_contract_forbids(db_dsn: str) -> None:
    with psycopg.connect(db_dsn) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO counter_samples (ts, asset, event_id, counter, value, resettable, "
            "ingest_ts, schema_version) "
            "VALUES (now(), 'a/b', gen_random_uuid(), 'processed', -1, false, now(), 1)"
        )
