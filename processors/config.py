"""What the processors need to run, as plain values (built from `kaizen.Settings` by the CLI)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kaizen.schemas.boundary import Limits

#: Versioned names of every stateful step: rebuild-by-replay and changelog recovery depend on them.
#: Change a fold's state layout -> bump its version (a new table is rebuilt from the log).
EPISODES_TABLE = "episodes-v1"
PATTERNS_TABLE = "patterns-v1"
CURATION_TABLE = "curation-v1"
#: Internal topics: bundles (`processors/bundles.py`) of episode ToolResult events re-keyed by
#: agent, and of signals re-keyed by curation key. v1 held one record each.
TOOL_RESULTS_TOPIC = "tool-results-v2"
CURATION_TOPIC = "curation-v2"


@dataclass(frozen=True)
class KafkaLogin:
    """The processors' SASL identity (`kaizen up --secure`: the `processor` user)."""

    username: str
    password: str = field(repr=False)
    mechanism: str = "SCRAM-SHA-512"
    protocol: str = "SASL_PLAINTEXT"  # or SASL_SSL

    def librdkafka(self) -> dict[str, str]:
        """The same login for confluent-kafka clients (admin, topic creation)."""
        return {"security.protocol": self.protocol, "sasl.mechanism": self.mechanism,
                "sasl.username": self.username, "sasl.password": self.password}


@dataclass(frozen=True)
class ProcessorConfig:
    bootstrap: str
    prefix: str = "kaizen"
    partitions: int = 3
    app_id: str = "kaizen-processors"
    data_dir: Path = Path(".kaizen/processors")
    min_support: int = 2
    idle_ms: int = 300_000
    linger_ms: int = 60_000
    window_seconds: int = 60
    idle_scan_ms: int = 5_000  # how much the watermark must advance between idle scans
    batch_records: int = 1_000  # records folded per batch (one table write per touched key)
    batch_seconds: float = 0.05  # longest wait for a batch to fill: bounds the added latency
    keys_path: Path | None = None  # per-user key store: personal fields encrypted (forgetting)
    limits: Limits = Limits()  # what an input record may be (size, event time)
    fold_attempts: int = 3  # tries of a record whose fold raises, before it is dead-lettered
    login: KafkaLogin | None = None  # SASL; None: an open broker
    max_deaths: int = 3  # deaths of the process folding a record, before it is dead-lettered
    replication: int = 1  # of the changelogs and internal topics (settings.topic_replication)

    def internal(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    @property
    def topic_config(self) -> dict[str, str]:
        """Config of the topics the processors create: with replicas, min.insync.replicas 2,
        like the catalog's (`streams/admin.py`), so acks=all survives one lost broker."""
        return {"min.insync.replicas": "2"} if self.replication > 1 else {}
