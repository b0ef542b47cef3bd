"""pipelines.quality.gx: one GX validation of a window -> dq_results rows."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from pipelines.quality.gx import (
    DQ_RESULT_COLUMNS,
    Check,
    DqResult,
    Suite,
    expectations,
    jsonable,
    validator,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
WINDOW = (T0, T0 + timedelta(minutes=1))
NOW = datetime(2026, 3, 2, 8, 2, tzinfo=UTC)

SUITE = Suite(
    "test.counts",
    (
        Check("value_not_null", expectations.ExpectColumnValuesToNotBeNull(column="value")),
        Check(
            "value_non_negative",
            expectations.ExpectColumnValuesToBeBetween(column="value", min_value=0),
        ),
        Check(
            "max_below_1000",
            expectations.ExpectColumnMaxToBeBetween(column="value", max_value=1000),
        ),
    ),
)


def frame(values: list[int | None], assets: list[str]) -> pl.DataFrame:
    n = len(values)
    return pl.DataFrame(
        {
            "event_id": [f"id-{i}" for i in range(n)],
            "asset": assets,
            "ts": [T0 + timedelta(seconds=i) for i in range(n)],
            "origin": [f"t[0]@{i}" for i in range(n)],
            "value": values,
        }
    )


def test_columns_are_the_dataclass_fields_in_table_order() -> None:
    assert tuple(f.name for f in fields(DqResult)) == DQ_RESULT_COLUMNS
    assert DQ_RESULT_COLUMNS[:5] == ("window_start", "window_end", "suite", "expectation", "asset")


def test_passing_frame_gives_one_successful_row_per_check() -> None:
    rows = validator().validate(SUITE, frame([1, 2, 3], ["a/b", "a/b", "a/c"]), WINDOW, NOW)
    assert [(r.expectation, r.asset, r.success) for r in rows] == [
        ("value_not_null", "", True),
        ("value_non_negative", "", True),
        ("max_below_1000", "", True),
    ]
    r = rows[1]
    assert (r.window_start, r.window_end, r.suite, r.validated_at) == (*WINDOW, "test.counts", NOW)
    assert (r.element_count, r.unexpected_count, r.examples) == (3, 0, [])
    assert r.expectation_type == "expect_column_values_to_be_between"
    assert r.kwargs == {"column": "value", "min_value": 0.0}
    assert rows[2].observed_value == 3


def test_failing_check_is_broken_down_per_asset_with_examples() -> None:
    values = [5, -1, 7, -2, -3, 4]
    assets = ["a/b", "a/b", "a/c", "a/c", "a/c", "a/d"]
    rows = validator().validate(SUITE, frame(values, assets), WINDOW, NOW)
    failing = [r for r in rows if r.expectation == "value_non_negative"]
    assert [(r.asset, r.success, r.element_count, r.unexpected_count) for r in failing] == [
        ("", False, 6, 3),
        ("a/b", False, 2, 1),
        ("a/c", False, 3, 2),
    ]
    assert failing[1].examples == [
        {"event_id": "id-1", "asset": "a/b", "ts": (T0 + timedelta(seconds=1)).isoformat(),
         "origin": "t[0]@1", "value": -1}
    ]  # fmt: skip
    assert [e["value"] for e in failing[0].examples] == [-1, -2, -3]
    assert [e["event_id"] for e in failing[2].examples] == ["id-3", "id-4"]
    # the other checks still pass, with no per-asset rows
    assert [(r.expectation, r.success) for r in rows if r.asset == ""] == [
        ("value_not_null", True),
        ("value_non_negative", False),
        ("max_below_1000", True),
    ]


def test_failed_aggregate_check_has_only_its_window_row() -> None:
    rows = validator().validate(SUITE, frame([1, 5000], ["a/b", "a/b"]), WINDOW, NOW)
    agg = [r for r in rows if r.expectation == "max_below_1000"]
    assert [(r.asset, r.success, r.observed_value) for r in agg] == [("", False, 5000)]


def test_null_and_missing_column_fail_without_raising() -> None:
    broken = Suite(
        "test.broken",
        (
            Check("value_not_null", expectations.ExpectColumnValuesToNotBeNull(column="value")),
            Check("has_other", expectations.ExpectColumnValuesToNotBeNull(column="other")),
        ),
    )
    rows = validator().validate(broken, frame([1, None], ["a/b", "a/c"]), WINDOW, NOW)
    assert [(r.expectation, r.asset, r.success, r.unexpected_count) for r in rows] == [
        ("value_not_null", "", False, 1),
        ("value_not_null", "a/c", False, 1),
        ("has_other", "", False, 0),
    ]
    assert rows[1].examples[0]["value"] is None
    assert "exception" in rows[2].observed_value


def test_jsonable() -> None:
    import numpy as np

    assert jsonable(
        {"a": np.int64(3), "b": float("nan"), "c": T0, "d": (1, 2.5), "e": np.float32(1.5)}
    ) == {"a": 3, "b": None, "c": T0.isoformat(), "d": [1, 2.5], "e": 1.5}
