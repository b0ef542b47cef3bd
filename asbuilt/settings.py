"""All configuration, from ``ASBUILT_*`` environment variables (pydantic-settings).

Build one :class:`Settings` in the entry point and pass it down; library code never reads
``os.environ``. Secrets (a DSN with a password) are ``SecretStr`` and print masked.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """The asbuilt settings; each field's environment variable is ``ASBUILT_<FIELD>``.

    - ``ASBUILT_HOME``: state directory (cluster data, logs, pid files, recovery stores).
    - ``ASBUILT_DB_DSN``: an existing TimescaleDB; when set, no local cluster is installed or run.
    - ``ASBUILT_DB_PORT``: port of the embedded PostgreSQL/TimescaleDB cluster.
    - ``ASBUILT_DB_NAME``: database the embedded cluster serves.
    - ``ASBUILT_KAFKA_BOOTSTRAP``: an existing Kafka/Redpanda cluster; when set, no broker is run.
    - ``ASBUILT_BROKER_PORT``: port of the embedded Kafka-protocol broker (Tansu).
    - ``ASBUILT_BIND_HOST``: address every embedded service binds (loopback by default).
    - ``ASBUILT_DASHBOARD_PORT``: port of the Streamlit dashboards.
    - ``ASBUILT_RETENTION_DAYS``: drop raw time-series chunks older than this; unset keeps all.
    - ``ASBUILT_LOG_LEVEL``: logging level of the entry points.
    """

    model_config = SettingsConfigDict(env_prefix="ASBUILT_", extra="ignore")

    home: Path = Path(".asbuilt")
    db_dsn: SecretStr | None = None
    db_port: int = Field(default=55432, ge=1, le=65535)
    db_name: str = "asbuilt"
    kafka_bootstrap: str | None = None
    broker_port: int = Field(default=59092, ge=1, le=65535)
    bind_host: str = "127.0.0.1"
    dashboard_port: int = Field(default=8501, ge=1, le=65535)
    retention_days: int | None = Field(default=None, ge=1)
    log_level: str = "INFO"

    @property
    def home_dir(self) -> Path:
        """The state directory as an absolute path."""
        return self.home.expanduser().resolve()

    @property
    def logs_dir(self) -> Path:
        return self.home_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.home_dir / "run"

    @property
    def embedded_db(self) -> bool:
        """True when asbuilt runs its own TimescaleDB cluster (no ``ASBUILT_DB_DSN``)."""
        return self.db_dsn is None

    @property
    def embedded_broker(self) -> bool:
        """True when asbuilt runs its own broker (no ``ASBUILT_KAFKA_BOOTSTRAP``)."""
        return self.kafka_bootstrap is None

    @property
    def bootstrap(self) -> str:
        """Kafka bootstrap servers: the configured cluster, else the embedded broker."""
        if self.kafka_bootstrap is not None:
            return self.kafka_bootstrap
        return f"{self.bind_host}:{self.broker_port}"
