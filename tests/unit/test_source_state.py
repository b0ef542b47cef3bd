"""The pure parts of the flows' Kafka source and state: partition alignment and Kept."""

from __future__ import annotations

import copy
import math
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.common.source import Aligner
from pipelines.common.state import Kept

pytestmark = pytest.mark.unit


def test_aligner_bound_is_the_oldest_position_plus_the_slack() -> None:
    a = Aligner(60.0)
    assert a.bound() == math.inf  # nobody reported: nothing to wait for
    a.report("0-counters", 1_000_000.0)
    a.report("0-states", 400_000.0)
    assert a.bound() == 460_000.0
    a.report("0-states", None)  # idle: holds nobody back
    assert a.bound() == 1_060_000.0
    a.report("1-counters", -math.inf)  # started, not fetched yet: everyone waits
    assert a.bound() == -math.inf


@given(st.lists(st.lists(st.integers(0, 10_000), min_size=1, max_size=30), min_size=1, max_size=6))
def test_aligned_partitions_emit_in_order_within_the_slack(parts: list[list[int]]) -> None:
    """Partitions that each emit what the bound allows, in turns (as Bytewax polls them): every
    record emitted is at most ``slack`` newer than any record still pending anywhere, and all
    records are emitted (the oldest partition is never held back)."""
    slack_ms = 50.0
    aligner = Aligner(slack_ms / 1000.0)
    pending = {f"p{i}": sorted(float(t) for t in ts) for i, ts in enumerate(parts)}
    emitted = 0
    total = sum(len(p) for p in pending.values())
    for _ in range(10 * total + 10):
        for key, queue in pending.items():
            aligner.report(key, queue[0] if queue else None)
        for key, queue in pending.items():
            if not queue:
                continue
            aligner.report(key, queue[0])
            bound = aligner.bound()
            while queue and queue[0] <= bound:
                t = queue.pop(0)
                oldest = min((q[0] for q in pending.values() if q), default=math.inf)
                assert t <= oldest + slack_ms
                emitted += 1
            aligner.report(key, queue[0] if queue else None)
        if emitted == total:
            break
    assert emitted == total


def test_kept_snapshots_are_frozen_pickles_that_restore_the_state() -> None:
    kept = Kept({"minutes": [1, 2, 3]})
    snap = copy.deepcopy(kept)  # what Bytewax does at a snapshot
    kept.value["minutes"].append(4)  # the flow goes on mutating its state
    restored = pickle.loads(pickle.dumps(snap))  # the recovery store, then a resume
    assert isinstance(restored, Kept)
    assert restored.value == {"minutes": [1, 2, 3]}
    assert kept.value == {"minutes": [1, 2, 3, 4]}


def test_gather_waits_from_the_first_item_not_the_last() -> None:
    """A steady trickle does not hold a list back (Bytewax's collect restarts its timeout at
    every item); a full list goes out at once; a snapshot restores the items gathered."""
    from datetime import timedelta

    from bytewax.operators import StatefulLogic

    from pipelines.common.gather import _Gathered, _GatherLogic

    logic: _GatherLogic[int] = _GatherLogic(timedelta(milliseconds=250), 3, _Gathered())
    assert logic.notify_at() is None  # nothing gathered: nothing due
    assert logic.on_item(1) == ([], StatefulLogic.RETAIN)
    due = logic.notify_at()
    assert due is not None
    logic.on_item(2)
    assert logic.notify_at() == due  # the second item does not push the list back
    resumed = _GatherLogic(timedelta(milliseconds=250), 3, logic.snapshot())
    assert resumed.on_notify() == ([[1, 2]], StatefulLogic.DISCARD)
    assert logic.on_item(3) == ([[1, 2, 3]], StatefulLogic.DISCARD)  # max_size: out at once
