"""``python -m pipelines.oee``: run the OEE flow (see :mod:`pipelines.common.runner`)."""

from pipelines.common.runner import main
from pipelines.oee.flow import build_flow

if __name__ == "__main__":
    main("oee", build_flow)
