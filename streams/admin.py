"""Create the catalog's topics idempotently and say what was done."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from kaizen.streams.topics import TopicSpec, catalog


@dataclass(frozen=True)
class TopicReport:
    name: str
    action: str  # "created" | "exists" | "no-access" (ACLs: another role's topic)
    partitions: int


def admin_client(bootstrap: str, **overrides: Any) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, **overrides})


def create_topics(
    bootstrap: str, prefix: str, partitions: int = 3, timeout: float = 30.0,
    client: dict[str, Any] | None = None,  # e.g. SASL settings (streams/acls.py)
    replication: int = 1,
) -> list[TopicReport]:
    """Create every missing topic of the catalog; existing ones are left as they are. With
    `replication` > 1, `min.insync.replicas` is 2, so acks=all survives one lost broker."""
    admin = admin_client(bootstrap, **(client or {}))
    existing = admin.list_topics(timeout=timeout).topics
    specs: list[TopicSpec] = catalog(partitions)
    missing = [s for s in specs if s.name(prefix) not in existing]
    reports = [
        TopicReport(s.name(prefix), "exists", len(existing[s.name(prefix)].partitions))
        for s in specs
        if s.name(prefix) in existing
    ]
    if missing:
        futures = admin.create_topics(
            [NewTopic(s.name(prefix), s.partitions, replication,
                      config=_with_isr(s.config(), replication)) for s in missing],
            operation_timeout=timeout,
        )
        for spec in missing:
            try:
                futures[spec.name(prefix)].result(timeout)
                reports.append(TopicReport(spec.name(prefix), "created", spec.partitions))
            except KafkaException as error:
                if "TOPIC_AUTHORIZATION_FAILED" in str(error):
                    # with ACLs a principal sees (and may create) only the topics of its role:
                    # the others are the admin's (`kaizen up --secure`); its clients fail loudly
                    # on a topic they need and cannot reach
                    reports.append(TopicReport(spec.name(prefix), "no-access", 0))
                    continue
                if "TOPIC_ALREADY_EXISTS" not in str(error):
                    raise
                reports.append(TopicReport(spec.name(prefix), "exists", spec.partitions))
    order = {s.name(prefix): i for i, s in enumerate(specs)}
    return sorted(reports, key=lambda r: order[r.name])


def _with_isr(config: dict[str, str], replication: int) -> dict[str, str]:
    if replication < 2:
        return config
    return {**config, "min.insync.replicas": str(min(2, replication))}
