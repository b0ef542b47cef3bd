"""The historian's pure part: events -> rows of the raw tables, and the flows' settings."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from asbuilt import events as ev
from asbuilt.settings import Settings
from pipelines.historian import rows

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
TS = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def _sql_columns() -> dict[str, list[str]]:
    """The columns of each raw table as sql/001_raw_events.sql creates them, in order."""
    text = (ROOT / "sql" / "001_raw_events.sql").read_text()
    tables: dict[str, list[str]] = {}
    for name, body in re.findall(r"CREATE TABLE (\w+) \((.*?)\n\);", text, re.S):
        columns = []
        for line in body.splitlines():
            word = line.strip().split(" ", 1)[0]
            if word and word.islower() and word not in {"primary", "check"} and "(" not in word:
                columns.append(word)
        tables[name] = columns
    return tables


def test_every_event_type_has_a_table_and_every_column_of_it_is_filled() -> None:
    sql_columns = _sql_columns()
    assert set(rows.TABLE_OF) == set(ev.EVENT_TYPES)
    for table, columns in rows.COLUMNS.items():
        assert sorted(columns) == sorted(sql_columns[table]), table
        assert set(rows.KEY) <= set(columns)


def test_a_row_carries_the_events_fields_in_column_order() -> None:
    event = ev.new_batch_event(
        asset="acme/basel/osd", ts=TS, batch_id="B1", recipe_id="R", recipe_version="2",
        procedure="tablet", phase="press", transition="started", parameters={"speed": 1.5},
        ingest_ts=TS,
    )  # fmt: skip
    table, row = rows.table_row(event)
    assert table == "batch_events"
    assert dict(zip(rows.COLUMNS[table], row, strict=True)) == {
        "ts": TS, "asset": "acme/basel/osd", "event_id": event.event_id, "batch_id": "B1",
        "recipe_id": "R", "recipe_version": "2", "procedure": "tablet", "unit_procedure": None,
        "operation": None, "phase": "press", "transition": "started",
        "parameters": {"speed": 1.5}, "ingest_ts": TS, "schema_version": ev.SCHEMA_VERSION,
    }  # fmt: skip
    assert rows.row(event) == row


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("historian", ("historian",)),
        ("historian, oee ,downtime", ("historian", "oee", "downtime")),
        ('["oee", "oee"]', ("oee",)),
        ("", ()),
    ],
)
def test_pipelines_setting_takes_a_comma_list_or_json(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: tuple[str, ...]
) -> None:
    monkeypatch.setenv("ASBUILT_PIPELINES", value)
    assert Settings().pipelines == expected


def test_settings_round_trip_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(
        db_dsn="postgresql://u:secret@h/d", pipelines=("historian",), topic_prefix="t1_",
        snapshot_interval_s=0.5, loss_mapping=Path("/x/map.yaml"),
    )  # fmt: skip
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    again = Settings()
    assert again.model_dump(exclude={"db_dsn"}) == settings.model_dump(exclude={"db_dsn"}) | {
        "home": settings.home_dir
    }
    assert again.db_dsn is not None
    assert again.db_dsn.get_secret_value() == "postgresql://u:secret@h/d"
    assert again.recovery_dir("oee") == settings.home_dir / "recovery" / "oee"
