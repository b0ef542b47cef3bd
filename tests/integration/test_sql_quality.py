"""The SQL side of data quality (issue 6) against the real TimescaleDB: the coverage and
trustworthy columns of the OEE views, the KPI functions per asset and line, the suite status, the
failing expectations and the dead letters by reason, each against hand-computed values
(sql/repeatable/010_oee.sql, sql/repeatable/050_quality.sql; docs/sql.md, "Data quality").

Rows are written with SQL/COPY as the flows write them; coverage is judged against the newest
minute written (the OEE flow's progress), so each test says which minute that is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from tests.integration.test_sql_pipelines import (
    LINE,
    VIEWS,
    add_asset,
    minute,
    refresh,
    write_minutes,
)

pytestmark = pytest.mark.integration

Conn = psycopg.Connection[Any]
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # a Monday, 06:00 UTC
M = timedelta(minutes=1)
H = timedelta(hours=1)
SITE = "acme/basel"
A, B, C = f"{LINE}/filler", f"{LINE}/capper", f"{LINE}/labeller"
EARLY = ("early", T0)


def minutes(
    asset: str,
    first: int,
    last: int,
    category: str = "production",
    shift: tuple[str, datetime] | None = EARLY,
) -> list[tuple[object, ...]]:
    """The minute rows T0 + first … T0 + last (inclusive) of one category."""
    return [minute(asset, T0 + i * M, category, shift=shift) for i in range(first, last + 1)]


def write(conn: Conn, rows: list[tuple[object, ...]]) -> None:
    """Write minute rows and refresh their roll-ups, as the OEE sink does."""
    write_minutes(conn, rows)
    stamps = [cast(datetime, r[0]) for r in rows]
    refresh(conn, None, min(stamps), max(stamps) + M)


def one(conn: Conn, query: str, params: Sequence[object] = ()) -> dict[str, Any]:
    cur = conn.execute(query, params)
    names = [d.name for d in cur.description or ()]
    rows = cur.fetchall()
    assert len(rows) == 1, rows
    return dict(zip(names, rows[0], strict=True))


def coverage(conn: Conn, view: str, where: str, params: Sequence[object] = ()) -> float | None:
    row = one(
        conn,
        f"SELECT coverage, trustworthy FROM {view} WHERE convention = 'iso22400' AND {where}",
        params,
    )
    value: float | None = row["coverage"]
    return value


def shift_row(conn: Conn, name: str, start: datetime, end: datetime, site: str = SITE) -> None:
    conn.execute(
        "INSERT INTO shifts (site, shift, start_ts, end_ts) VALUES (%s, %s, %s, %s)",
        (site, name, start, end),
    )


# --- coverage and trustworthy on the OEE views ---------------------------------------------------


def test_every_oee_view_ends_with_coverage_and_trustworthy(db_dsn: str) -> None:
    with psycopg.connect(db_dsn) as conn:
        for view in VIEWS:
            cur = conn.execute(f"SELECT * FROM {view} LIMIT 0")
            names = [d.name for d in cur.description or ()]
            assert names[-2:] == ["coverage", "trustworthy"], view
            assert names.count("coverage") == 1, view
            types: dict[str, str] = dict(
                conn.execute(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_name = %s AND column_name IN ('coverage', 'trustworthy')",
                    (view,),
                ).fetchall()
            )
            assert types == {"coverage": "double precision", "trustworthy": "boolean"}, view


def test_45_of_60_minutes_known_is_not_trustworthy_until_the_threshold_is_lowered(
    db_dsn: str,
) -> None:
    with psycopg.connect(db_dsn) as conn:
        add_asset(conn, A)
        # hour T0: 45 known minutes, 15 unknown; the newest minute is T0 + 60: the hour ended
        write(conn, minutes(A, 0, 44) + minutes(A, 45, 59, "unknown") + minutes(A, 60, 60))
        assert conn.execute("SELECT dq_coverage_threshold()").fetchone() == (0.9,)
        hour = one(
            conn,
            "SELECT * FROM oee_by_hour WHERE ts = %s AND convention = 'iso22400'",
            (T0,),
        )
        assert hour["minutes"] == 60
        assert hour["coverage"] == pytest.approx(0.75)
        assert hour["trustworthy"] is False
        known = one(
            conn, "SELECT * FROM oee_by_minute WHERE ts = %s AND convention = 'oee.com'", (T0,)
        )
        assert (known["coverage"], known["trustworthy"]) == (1.0, True)
        blind = one(
            conn,
            "SELECT * FROM oee_by_minute WHERE ts = %s AND convention = 'oee.com'",
            (T0 + 50 * M,),
        )
        assert (blind["coverage"], blind["trustworthy"]) == (0.0, False)
        # the line and the site of one asset: the same figure
        for view in ("line_oee_by_hour", "site_oee_by_hour"):
            assert coverage(conn, view, "ts = %s", (T0,)) == pytest.approx(0.75), view

        conn.execute("UPDATE dq_settings SET value = 0.7 WHERE name = 'oee_min_coverage'")
        assert conn.execute("SELECT dq_coverage_threshold()").fetchone() == (0.7,)
        for view in ("oee_by_hour", "line_oee_by_hour", "site_oee_by_hour"):
            row = one(
                conn,
                f"SELECT trustworthy FROM {view} WHERE ts = %s AND convention = 'iso22400'",
                (T0,),
            )
            assert row["trustworthy"] is True, view
        conn.execute("UPDATE dq_settings SET value = 0.75 WHERE name = 'oee_min_coverage'")
        assert (
            one(
                conn,
                "SELECT trustworthy FROM oee_by_hour WHERE ts = %s AND convention = 'iso22400'",
                (T0,),
            )["trustworthy"]
            is True
        )  # >=: trustworthy at exactly the threshold
        conn.execute("DELETE FROM dq_settings WHERE name = 'oee_min_coverage'")
        assert conn.execute("SELECT dq_coverage_threshold()").fetchone() == (0.9,)


def test_a_partly_unknown_minute_counts_its_known_seconds(db_dsn: str) -> None:
    with psycopg.connect(db_dsn) as conn:
        add_asset(conn, A)
        half = minute(A, T0, split={"production": 20.0, "unknown": 30.0, "breakdown": 10.0})
        write(conn, [half, *minutes(A, 1, 1)])
        assert coverage(conn, "oee_by_minute", "ts = %s", (T0,)) == pytest.approx(0.5)
        # hour in progress up to the newest minute T0 + 1, which A wrote: 2 minutes elapsed
        assert coverage(conn, "oee_by_hour", "ts = %s", (T0,)) == pytest.approx(90 / 120)


def test_a_period_in_progress_is_judged_on_its_elapsed_part(db_dsn: str) -> None:
    with psycopg.connect(db_dsn) as conn:
        for asset in (A, B, C):
            add_asset(conn, asset)
        shift_row(conn, "early", T0, T0 + 8 * H)
        # B wrote the newest minute T0 + 20; A is one minute behind (on time); C fell silent
        # after T0 + 9 (missing data).
        write(conn, minutes(A, 0, 19) + minutes(B, 0, 20) + minutes(C, 0, 9))
        for view, where, key in (
            ("oee_by_hour", "ts = %s", T0),
            ("oee_by_shift", "shift_start = %s", T0),
        ):
            got = {
                asset: coverage(conn, view, f"asset = %s AND {where}", (asset, key))
                for asset in (A, B, C)
            }
            assert got == pytest.approx({A: 1.0, B: 1.0, C: 600 / 1200}), view
        # the UTC day began at 00:00: the six hours before the first minute were not known
        got = {
            asset: coverage(conn, "oee_by_day", "asset = %s AND day = %s", (asset, T0.date()))
            for asset in (A, B, C)
        }
        assert got == pytest.approx({A: 20 / 380, B: 21 / 381, C: 10 / 380})
        # the line: summed known seconds ÷ summed elapsed seconds (21 min for B, 20 for A, C)
        line = (20 + 21 + 10) * 60 / ((20 + 21 + 20) * 60)
        assert coverage(conn, "line_oee_by_hour", "ts = %s", (T0,)) == pytest.approx(line)
        assert coverage(conn, "line_oee_by_shift", "shift_start = %s", (T0,)) == pytest.approx(line)
        assert coverage(conn, "site_oee_by_day", "day = %s", (T0.date(),)) == pytest.approx(
            (20 + 21 + 10) / (380 + 381 + 380)
        )
        assert (
            one(
                conn,
                "SELECT trustworthy FROM line_oee_by_hour WHERE ts = %s AND convention = 'oee.com'",
                (T0,),
            )["trustworthy"]
            is False
        )

        # B goes on to T0 + 60: the hour T0 has ended and counts whole for everyone; the shift
        # and the day are still in progress, up to T0 + 61 for B and T0 + 60 for A and C.
        write(conn, minutes(B, 21, 60))
        got = {
            a: coverage(conn, "oee_by_hour", "asset = %s AND ts = %s", (a, T0)) for a in (A, B, C)
        }
        assert got == pytest.approx({A: 20 / 60, B: 1.0, C: 10 / 60})
        got = {
            a: coverage(conn, "oee_by_shift", "asset = %s AND shift_start = %s", (a, T0))
            for a in (A, B, C)
        }
        assert got == pytest.approx({A: 20 / 60, B: 1.0, C: 10 / 60})
        assert coverage(conn, "line_oee_by_shift", "shift_start = %s", (T0,)) == pytest.approx(
            (20 + 61 + 10) / (60 + 61 + 60)
        )


def test_a_shift_that_ended_counts_its_planned_length_from_shifts(db_dsn: str) -> None:
    bern = "acme/bern/assembly/line1"
    d = f"{bern}/press"
    with psycopg.connect(db_dsn) as conn:
        for asset in (A, B):
            add_asset(conn, asset)
        add_asset(conn, d, line=bern)
        shift_row(conn, "short", T0, T0 + 30 * M)  # Basel only; Bern has no shift instances
        write(
            conn,
            minutes(A, 0, 19, shift=("short", T0))
            + minutes(B, 0, 29, shift=("short", T0))
            + minutes(B, 30, 40, shift=None)
            + minutes(d, 0, 9, shift=("short", T0)),
        )
        got = {
            a: coverage(conn, "oee_by_shift", "asset = %s AND shift_start = %s", (a, T0))
            for a in (A, B, d)
        }
        # A: 20 of the shift's 30 minutes. D's site has no shift instance: judged up to its
        # latest minute (T0 + 9), so whole.
        assert got == pytest.approx({A: 20 / 30, B: 1.0, d: 1.0})
        assert coverage(
            conn, "line_oee_by_shift", "line = %s AND shift_start = %s", (LINE, T0)
        ) == pytest.approx(50 / 60)
        assert coverage(
            conn, "site_oee_by_shift", "site = %s AND shift_start = %s", (SITE, T0)
        ) == pytest.approx(50 / 60)


def test_a_silent_asset_of_the_plant_model_counts_as_unknown_on_its_line_and_site(
    db_dsn: str,
) -> None:
    """A line of two assets: A wrote every minute of the hour T0, B (in `assets`) wrote nothing.
    The line and the site are judged on both machines, as line_dq_kpis counts them: half known,
    not trustworthy; `assets` stays the number of assets with rows (A's figure alone)."""
    with psycopg.connect(db_dsn) as conn:
        for asset in (A, B):
            add_asset(conn, asset)
        shift_row(conn, "early", T0, T0 + H)
        # the newest minute T0 + 60 (after the shift): the hour and the shift have ended
        write(conn, minutes(A, 0, 59) + minutes(A, 60, 60, shift=None))
        alone = one(
            conn,
            "SELECT oee FROM oee_by_hour WHERE asset = %s AND ts = %s AND convention = 'iso22400'",
            (A, T0),
        )["oee"]
        for view, where, key in (
            ("line_oee_by_hour", "ts = %s", T0),
            ("site_oee_by_hour", "ts = %s", T0),
            ("line_oee_by_shift", "shift_start = %s", T0),
            ("site_oee_by_shift", "shift_start = %s", T0),
        ):
            row = one(
                conn,
                f"SELECT assets, minutes, oee, coverage, trustworthy FROM {view} "
                f"WHERE convention = 'iso22400' AND {where}",
                (key,),
            )
            assert row["coverage"] == pytest.approx(0.5), view
            assert row["trustworthy"] is False, view
            assert (row["assets"], row["minutes"]) == (1, 60), view
            assert row["oee"] == pytest.approx(alone), view  # the figure itself is A's
        # the UTC day: 06:00-07:01 of A known, judged up to the newest minute for A and B
        day = (61 * 60) / ((6 * 60 + 61) * 60 + (6 * 60 + 60) * 60)
        for view in ("line_oee_by_day", "site_oee_by_day"):
            assert coverage(conn, view, "day = %s", (T0.date(),)) == pytest.approx(day), view
        # the same rule as line_dq_kpis: every asset of the line in the plant model
        kpis = _kpis(conn, "line_dq_kpis", T0, T0 + H)[LINE]
        assert kpis["coverage"] == pytest.approx(0.5)
        # the silent asset's minutes arrive: both known, the line is whole again
        write(conn, minutes(B, 0, 59))
        assert coverage(conn, "line_oee_by_hour", "ts = %s", (T0,)) == pytest.approx(1.0)
        assert coverage(conn, "site_oee_by_shift", "shift_start = %s", (T0,)) == pytest.approx(1.0)


def test_a_plant_local_day_is_judged_on_its_local_length(db_dsn: str) -> None:
    """Europe/Zurich, Sunday 29 March 2026: the clocks go forward, the day has 23 hours."""
    with psycopg.connect(db_dsn) as conn:
        add_asset(conn, A, "Europe/Zurich")
        day_start = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)  # 00:00 local
        rows = [minute(A, day_start + i * M) for i in range(0, 23 * 60, 10)]  # 1 in 10 minutes
        rows.append(minute(A, day_start + 23 * H))  # the next local day: this one ended
        write_minutes(conn, rows)
        refresh(conn, None, day_start, day_start + 23 * H + M)
        got = coverage(conn, "oee_by_day", "asset = %s AND day = '2026-03-29'", (A,))
        assert got == pytest.approx(len(rows[:-1]) * 60 / (23 * 3600))


# --- dq_kpis / line_dq_kpis --------------------------------------------------------------------

DQ_COLUMNS = (
    "ts, asset, events, rejected, pv_good, pv_uncertain, pv_bad, skew_s_min, skew_s_p50, "
    "skew_s_max, last_ts, last_ingest_ts"
)
X = "acme/basel/unknown/line9/stranger"  # not in the plant model


def _dq_minutes(conn: Conn) -> None:
    rows = [
        (T0 + M, A, 90, 10, 50, 30, 20, -1.0, 1.0, 5.0, T0 + M + timedelta(seconds=50),
         T0 + M + timedelta(seconds=55)),
        (T0 + 2 * M, A, 10, 0, 0, 0, 0, 0.5, 3.0, 4.0, T0 + 2 * M + timedelta(seconds=30),
         T0 + 2 * M + timedelta(seconds=40)),
        (T0 + 90 * M, A, 5, 5, 5, 0, 0, 9.0, 9.0, 9.0, T0 + 91 * M, T0 + 91 * M),  # after
        (T0 + 5 * M, B, 10, 0, 10, 0, 0, 0.0, 0.2, 0.4, T0 + 5 * M + timedelta(seconds=10),
         T0 + 5 * M + timedelta(seconds=12)),
        (T0 + 3 * M, X, 0, 4, 0, 0, 0, None, None, None, None, T0 + 3 * M),
    ]  # fmt: skip
    with conn.cursor() as cur, cur.copy(f"COPY dq_asset_minutes ({DQ_COLUMNS}) FROM STDIN") as cp:
        for row in rows:
            cp.write_row(row)


def _kpis(conn: Conn, function: str, start: datetime, end: datetime) -> dict[str, dict[str, Any]]:
    cur = conn.execute(f"SELECT * FROM {function}(%s, %s)", (start, end))
    names = [d.name for d in cur.description or ()]
    return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


def _kpi_plant(conn: Conn) -> None:
    for asset in (A, B, C):
        add_asset(conn, asset)
    # A: 45 of 60 minutes known; B: all 60 and the newest minute T0 + 60; C: nothing at all
    write(conn, minutes(A, 0, 44) + minutes(A, 45, 59, "unknown") + minutes(B, 0, 60))
    _dq_minutes(conn)


def test_dq_kpis_per_asset_by_hand(db_dsn: str) -> None:
    with psycopg.connect(db_dsn) as conn:
        _kpi_plant(conn)
        got = _kpis(conn, "dq_kpis", T0, T0 + H)
    assert list(got) == sorted([A, B, C, X])
    a = got[A]
    assert a["line"] == LINE
    assert a["site"] == SITE
    assert a["coverage"] == pytest.approx(0.75)
    assert (a["known_s"], a["elapsed_s"], a["minutes"]) == (2700, 3600, 60)
    assert a["unknown_s"] == 900
    assert a["staleness_s"] == pytest.approx(3600 - 150)  # newest source ts T0 + 2:30
    assert a["skew_s_p50"] == pytest.approx(2.0)  # median of the minutes' medians 1 and 3
    assert (a["skew_s_min"], a["skew_s_max"]) == (-1.0, 5.0)
    assert a["pv_bad_share"] == pytest.approx(0.2)
    assert a["pv_uncertain_share"] == pytest.approx(0.3)
    assert (a["events"], a["rejected"], a["process_values"]) == (100, 10, 100)
    assert a["dead_letter_rate"] == pytest.approx(10 / 110)
    assert a["last_ingest_ts"] == T0 + 2 * M + timedelta(seconds=40)
    b = got[B]
    assert b["coverage"] == 1.0
    assert b["staleness_s"] == pytest.approx(3600 - 310)
    assert (b["pv_bad_share"], b["pv_uncertain_share"], b["dead_letter_rate"]) == (0, 0, 0)
    c = got[C]  # in the plant model, silent: no coverage, no counts, nothing to divide
    assert (c["line"], c["coverage"], c["unknown_s"], c["events"], c["rejected"]) == (
        LINE,
        0.0,
        0.0,
        0,
        0,
    )
    for name in (
        "staleness_s",
        "skew_s_p50",
        "skew_s_max",
        "pv_bad_share",
        "pv_uncertain_share",
        "dead_letter_rate",
    ):
        assert c[name] is None, name
    x = got[X]  # not in the plant model: rejected messages only
    assert (x["line"], x["coverage"], x["rejected"], x["dead_letter_rate"]) == (None, 0.0, 4, 1.0)
    assert x["staleness_s"] is None


def test_line_dq_kpis_are_summed_components_not_averaged_ratios(db_dsn: str) -> None:
    with psycopg.connect(db_dsn) as conn:
        _kpi_plant(conn)
        whole = _kpis(conn, "line_dq_kpis", T0, T0 + H)
        # [T0, T0 + 2 h) runs past the newest minute T0 + 60 (B's): B is judged on 61 minutes,
        # A and C on 60, so the line's coverage differs from the mean of its assets' coverage.
        running = _kpis(conn, "line_dq_kpis", T0, T0 + 2 * H)
        assets = _kpis(conn, "dq_kpis", T0, T0 + 2 * H)
    assert list(whole) == [LINE]  # X is in no line
    line = whole[LINE]
    assert line["assets"] == 3
    assert line["coverage"] == pytest.approx((2700 + 3600) / (3 * 3600))
    assert line["unknown_s"] == 900
    assert (line["events"], line["rejected"]) == (110, 10)
    assert line["dead_letter_rate"] == pytest.approx(10 / 120)  # not mean(10/110, 0) = 0.045
    assert line["pv_bad_share"] == pytest.approx(20 / 110)  # not mean(0.2, 0) = 0.1
    assert line["pv_uncertain_share"] == pytest.approx(30 / 110)
    assert line["skew_s_p50"] == pytest.approx(1.0)  # median of the minutes' 1, 3 and 0.2
    assert line["skew_s_max"] == 5.0
    assert line["staleness_s"] == pytest.approx(3600 - 150)  # the stalest asset: A
    assert (assets[A]["elapsed_s"], assets[B]["elapsed_s"], assets[C]["elapsed_s"]) == (
        3600,
        3660,
        3600,
    )
    expected = (2700 + 3660) / (3600 + 3660 + 3600)
    assert running[LINE]["coverage"] == pytest.approx(expected)
    mean = sum(assets[a]["coverage"] for a in (A, B, C)) / 3
    assert mean != pytest.approx(expected)
    # the stalest asset: B (newest source ts T0 + 5:10); A sent again at T0 + 1:31
    assert running[LINE]["staleness_s"] == pytest.approx(2 * 3600 - 310)


def test_empty_inputs_give_null_not_errors(db_dsn: str) -> None:
    with psycopg.connect(db_dsn) as conn:
        for function in ("dq_kpis", "line_dq_kpis", "dead_letter_reasons"):
            assert not conn.execute(f"SELECT * FROM {function}(%s, %s)", (T0, T0 + H)).fetchall()
        assert not conn.execute(
            "SELECT * FROM dq_suite_status(%s, %s, '1 hour')", (T0, T0 + H)
        ).fetchall()
        assert not conn.execute("SELECT * FROM dq_failures(%s, %s, 10)", (T0, T0 + H)).fetchall()
        for view in VIEWS:
            assert not conn.execute(f"SELECT * FROM {view}").fetchall(), view
        # an asset of the plant model, and nothing written at all: no coverage (not 0), no rates
        add_asset(conn, A)
        a = _kpis(conn, "dq_kpis", T0, T0 + H)[A]
        for name in (
            "coverage",
            "elapsed_s",
            "staleness_s",
            "skew_s_p50",
            "pv_bad_share",
            "pv_uncertain_share",
            "dead_letter_rate",
        ):
            assert a[name] is None, name
        assert (a["events"], a["rejected"], a["unknown_s"]) == (0, 0, 0)
        line = _kpis(conn, "line_dq_kpis", T0, T0 + H)[LINE]
        assert (line["coverage"], line["dead_letter_rate"], line["pv_bad_share"]) == (
            None,
            None,
            None,
        )
        # data, but an empty range: nothing elapsed
        write(conn, minutes(A, 0, 9))
        assert _kpis(conn, "dq_kpis", T0, T0)[A]["coverage"] is None
        assert _kpis(conn, "dq_kpis", T0 + H, T0)[A]["coverage"] is None


# --- suites, failures, dead letters ------------------------------------------------------------

RESULT_COLUMNS = (
    "window_start, window_end, suite, expectation, asset, success, element_count, "
    "unexpected_count, observed_value, examples, expectation_type, kwargs, validated_at"
)


def _result(
    start: datetime,
    suite: str,
    expectation: str,
    *,
    asset: str = "",
    success: bool = True,
    elements: int = 10,
    unexpected: int = 0,
    examples: list[dict[str, Any]] | None = None,
) -> tuple[object, ...]:
    return (
        start,
        start + M,
        suite,
        expectation,
        asset,
        success,
        elements,
        unexpected,
        Jsonb({"unexpected_percent": 100 * unexpected / elements}),
        Jsonb(examples or []),
        "expect_column_values_to_be_in_set",
        Jsonb({"column": "state"}),
        start + M + timedelta(seconds=12),
    )


def _results(conn: Conn) -> list[dict[str, Any]]:
    bad = [
        {
            "event_id": "e1",
            "asset": A,
            "ts": "2026-03-02T06:01:03Z",
            "value": "Dancing",
            "origin": "asbuilt.v1.states[0]@41",
        }
    ]
    rows = [_result(T0 - H, "events.states", "state_in_packml_set", success=False, unexpected=1)]
    for i in range(3):
        failed = i == 1
        rows.append(
            _result(
                T0 + i * M,
                "events.states",
                "state_in_packml_set",
                success=not failed,
                unexpected=2 if failed else 0,
                examples=bad if failed else None,
            )
        )
        rows.append(_result(T0 + i * M, "events.states", "event_id_unique"))
    rows.append(
        _result(
            T0 + M,
            "events.states",
            "state_in_packml_set",
            asset=A,
            success=False,
            elements=4,
            unexpected=2,
            examples=bad,
        )
    )
    rows.append(_result(T0, "events.counters", "count_non_negative"))
    rows.append(
        _result(
            T0 + 70 * M,
            "events.counters",
            "count_non_negative",
            success=False,
            elements=5,
            unexpected=1,
        )
    )
    with conn.cursor() as cur, cur.copy(f"COPY dq_results ({RESULT_COLUMNS}) FROM STDIN") as cp:
        for row in rows:
            cp.write_row(row)
    return bad


def test_suite_status_counts_validated_and_failed_windows_per_bucket(db_dsn: str) -> None:
    with psycopg.connect(db_dsn) as conn:
        _results(conn)
        got = conn.execute(
            "SELECT suite, bucket, windows, failed_windows, checks, failed_checks, unexpected "
            "FROM dq_suite_status(%s, %s, '1 hour')",
            (T0, T0 + 2 * H),
        ).fetchall()
        assert got == [
            ("events.counters", T0, 1, 0, 1, 0, 0),
            ("events.states", T0, 3, 1, 6, 1, 2),
            ("events.counters", T0 + H, 1, 1, 1, 1, 1),
            ("events.states", T0 + H, 0, 0, 0, 0, 0),  # no window validated: listed, as 0
        ]
        minutes_ = conn.execute(
            "SELECT bucket, windows, failed_windows FROM dq_suite_status(%s, %s, '1 minute') "
            "WHERE suite = 'events.states'",
            (T0, T0 + 3 * M),
        ).fetchall()
        assert minutes_ == [(T0, 1, 0), (T0 + M, 1, 1), (T0 + 2 * M, 1, 0)]


def test_failures_newest_first_with_their_examples(db_dsn: str) -> None:
    with psycopg.connect(db_dsn) as conn:
        bad = _results(conn)
        cur = conn.execute("SELECT * FROM dq_failures(%s, %s, 10)", (T0, T0 + 2 * H))
        names = [d.name for d in cur.description or ()]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        assert [(r["window_start"], r["suite"], r["asset"]) for r in rows] == [
            (T0 + 70 * M, "events.counters", ""),
            (T0 + M, "events.states", ""),
            (T0 + M, "events.states", A),
        ]
        states = rows[1]
        assert states["expectation"] == "state_in_packml_set"
        assert (states["element_count"], states["unexpected_count"]) == (10, 2)
        assert states["unexpected_share"] == pytest.approx(0.2)
        assert states["examples"] == bad
        assert states["observed_value"] == {"unexpected_percent": 20.0}
        assert states["kwargs"] == {"column": "state"}
        assert states["window_end"] == T0 + 2 * M
        assert rows[2]["unexpected_share"] == pytest.approx(0.5)
        newest = conn.execute("SELECT suite FROM dq_failures(%s, %s, 1)", (T0, T0 + 2 * H))
        assert newest.fetchall() == [("events.counters",)]
        every = conn.execute("SELECT count(*) FROM dq_failures(%s, %s, NULL)", (T0 - H, T0 + H))
        assert every.fetchone() == (3,)  # the failure before T0 too
        suite = conn.execute(
            "SELECT asset FROM dq_failures(%s, %s, p_suite => 'events.states')", (T0, T0 + 2 * H)
        )
        assert suite.fetchall() == [("",), (A,)]


def test_dead_letters_by_reason_class_with_the_latest_example(db_dsn: str) -> None:
    insert = (
        "INSERT INTO dead_letters (received_ts, event_id, origin, reason, payload, payload_size, "
        'schema_version, topic, partition, "offset") VALUES (%s, gen_random_uuid(), %s, %s, '
        "%s, 1, 1, %s, 0, %s)"
    )
    contract = "does not match the event contract"
    letters = [
        (T0 - M, "invalid JSON: before the range", "asbuilt.v1.states"),
        (T0, "invalid JSON: expected value", "asbuilt.v1.states"),
        (T0 + M, f"{contract}: Expected `int`, got `str` - at `$.value`", "asbuilt.v1.counters"),
        (T0 + 2 * M, f"{contract}: Object missing required field `ts`", "asbuilt.v1.states"),
        (T0 + 3 * M, "invalid JSON: trailing data", "asbuilt.v1.counters"),
        (T0 + 4 * M, "empty message (no bytes)", "asbuilt.v1.alarms"),
        (T0 + 5 * M, f"{contract}: Invalid enum value 'Dancing' - at `$.state`", None),
        (T0 + 6 * M, "stale value - at ns=2;s=Line1.Speed", None),
        (T0 + H, "invalid JSON: after the range", "asbuilt.v1.states"),
    ]
    with psycopg.connect(db_dsn) as conn:
        for i, (ts, reason, topic) in enumerate(letters):
            origin = f"{topic}[0]@{i}" if topic else "ns=2;s=Line1.State"
            conn.execute(insert, (ts, origin, reason, f"payload {i} " + "x" * 600, topic, i))
        cur = conn.execute("SELECT * FROM dead_letter_reasons(%s, %s)", (T0, T0 + H))
        names = [d.name for d in cur.description or ()]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    assert [(r["reason"], r["dead_letters"]) for r in rows] == [
        (contract, 3),
        ("invalid JSON", 2),
        ("empty message (no bytes)", 1),
        ("stale value", 1),
    ]
    first = rows[0]
    assert (first["first_ts"], first["last_ts"]) == (T0 + M, T0 + 5 * M)
    assert first["topics"] == ["asbuilt.v1.counters", "asbuilt.v1.states"]
    assert first["example_reason"] == f"{contract}: Invalid enum value 'Dancing' - at `$.state`"
    assert first["example_origin"] == "ns=2;s=Line1.State"
    assert first["example_received_ts"] == T0 + 5 * M
    assert first["example_payload"].startswith("payload 6 ")
    assert len(first["example_payload"]) == 500
    assert rows[1]["example_reason"] == "invalid JSON: trailing data"
    assert rows[3]["topics"] == []


# --- property: a line's coverage is a recomputation from its minute rows -------------------------


def _expected_coverage(written: dict[str, dict[int, float]], start: int, end: int) -> float | None:
    """Σ (60 − unknown) ÷ Σ elapsed over every asset of the line (minute indices from T0), with
    minutes in [start, end) or not, each judged up to the newest minute (inclusive if it wrote
    it)."""
    newest = max(i for rows in written.values() for i in rows)
    known, elapsed = 0.0, 0.0
    for rows in written.values():
        known += sum(60 - rows[i] for i in rows if start <= i < end)
        if newest >= end:
            elapsed += (end - start) * 60
        else:
            elapsed += (newest + (1 if newest in rows else 0) - start) * 60
    return known / elapsed if elapsed else None


@given(
    data=st.data(),
    unknown=st.lists(st.sampled_from([0.0, 0.0, 15.0, 60.0]), min_size=1, max_size=7),
)
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_line_coverage_equals_a_recomputation_from_the_minute_rows_property(
    db_dsn: str, data: st.DataObject, unknown: list[float]
) -> None:
    assets = [A, B, C]
    written: dict[str, dict[int, float]] = {}
    rows = []
    for n, asset in enumerate(assets):
        indices = data.draw(st.sets(st.integers(0, 149), max_size=150), label=asset)
        written[asset] = {i: unknown[(i + n) % len(unknown)] for i in sorted(indices)}
        for i, u in written[asset].items():
            split = {"production": 60.0 - u, "unknown": u}
            rows.append(minute(asset, T0 + i * M, split=split, shift=EARLY))
    if not rows:
        return
    with psycopg.connect(db_dsn) as conn:
        conn.execute("TRUNCATE oee_minutes, oee_hourly, oee_shifts, oee_daily, assets, shifts")
        for asset in assets:
            add_asset(conn, asset)
        shift_row(conn, "early", T0, T0 + 8 * H)
        write(conn, rows)
        by_hour: dict[datetime, float | None] = dict(
            conn.execute(
                "SELECT ts, coverage FROM line_oee_by_hour WHERE convention = 'iso22400'"
            ).fetchall()
        )
        for hour, got in by_hour.items():
            i = int((hour - T0) / M)
            assert got == pytest.approx(_expected_coverage(written, i, i + 60)), hour
        assert set(by_hour) == {T0 + (i // 60) * H for rows_ in written.values() for i in rows_}
        shift = one(conn, "SELECT coverage FROM line_oee_by_shift WHERE convention = 'oee.com'")
        assert shift["coverage"] == pytest.approx(_expected_coverage(written, 0, 480))
        # line_dq_kpis: every asset of the line, with minutes or not, up to the newest minute
        kpis = _kpis(conn, "line_dq_kpis", T0, T0 + 3 * H)[LINE]
        known = sum(60 - u for rows_ in written.values() for u in rows_.values())
        newest = max(i for rows_ in written.values() for i in rows_)
        elapsed = sum((newest + (newest in rows_)) * 60 for rows_ in written.values())
        assert kpis["known_s"] == pytest.approx(known)
        assert kpis["coverage"] == pytest.approx(known / elapsed)
        conn.rollback()
