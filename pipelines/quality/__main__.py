"""``python -m pipelines.quality``: the quality flow as a process (see pipelines.quality.flow).

great-expectations takes seconds to import (a minute on a loaded machine), so the flow module is
imported only once the runner writes its metrics, while a thread keeps the heartbeat fresh: the
stack sees a process that is starting, not one that never reported or hangs.
"""

from __future__ import annotations

import threading

from bytewax.dataflow import Dataflow

from asbuilt.settings import Settings
from pipelines.common.metrics import METRICS
from pipelines.common.runner import main

NAME = "quality"


def build_flow(settings: Settings) -> Dataflow:
    done = threading.Event()

    def beat() -> None:
        while not done.wait(0.5):
            METRICS.beat()

    beating = threading.Thread(target=beat, name="start-up heartbeat", daemon=True)
    beating.start()
    try:
        from pipelines.quality.flow import build_flow as build

        return build(settings)
    finally:
        done.set()
        beating.join()


if __name__ == "__main__":
    main(NAME, build_flow)
