"""pipelines.quality.flow.write_quality against a real database: NUL characters written on the
sanitised retry, and dq_asset_kind_minutes / dq_asset_minutes replaced per (kind, minute)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from pipelines.common.sink import connect
from pipelines.quality.flow import AssetKindRows, QualitySink, WindowResults, write_quality
from pipelines.quality.gx import DqResult

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def nul_result() -> DqResult:
    return DqResult(
        T0, T0 + timedelta(minutes=1), "events.states", "state_in_packml_set", "A\x00", False,
        1, 1, {"v\x00": "x\x00"}, [{"asset": "A\x00", "value": "Run\x00", "origin": "t[0]@1"}],
        "expect_column_values_to_be_in_set", {"value_set": ["Run\x00"]}, T0,
    )  # fmt: skip


def kind_row(asset: str, kind: str, ts: datetime, events: int) -> tuple[Any, ...]:
    return (ts, asset, kind, events, 0, 0, 0, 0, None, None, None, None, None)


def test_a_nul_is_written_escaped_on_the_sanitised_retry(db_dsn: str) -> None:
    items: list[Any] = [
        WindowResults("events.states", T0, [nul_result()]),
        AssetKindRows([(T0, "A\x00", "states", 1, 1, 0, 0, 0, None, None, None, None, None)]),
    ]
    with connect(db_dsn) as conn:
        with pytest.raises(psycopg.DataError), conn.transaction():
            write_quality(conn, items)
        with conn.transaction():
            assert write_quality(conn, items, sanitised=True) == 2
        asset, examples, kwargs, observed = conn.execute(
            "SELECT asset, examples, kwargs, observed_value FROM dq_results"
        ).fetchone()  # type: ignore[misc]
        assert asset == "A\\x00"
        assert examples == [{"asset": "A\\x00", "value": "Run\\x00", "origin": "t[0]@1"}]
        assert kwargs == {"value_set": ["Run\\x00"]}
        assert observed == {"v\\x00": "x\\x00"}
        assert conn.execute("SELECT asset FROM dq_asset_kind_minutes").fetchall() == [("A\\x00",)]
        assert conn.execute("SELECT asset, rejected FROM dq_asset_minutes").fetchall() == [
            ("A\\x00", 1)
        ]


def test_the_sink_retries_a_batch_with_a_nul_sanitised(db_dsn: str) -> None:
    part = QualitySink(db_dsn).build("write", 0, 1)
    try:
        part.write_batch([WindowResults("events.states", T0, [nul_result()])])
    finally:
        part.close()
    with connect(db_dsn) as conn:
        assert conn.execute("SELECT asset FROM dq_results").fetchall() == [("A\\x00",)]


def kind_minutes(conn: Any) -> list[tuple[Any, ...]]:
    sql = "SELECT asset, kind, events FROM dq_asset_kind_minutes ORDER BY asset, kind"
    rows: list[tuple[Any, ...]] = conn.execute(sql).fetchall()
    return rows


def summary(conn: Any) -> list[tuple[Any, ...]]:
    sql = "SELECT asset, events FROM dq_asset_minutes ORDER BY asset"
    rows: list[tuple[Any, ...]] = conn.execute(sql).fetchall()
    return rows


def test_a_window_closed_again_replaces_its_kind_rows_and_the_summary(db_dsn: str) -> None:
    first = AssetKindRows(
        [kind_row("A", "states", T0, 3), kind_row("B", "states", T0, 2)], "states", T0
    )
    other_kind = AssetKindRows([kind_row("B", "counters", T0, 5)], "counters", T0)
    with connect(db_dsn) as conn:
        with conn.transaction():
            write_quality(conn, [first, other_kind])
        assert summary(conn) == [("A", 3), ("B", 7)]
        # a replay assigns the minute's states differently: A's rows moved, B has fewer
        with conn.transaction():
            write_quality(conn, [AssetKindRows([kind_row("B", "states", T0, 1)], "states", T0)])
        assert kind_minutes(conn) == [("B", "counters", 5), ("B", "states", 1)]
        assert summary(conn) == [("B", 6)]
        # the minute closes with no rows of an asset at all: its kind rows go too
        with conn.transaction():
            write_quality(conn, [AssetKindRows([], "counters", T0)])
        assert kind_minutes(conn) == [("B", "states", 1)]
        assert summary(conn) == [("B", 1)]
        # a later close of the same minute in one batch wins
        later = AssetKindRows([kind_row("C", "states", T0, 4)], "states", T0)
        with conn.transaction():
            write_quality(conn, [first, later])
        assert kind_minutes(conn) == [("C", "states", 4)]
        assert summary(conn) == [("C", 4)]
