"""``python -m pipelines.historian``: run the historian (see :mod:`pipelines.common.runner`)."""

from pipelines.common.runner import main
from pipelines.historian.flow import build_flow

if __name__ == "__main__":
    main("historian", build_flow)
