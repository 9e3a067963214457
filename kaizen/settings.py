"""One typed, frozen settings object, read once at start from `KAIZEN_*` env or a settings file.

Only the CLI and the public API entry points build a `Settings`; everything below them receives the
plain values it needs, so no module reads the environment on its own or at import time.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kaizen.errors import KaizenError
from kaizen.schemas.boundary import Limits


class SettingsError(KaizenError, ValueError):
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
    kafka_controller_port: int | None = Field(
        None, description="KRaft controller port of the local broker; default: the broker port + 1."
    )
    jar_cache: Path | None = Field(
        None, description="Where `make setup` and `kaizen up` keep the Kafka jars; "
        "default ~/.cache/kaizen/jars."
    )
    kafka_brokers: int = Field(
        1, ge=1, le=9, description="Brokers of the local cluster (`kaizen up --brokers N`); node i "
        "listens on kafka_port + 2i and kafka_controller_port + 2i; topics get replication "
        "min(3, N) and min.insync.replicas 2."
    )
    kafka_replication: int = Field(
        0, ge=0, le=9, description="Replication of the topics Kaizen creates (the processors' "
        "changelogs and internal topics too); 0: one per local broker, at most three, and 1 on "
        "your own Kafka."
    )
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
        0.0, ge=-1.0, le=2.0,
        description="Relevance floor of recall (cosine plus boosts): weaker lessons are not "
        "served, so a task gets nothing rather than an unrelated lesson; 0 keeps every "
        "lesson (see README, Recall, for the measured trade-off).",
    )
    episode_idle_seconds: float = Field(
        300.0, gt=0, description="Idle time (event time) before an open episode is abandoned."
    )
    otlp_idle_seconds: float = Field(
        30.0, gt=0, description="OTLP: a trace without its root agent span is recorded after "
        "this long without a new span.")
    otlp_max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="OTLP: largest request body, also once inflated.")

    gate_seconds: float = Field(2.0, gt=0, description="How often the gate looks for candidates.")
    max_auto_change: int = Field(
        3, ge=0, description="Lessons a snapshot may change before it waits for a human."
    )
    gate_in_steps: bool = Field(
        True, description="A change of more than KAIZEN_MAX_AUTO_CHANGE lessons is proposed in "
        "steps of that many (most support first), each evaluated and decided on its own; "
        "false: the whole change waits for a human (and every later candidate with it).")
    high_risk_tools: str = Field(
        "", description="Comma-separated tools whose lessons always wait for a human."
    )
    behavior_replay_hours: float = Field(
        168.0, ge=0, description="Signals replayed at start to restore the live monitor, the "
        "per-lesson effects and the gate's edge cases (they are kept in memory)."
    )

    # --- privacy: redaction before the log, per-user keys for forgetting (issue 15) ---
    redact: bool = Field(True, description="Redact personal data from episode texts before "
                         "the log (e-mail, phone, card, national id, IBAN, API keys, passwords).")
    redact_patterns: dict[str, str] = Field(
        default_factory=dict, description='Your own detectors, JSON {"kind": "regex"}: matches '
        "become <kind>. Use scoped flags, e.g. (?i:...).",
    )
    redact_max_chars: int = Field(32_768, ge=256, description="Longest text field kept and "
                                  "scanned; the rest is dropped with a marker.")

    encrypt_personal: bool = Field(False, description="Encrypt the personal fields of events "
                                   "that name a user, with a key per (tenant, user) kept outside "
                                   "the log, so `kaizen forget` shreds them on every replay.")
    keys_file: Path | None = Field(None, description="The per-user key store (SQLite); empty: "
                                   "<home>/keys/personal.sqlite. Share it with every process.")

    @property
    def personal_keys(self) -> Path | None:
        """The key store path when personal fields are encrypted, else None."""
        if not self.encrypt_personal:
            return None
        return self.keys_file or self.home / "keys" / "personal.sqlite"

    # --- Kafka SASL/SCRAM and ACLs (streams/acls.py; README "Kafka ACLs") ---
    kafka_secure: bool = Field(False, description="`kaizen up` starts the local broker with "
                               "SASL/SCRAM and deny-by-default ACLs (same as `up --secure`).")
    kafka_username: str = Field("", description="SASL user of this process (recorder, "
                                "processor, service); empty: no SASL.")
    kafka_password: SecretStr | None = Field(None, description="SASL password of that user.")
    kafka_sasl_mechanism: str = Field("SCRAM-SHA-512", description="SASL mechanism.")
    kafka_security_protocol: str = Field("SASL_PLAINTEXT", description="With a username: "
                                         "SASL_PLAINTEXT (local) or SASL_SSL (a real cluster).")
    kafka_processor_username: str = Field("", description="SASL user of the processors that "
                                          "`kaizen serve` starts (its child; `processor` with "
                                          "`up --secure`); empty: this process's user.")
    kafka_processor_password: SecretStr | None = Field(None, description="Its password.")

    @property
    def kafka_client(self) -> dict[str, str]:
        """librdkafka settings for this process's Kafka identity ({} without a username)."""
        if not self.kafka_username:
            return {}
        password = self.kafka_password.get_secret_value() if self.kafka_password else ""
        return {"security.protocol": self.kafka_security_protocol,
                "sasl.mechanism": self.kafka_sasl_mechanism,
                "sasl.username": self.kafka_username, "sasl.password": password}

    @field_validator("redact_patterns")
    @classmethod
    def _patterns_compile(cls, value: dict[str, str]) -> dict[str, str]:
        import re

        for kind, pattern in value.items():
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", kind):
                raise ValueError(f"kind {kind!r}: lower-case letters, digits, _ (max 32)")
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"pattern {kind!r} does not compile: {error}") from error
        return value

    # --- API authentication (kaizen/auth.py; README "Security") ---------------------------
    api_tokens: SecretStr | None = Field(
        None, description="JSON: token -> {identity, roles, tenants} (see kaizen/auth.py)."
    )
    api_tokens_file: Path | None = Field(None, description="A file holding that JSON.")
    api_require_tokens: bool = Field(
        False, description="Require tokens on loopback too (always required beyond it)."
    )
    api_token: SecretStr | None = Field(
        None, description="The token the CLI sends to the service (KAIZEN_API_URL)."
    )
    api_url: str = Field(
        "", description="The service's HTTP API for CLI actions; empty: write to the log."
    )
    max_record_bytes: int = Field(
        512 * 1024, ge=1024, description="Largest record a topic accepts; larger ones are "
        "dead-lettered (cut, referenced by topic/partition/offset)."
    )
    max_future_skew_seconds: float = Field(
        86400.0, ge=0, description="How far an event time may be ahead of its record's "
        "timestamp; later events are dead-lettered and move no watermark (0: off)."
    )
    max_past_skew_seconds: float = Field(
        0.0, ge=0, description="How far an event time may be behind its record's timestamp "
        "(0: off, the default, since `kaizen import` backfills old logs)."
    )
    health_stall_seconds: float = Field(
        30.0, gt=0, description="A consumer with lag that has not moved for this long is "
        "reported stuck by /health."
    )
    health_max_lag: int = Field(
        100_000, ge=1, description="Records a consumer may be behind before /health says so."
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
        return self.kafka_bootstrap or ",".join(
            f"127.0.0.1:{self.kafka_port + 2 * i}" for i in range(self.local_brokers))

    @property
    def local_brokers(self) -> int:
        """Brokers of the local cluster: the setting, or the size of the cluster this home
        already holds (`kaizen up --brokers 3` once; `serve` then reaches all three)."""
        made = [int(d.name.split("-")[1]) for d in self.home.glob("kafka-[0-9]*")]
        return max([self.kafka_brokers, *made])

    @property
    def topic_replication(self) -> int:
        """Replication of the topics Kaizen creates: as set, or one per local broker (at most
        three), or 1 on your own Kafka."""
        if self.kafka_replication:
            return self.kafka_replication
        return min(3, self.local_brokers) if self.uses_local_kafka else 1

    @property
    def controller_port(self) -> int:
        """The local broker's KRaft controller port (derived unless set)."""
        return self.kafka_controller_port or self.kafka_port + 1

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
    def limits(self) -> Limits:
        """The record bounds every topic's consumers apply (`schemas/boundary.py`)."""
        return Limits(self.max_record_bytes, int(self.max_future_skew_seconds * 1000),
                      int(self.max_past_skew_seconds * 1000))

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
