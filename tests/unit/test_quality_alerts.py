"""pipelines.quality.alerts: dq alerts raised, updated and cleared by windows. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipelines.downtime.alerts import alert_id
from pipelines.quality.alerts import ANY_ASSET, SuiteAlerts, failures_by_asset
from pipelines.quality.gx import DqResult

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
M = timedelta(minutes=1)
A, B = "acme/basel/osd/train1/press", "acme/basel/osd/train1/mill"


def row(expectation: str, asset: str = "", success: bool = False, n: int = 1) -> DqResult:
    return DqResult(
        T0, T0 + M, "events.counters", expectation, asset, success, 10, 0 if success else n,
        None, [] if success else [{"asset": asset or None, "value": -1}],
        "expect_column_values_to_be_null", {"column": "x"}, T0,
    )  # fmt: skip


def failing_window(*assets: str) -> list[DqResult]:
    rows = [row("counter_never_decreases", n=len(assets))]
    rows += [row("counter_never_decreases", a) for a in assets]
    return [*rows, row("value_non_negative", success=True)]


PASSING = [row("counter_never_decreases", success=True), row("value_non_negative", success=True)]


def test_raised_updated_cleared() -> None:
    s = SuiteAlerts("events.counters")
    first = s.on_window(T0, T0 + M, failing_window(A))
    assert [(a.asset, a.status, a.revision, a.raised_ts) for a in first] == [(A, "active", 0, T0)]
    assert first[0].alert_id == alert_id("dq.events.counters", A, T0)
    assert (first[0].rule, first[0].kind, first[0].severity) == (
        "dq.events.counters",
        "dq",
        "warning",
    )
    assert [f["expectation"] for f in first[0].evidence["failures"]] == ["counter_never_decreases"]
    second = s.on_window(T0 + M, T0 + 2 * M, failing_window(A, B))
    assert [(a.asset, a.status, a.revision, a.raised_ts) for a in second] == [
        (B, "active", 0, T0 + M),  # by asset name
        (A, "active", 1, T0),
    ]
    third = s.on_window(T0 + 2 * M, T0 + 3 * M, failing_window(B))
    assert [(a.asset, a.status, a.revision, a.cleared_ts) for a in third] == [
        (B, "active", 1, None),
        (A, "cleared", 2, T0 + 2 * M),
    ]
    assert third[1].alert_id == first[0].alert_id
    fourth = s.on_window(T0 + 3 * M, T0 + 4 * M, PASSING)
    assert [(a.asset, a.status) for a in fourth] == [(B, "cleared")]
    assert s.on_window(T0 + 4 * M, T0 + 5 * M, PASSING) == []


def test_failure_without_asset_rows_goes_to_star() -> None:
    got = failures_by_asset([row("schema_valid"), *failing_window(A)])
    assert sorted(got) == [ANY_ASSET, A]
    assert [r.expectation for r in got[ANY_ASSET]] == ["schema_valid"]
    # a window row whose assets are named is not repeated under '*'
    assert [r.asset for r in got[A]] == [A]


def test_older_window_moves_no_alert_and_same_evidence_is_silent() -> None:
    s = SuiteAlerts("table.oee_minutes")
    hour = timedelta(hours=1)
    assert len(s.on_window(T0 + hour, T0 + 2 * hour, failing_window(A))) == 1
    assert s.on_window(T0, T0 + hour, failing_window(B)) == []  # the previous hour re-validated
    assert s.on_window(T0 + hour, T0 + 2 * hour, failing_window(A)) == []  # same evidence
    cleared = s.on_window(T0 + hour, T0 + 2 * hour, PASSING)  # the hour corrected
    assert [(a.status, a.revision, a.cleared_ts) for a in cleared] == [("cleared", 1, T0 + hour)]
    again = s.on_window(T0 + hour, T0 + 2 * hour, failing_window(A))  # and broken again
    assert [(a.alert_id, a.status, a.revision) for a in again] == [
        (cleared[0].alert_id, "active", 2)
    ]


def test_replay_emits_the_same_records() -> None:
    windows = [failing_window(A), failing_window(A, B), PASSING, failing_window(B), PASSING]

    def run() -> list[object]:
        s = SuiteAlerts("events.counters")
        return [
            a for i, w in enumerate(windows) for a in s.on_window(T0 + i * M, T0 + (i + 1) * M, w)
        ]

    assert run() == run()
