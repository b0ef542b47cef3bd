"""``python -m pipelines.quality``: the quality flow as a process (see pipelines.quality.flow)."""

from pipelines.common.runner import main
from pipelines.quality.flow import NAME, build_flow

if __name__ == "__main__":
    main(NAME, build_flow)
