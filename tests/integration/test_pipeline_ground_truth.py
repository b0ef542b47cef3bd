"""The simulator's ground truth over a whole shift equals what the real pipeline computed.

Simulated plant (real OPC UA) → connector → broker → the OEE and historian flows (real Bytewax
processes) → TimescaleDB, read back from the tables and documented views: per asset, the seconds
in production, the processed and defective counts and the number of state changes equal what
the simulator says it did, and every minute accounts for its 60 seconds.
"""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from asbuilt import events as ev
from asbuilt.plant import default_plant
from tests.conftest import Stack
from tests.flowkit import FlowProcess, flow_settings, produce, wait_until
from tests.integration.test_connector import START, Run, run_plant

pytestmark = pytest.mark.integration

SHIFT = timedelta(hours=8)  # START (06:40 or 07:40 in Zurich) + 8 h: across both breaks
END = START + SHIFT


@pytest.fixture(scope="module")
def shift_run(local_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, str]:
    """Eight simulated hours of the default plant through a connector (at 300x: ~100 s).

    Faster, on a busy 2-core machine, the connector falls behind the simulator and its OPC UA
    subscription can lapse: the server then drops the changes it had queued (OPC UA keeps no
    history), so the run below is checked to have had no reconnect before it is compared."""
    work = tmp_path_factory.mktemp("shift")
    run = run_plant(local_stack.bootstrap, work, span=SHIFT)
    connector = run.metrics["connector"]
    assert connector["reconnects"] == 0, f"the connector lost its OPC UA session: {connector}"
    return run, f"c{os.getpid()}_{work.name}_"  # run_plant's topic prefix


def test_a_shift_of_the_simulated_plant_equals_its_ground_truth(
    shift_run: tuple[Run, str], local_stack: Stack, db_dsn: str, tmp_path: Path
) -> None:
    run, prefix = shift_run
    settings = flow_settings(
        local_stack, db_dsn, prefix, tmp_path, kafka_partitions=3, oee_lateness_s=5.0
    )
    assets = list(default_plant().assets)
    # Move every asset's event clock past the end of the run, so its last minutes close.
    produce(
        settings,
        [
            ev.new_process_value(
                asset=a, ts=END + timedelta(minutes=2), signal="end_of_test", value=0.0,
                unit="1", status_code=0,
            )
            for a in assets
        ],
    )  # fmt: skip
    expected_minutes = int(SHIFT.total_seconds() // 60) * len(assets)
    with FlowProcess("oee", settings) as oee, FlowProcess("historian", settings) as historian:

        def done() -> bool:
            with psycopg.connect(db_dsn) as conn:
                row = conn.execute(
                    "SELECT (SELECT count(*) FROM oee_minutes WHERE ts >= %s AND ts < %s), "
                    "(SELECT count(*) FROM process_values WHERE signal = 'end_of_test')",
                    (START, END),
                ).fetchone()
            assert row is not None
            return row[0] >= expected_minutes and row[1] == len(assets)

        wait_until(done, 300, "a full shift of OEE minutes and raw events", [oee, historian])

    truth = run.truth
    production: dict[str, float] = defaultdict(float)
    for iv in truth.intervals():
        if iv.state == "Execute" and iv.mode == "Produce":
            production[iv.asset] += (min(iv.end, END) - max(iv.start, START)).total_seconds()
    with psycopg.connect(db_dsn) as conn:
        rows = conn.execute(
            # Units counted at END itself belong to the minute starting at END (the truth
            # counts them too): counts are summed up to END inclusive, seconds up to END.
            "SELECT asset, sum(production_s) FILTER (WHERE ts < %(end)s), sum(processed), "
            "sum(defective), sum(unknown_s) FILTER (WHERE ts < %(end)s), "
            "count(*) FILTER (WHERE ts < %(end)s), bool_and(abs(production_s + setup_s "
            "  + breakdown_s + minor_stop_s + external_s + idle_s + unknown_s "
            "  + planned_downtime_s + not_scheduled_s - 60) < 1e-6) "
            "FROM oee_minutes WHERE ts >= %(start)s AND ts <= %(end)s GROUP BY asset",
            {"start": START, "end": END},
        ).fetchall()
        states = dict(
            conn.execute(  # type: ignore[arg-type]
                "SELECT asset, count(*) FROM equipment_states WHERE ts <= %s GROUP BY asset",
                (END,),
            ).fetchall()
        )
        shift_view = conn.execute(
            "SELECT count(DISTINCT asset), sum(pq) FROM oee_by_shift "
            "WHERE convention = 'iso22400' AND shift_start >= %s AND shift_start < %s",
            (START - timedelta(hours=8), END),
        ).fetchone()
    got = {r[0]: r[1:] for r in rows}
    assert set(got) == set(assets)
    for asset in assets:
        prod_s, processed, defective, unknown_s, minutes, closed = got[asset]
        assert minutes == SHIFT.total_seconds() // 60, asset
        assert closed, f"{asset}: a minute whose categories do not add up to 60 s"
        assert prod_s == pytest.approx(production[asset], abs=1e-3), asset
        assert (processed, defective) == truth.counts[asset], asset
        assert unknown_s == 0, asset
        assert states[asset] == len(truth.intervals(asset)), asset
    assert shift_view is not None
    assert shift_view[0] == len(assets)
    assert shift_view[1] == sum(p for p, _ in truth.counts.values())
