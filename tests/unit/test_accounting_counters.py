"""Cumulative counters → increments: baseline, growth, reset, rollover, restart; never negative."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.accounting.counters import DEFAULT_ROLES, increment, is_rollover

pytestmark = pytest.mark.unit


def test_first_sample_is_a_baseline() -> None:
    assert increment(None, 1_234_567, resettable=False) == 0
    assert increment(None, 5, resettable=True, rollover=65535) == 0


def test_growth() -> None:
    assert increment(100, 130, resettable=False) == 30
    assert increment(100, 100, resettable=True) == 0


def test_reset_counts_from_zero() -> None:
    assert increment(30_000, 5, resettable=True, rollover=65535) == 5
    assert increment(30_000, 0, resettable=True) == 0


def test_rollover_near_the_limit() -> None:
    assert is_rollover(65_530, 3, 65_535)
    assert increment(65_530, 3, resettable=True, rollover=65_535) == 9  # 530..535, 0..3
    assert increment(65_535, 0, resettable=False, rollover=65_535) == 1
    assert not is_rollover(30_000, 3, 65_535)
    assert not is_rollover(65_530, 40_000, 65_535)


def test_restart_of_a_non_resettable_accumulator_is_a_new_baseline() -> None:
    assert increment(1_000_000, 12, resettable=False) == 0
    assert increment(50_000, 10, resettable=False, rollover=65_535) == 0


def test_roles() -> None:
    assert DEFAULT_ROLES == {"processed": "processed", "defective": "defective", "rework": "rework"}
    assert "processed_resettable" not in DEFAULT_ROLES


@settings(max_examples=200)
@given(
    st.lists(st.integers(0, 200), min_size=1, max_size=60),
    st.lists(st.integers(0, 59), max_size=5),
    st.booleans(),
)
def test_reset_safety(steps: list[int], resets: list[int], resettable: bool) -> None:
    """True production = sum of steps; a counter reset between samples never makes the total
    negative or larger than what was made (a resettable counter loses nothing, since it counts
    from 0 again; a restarted accumulator loses at most what it made before its first sample)."""
    rollover = 65_535
    value = 0
    prev: int | None = None
    total = 0
    made = 0
    hidden = False  # a reset whose new value is not below the old one cannot be seen
    for i, step in enumerate(steps):
        if i in resets:
            value = 0
        value = (value + step) % (rollover + 1)
        if i > 0:
            made += step
            hidden |= i in resets and prev is not None and value >= prev
        inc = increment(prev, value, resettable=resettable, rollover=rollover)
        assert inc >= 0
        total += inc
        prev = value
    assert 0 <= total <= made
    if not any(0 < i < len(steps) for i in resets) or (resettable and not hidden):
        assert total == made
