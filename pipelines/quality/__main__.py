"""``python -m pipelines.quality``: the quality flow as a process (see pipelines.quality.flow)."""

from pipelines.common.metrics import METRICS
from pipelines.common.runner import main
from pipelines.quality.flow import NAME, build_flow

if __name__ == "__main__":
    METRICS.beat()  # importing great-expectations took seconds: that was not a hung dataflow
    main(NAME, build_flow)
