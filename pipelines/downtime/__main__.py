"""``python -m pipelines.downtime``: the downtime-and-alerts flow (see :mod:`.flow`)."""

from pipelines.common.runner import main
from pipelines.downtime.flow import NAME, build_flow

if __name__ == "__main__":
    main(NAME, build_flow)
