"""All configuration, from ``ASBUILT_*`` environment variables (pydantic-settings).

Build one :class:`Settings` in the entry point and pass it down; library code never reads
``os.environ``. Secrets (a DSN with a password) are ``SecretStr`` and print masked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_PIPELINES: tuple[str, ...] = ("historian", "oee", "downtime", "quality")


class Settings(BaseSettings):
    """The asbuilt settings; each field's environment variable is ``ASBUILT_<FIELD>``.

    - ``ASBUILT_HOME``: state directory (cluster data, logs, pid files, recovery stores).
    - ``ASBUILT_DB_DSN``: an existing TimescaleDB; when set, no local cluster is installed or run.
    - ``ASBUILT_DB_PORT``: port of the embedded PostgreSQL/TimescaleDB cluster.
    - ``ASBUILT_DB_NAME``: database the embedded cluster serves.
    - ``ASBUILT_KAFKA_BOOTSTRAP``: an existing Kafka/Redpanda cluster; when set, no broker is run.
    - ``ASBUILT_KAFKA_PARTITIONS``: partitions of each asbuilt topic when asbuilt creates it.
    - ``ASBUILT_KAFKA_REPLICATION``: replication factor of created topics (-1: broker default).
    - ``ASBUILT_KAFKA_SECURITY_PROTOCOL``, ``ASBUILT_KAFKA_SASL_MECHANISM``,
      ``ASBUILT_KAFKA_SASL_USERNAME``, ``ASBUILT_KAFKA_SASL_PASSWORD``,
      ``ASBUILT_KAFKA_SSL_CA_LOCATION``: how to reach a secured cluster (librdkafka names).
    - ``ASBUILT_BROKER_PORT``: port of the embedded Kafka-protocol broker (Tansu).
    - ``ASBUILT_BIND_HOST``: address every embedded service binds (loopback by default).
    - ``ASBUILT_DASHBOARD_PORT``: port of the Streamlit dashboards.
    - ``ASBUILT_OPCUA_ENDPOINT``: an OPC UA server to connect to; unset runs the simulated plant.
    - ``ASBUILT_NODE_MAP``: the node map (YAML) of that server; unset browses it (asbuilt model).
    - ``ASBUILT_CONNECTORS``: connector processes sharing the node map (one partition each);
      0 runs no connector and no simulator (the database and the broker only).
    - ``ASBUILT_SIM_PORT``: OPC UA port of the simulated plant.
    - ``ASBUILT_SIM_SPEED``: simulated seconds per real second.
    - ``ASBUILT_SIM_START``: simulated start (ISO time), ``now``, or ``last-shift`` (the start of
      the latest weekday early shift: production from the first minute).
    - ``ASBUILT_SIM_BACKFILL_HOURS``: history the simulator plays first, as fast as it can.
    - ``ASBUILT_PLANT_MODEL``: the plant model (YAML); unset uses the default OSD plant.
    - ``ASBUILT_RETENTION_DAYS``: drop raw time-series chunks older than this; unset keeps all.
    - ``ASBUILT_START_TIMEOUT_S``: how long a starting service may take to become healthy.
    - ``ASBUILT_LOG_LEVEL``: logging level of the entry points.
    - ``ASBUILT_TOPIC_PREFIX``: prepended to every topic name the flows read and write (tests,
      several deployments on one cluster); empty for the plain ``asbuilt.v1.*`` names.
    - ``ASBUILT_PIPELINES``: the flows ``asbuilt up`` runs, a comma list (``historian,oee``) or
      a JSON list; empty runs none. Flows whose module is not installed are skipped.
    - ``ASBUILT_SNAPSHOT_INTERVAL_S``: Bytewax epoch length = recovery snapshot interval; a
      restarted flow replays at most about this much input (idempotent sinks absorb it).
    - ``ASBUILT_OEE_LATENESS_S``: how long an OEE minute waits for late events before closing.
    - ``ASBUILT_OEE_CORRECTION_HORIZON_H``: how far back a later event still corrects OEE rows.
    - ``ASBUILT_MINOR_STOP_S``: a stop shorter than this is a minor stop (idling/minor stops).
    - ``ASBUILT_LOSS_MAPPING``: YAML mapping PackML state x mode x stop reason to a time
      category; unset uses the documented defaults.
    - ``ASBUILT_ALERT_RULES``: YAML alert rules; unset uses the documented defaults.
    - ``ASBUILT_DASHBOARDS``: whether ``asbuilt up`` serves the dashboards (default true).
    - ``ASBUILT_SINK_BATCH_ROWS``: most rows one database sink write (one transaction) takes.
    - ``ASBUILT_DQ_MIN_COVERAGE``: an OEE figure whose data coverage is below this share is
      marked not trustworthy (the quality flow writes it into ``dq_settings``).
    - ``ASBUILT_DQ_TABLE_INTERVAL_S``: how often the quality flow validates the derived tables.
    - ``ASBUILT_DQ_GRACE_S``: how long after a one-minute window's end, in ingest time, the
      quality flow still waits for its events before validating it.
    """

    model_config = SettingsConfigDict(env_prefix="ASBUILT_", extra="ignore")

    home: Path = Path(".asbuilt")
    db_dsn: SecretStr | None = None
    db_port: int = Field(default=55432, ge=1, le=65535)
    db_name: str = "asbuilt"
    kafka_bootstrap: str | None = None
    kafka_partitions: int = Field(default=6, ge=1)
    kafka_replication: int = Field(default=-1, ge=-1)
    kafka_security_protocol: Literal["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"] = "plaintext"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_location: Path | None = None
    broker_port: int = Field(default=59092, ge=1, le=65535)
    bind_host: str = "127.0.0.1"
    dashboard_port: int = Field(default=8501, ge=1, le=65535)
    opcua_endpoint: str | None = None
    node_map: Path | None = None
    connectors: int = Field(default=1, ge=0, le=64)
    sim_port: int = Field(default=48400, ge=1, le=65535)
    sim_speed: float = Field(default=60.0, gt=0)
    sim_start: str = "last-shift"
    sim_backfill_hours: float = Field(default=0.0, ge=0)
    plant_model: Path | None = None
    retention_days: int | None = Field(default=None, ge=1)
    start_timeout_s: float = Field(default=60.0, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    topic_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$")
    pipelines: Annotated[tuple[str, ...], NoDecode] = DEFAULT_PIPELINES
    snapshot_interval_s: float = Field(default=2.0, gt=0)
    oee_lateness_s: float = Field(default=120.0, ge=0)
    oee_correction_horizon_h: float = Field(default=24.0, ge=0)
    minor_stop_s: float = Field(default=120.0, ge=0)
    loss_mapping: Path | None = None
    alert_rules: Path | None = None
    sink_batch_rows: int = Field(default=5000, ge=1)
    dashboards: bool = True
    dq_min_coverage: float = Field(default=0.9, ge=0, le=1)
    dq_table_interval_s: float = Field(default=60.0, gt=0)
    dq_grace_s: float = Field(default=10.0, ge=0)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("pipelines", mode="before")
    @classmethod
    def _name_list(cls, value: object) -> object:
        """``historian,oee`` or ``["historian", "oee"]`` (environment); a list (code)."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return tuple(name.strip() for name in text.split(",") if name.strip())
        return value

    @field_validator("pipelines")
    @classmethod
    def _known_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [name for name in value if not name.isidentifier()]
        if bad:
            msg = f"pipeline names must be Python module names (e.g. historian), not {bad}"
            raise ValueError(msg)
        return tuple(dict.fromkeys(value))  # keep order, drop repeats

    def to_env(self) -> dict[str, str]:
        """These settings as ``ASBUILT_*`` environment variables (secrets in clear: only for a
        child process's environment), so a child builds the same ``Settings()``. Unset
        (``None``) fields are left out; ``home`` is made absolute."""
        env: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if name == "home":
                value = self.home_dir
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, tuple):
                value = ",".join(map(str, value))
            elif isinstance(value, bool):
                value = "true" if value else "false"
            env[f"ASBUILT_{name.upper()}"] = str(value)
        return env

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

    def recovery_dir(self, flow: str) -> Path:
        """The Bytewax recovery store of ``flow`` (``ASBUILT_HOME/recovery/<flow>``)."""
        return self.home_dir / "recovery" / flow

    def metrics_file(self, flow: str) -> Path:
        """Where the process ``flow`` (a pipeline) keeps its metrics JSON current."""
        return self.run_dir / f"{flow}.metrics.json"

    @property
    def embedded_db(self) -> bool:
        """True when asbuilt runs its own TimescaleDB cluster (no ``ASBUILT_DB_DSN``)."""
        return self.db_dsn is None

    @property
    def embedded_broker(self) -> bool:
        """True when asbuilt runs its own broker (no ``ASBUILT_KAFKA_BOOTSTRAP``)."""
        return self.kafka_bootstrap is None

    @property
    def kafka(self) -> dict[str, Any]:
        """librdkafka connection properties: bootstrap servers and, if configured, security."""
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap}
        if self.kafka_security_protocol != "plaintext":
            config["security.protocol"] = self.kafka_security_protocol
        if self.kafka_sasl_mechanism:
            config["sasl.mechanism"] = self.kafka_sasl_mechanism
        if self.kafka_sasl_username:
            config["sasl.username"] = self.kafka_sasl_username
        if self.kafka_sasl_password is not None:
            config["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_ssl_ca_location is not None:
            config["ssl.ca.location"] = str(self.kafka_ssl_ca_location)
        return config

    @property
    def bootstrap(self) -> str:
        """Kafka bootstrap servers: the configured cluster, else the embedded broker."""
        if self.kafka_bootstrap is not None:
            return self.kafka_bootstrap
        return f"{self.bind_host}:{self.broker_port}"
