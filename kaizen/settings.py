"""One typed, frozen settings object, read once at start from `KAIZEN_*` env or a settings file.

Only the CLI and the public API entry points build a `Settings`; everything below them receives the
plain values it needs, so no module reads the environment on its own or at import time.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(ValueError):
    """Configuration that cannot work, with a message that names the variable to fix."""


class Settings(BaseSettings):
    """Everything configurable in Kaizen. Each field is the env var `KAIZEN_<FIELD>`."""

    model_config = SettingsConfigDict(
        env_prefix="KAIZEN_", env_file=".env", extra="ignore", frozen=True
    )

    home: Path = Field(Path(".kaizen"), description="Data dir of the local stack and stores.")
    kafka_bootstrap: str = Field(
        "", description="Your own Kafka (host:port,...). Empty: the local launcher's broker."
    )
    kafka_port: int = Field(19092, description="Port of the local broker on 127.0.0.1.")
    kafka_controller_port: int = Field(19093, description="KRaft controller port, local broker.")
    topic_prefix: str = Field("kaizen", description="Prefix of every topic name.")
    topic_partitions: int = Field(3, ge=1, description="Partitions of the episode-keyed topics.")
    schema_registry_url: str = Field(
        "", description="Confluent Schema Registry; empty: single-object encoding."
    )
    clickhouse_url: str = Field("", description="ClickHouse server; empty: embedded chdb in home.")
    qdrant_url: str = Field("", description="Qdrant server; empty: embedded local mode in home.")
    qdrant_api_key: SecretStr | None = Field(None, description="API key of the Qdrant server.")
    spool_max_bytes: int = Field(256 * 1024 * 1024, ge=1024, description="Recorder spool bound.")
    http_host: str = Field("127.0.0.1", description="Address `kaizen serve` listens on.")
    http_port: int = Field(8765, description="Port `kaizen serve` listens on.")
    log_format: str = Field("auto", description="auto | console | json")
    log_level: str = Field("info", description="debug | info | warning | error")
    min_support: int = Field(2, ge=1, description="Distinct episodes before a lesson is proposed.")
    recall_min_score: float = Field(
        0.35, ge=-1.0, le=2.0,
        description="Relevance floor of recall (cosine plus boosts): weaker lessons are not "
        "served, so a task gets nothing rather than an unrelated lesson.",
    )
    episode_idle_seconds: float = Field(
        300.0, gt=0, description="Idle time (event time) before an open episode is abandoned."
    )

    gate_seconds: float = Field(2.0, gt=0, description="How often the gate looks for candidates.")
    max_auto_change: int = Field(
        3, ge=0, description="Lessons a snapshot may change before it waits for a human."
    )
    high_risk_tools: str = Field(
        "", description="Comma-separated tools whose lessons always wait for a human."
    )
    behavior_replay_hours: float = Field(
        168.0, ge=0, description="Signals replayed at start to restore the live monitor, the "
        "per-lesson effects and the gate's edge cases (they are kept in memory)."
    )

    @field_validator("log_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in {"auto", "console", "json"}:
            raise ValueError("must be one of auto, console, json")
        return value

    @property
    def bootstrap(self) -> str:
        """The brokers to talk to: the user's own, or the local launcher's."""
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"

    @property
    def uses_local_kafka(self) -> bool:
        return not self.kafka_bootstrap

    @property
    def clickhouse_dsn(self) -> str:
        return self.clickhouse_url or f"chdb://{(self.home / 'clickhouse').resolve()}"

    @property
    def qdrant_path(self) -> Path:
        return self.home / "qdrant"

    @property
    def spool_dir(self) -> Path:
        return self.home / "spool"


def load_settings(**overrides: object) -> Settings:
    """Read and validate settings; raise `SettingsError` naming each bad `KAIZEN_*` variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        problems = [
            f"KAIZEN_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in error.errors()
        ]
        raise SettingsError("invalid settings:\n  " + "\n  ".join(problems)) from error
