"""Create the catalog's topics idempotently and say what was done."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
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
    `replication` > 1, `min.insync.replicas` is 2, so acks=all survives one lost broker.

    A request lost to a broker handle that went away (a cluster that has just started, where
    librdkafka swaps its bootstrap handles for the brokers it learned) is sent again, up to
    `ATTEMPTS` times; any other error is raised."""
    admin = admin_client(bootstrap, **(client or {}))
    existing = admin.list_topics(timeout=timeout).topics
    specs: list[TopicSpec] = catalog(partitions)
    reports = [
        TopicReport(s.name(prefix), "exists", len(existing[s.name(prefix)].partitions))
        for s in specs
        if s.name(prefix) in existing
    ]
    missing = [s for s in specs if s.name(prefix) not in existing]
    for attempt in range(1, ATTEMPTS + 1):
        if not missing:
            break
        outcomes = _create(admin, prefix, missing, replication, timeout)
        reports += [report for report in outcomes.values() if report is not None]
        missing = [spec for spec in missing if outcomes[spec.name(prefix)] is None]
        if missing and attempt < ATTEMPTS:
            time.sleep(RETRY_PAUSE_S * attempt)
    if missing:
        names = [spec.name(prefix) for spec in missing]
        raise KafkaException(KafkaError(KafkaError._TRANSPORT,
                                        f"topics not created after {ATTEMPTS} attempts: {names}"))
    order = {s.name(prefix): i for i, s in enumerate(specs)}
    return sorted(reports, key=lambda r: order[r.name])


ATTEMPTS = 5
RETRY_PAUSE_S = 0.5

# errors of the connection, not of the request: the same request may succeed on the next try
TRANSIENT = frozenset({KafkaError._DESTROY_BROKER, KafkaError._TRANSPORT, KafkaError._TIMED_OUT,
                       KafkaError._ALL_BROKERS_DOWN, KafkaError.NOT_CONTROLLER,
                       KafkaError.REQUEST_TIMED_OUT})


def is_transient(error: KafkaException) -> bool:
    """True when a failed admin request is worth sending again as it is."""
    cause = error.args[0] if error.args else None
    return isinstance(cause, KafkaError) and (cause.retriable() or cause.code() in TRANSIENT)


def _create(admin: AdminClient, prefix: str, specs: list[TopicSpec], replication: int,
            timeout: float) -> dict[str, TopicReport | None]:
    """One CreateTopics request: a report per topic, or None for one to send again."""
    futures = admin.create_topics(
        [NewTopic(s.name(prefix), s.partitions, replication,
                  config=_with_isr(s.config(), replication)) for s in specs],
        operation_timeout=timeout,
    )
    outcomes: dict[str, TopicReport | None] = {}
    for spec in specs:
        name = spec.name(prefix)
        try:
            futures[name].result(timeout)
            outcomes[name] = TopicReport(name, "created", spec.partitions)
        except KafkaException as error:
            outcomes[name] = _failed(name, spec, error)
    return outcomes


def _failed(name: str, spec: TopicSpec, error: KafkaException) -> TopicReport | None:
    if "TOPIC_AUTHORIZATION_FAILED" in str(error):
        # with ACLs a principal sees (and may create) only the topics of its role: the others
        # are the admin's (`kaizen up --secure`); its clients fail loudly on a topic they need
        return TopicReport(name, "no-access", 0)
    if "TOPIC_ALREADY_EXISTS" in str(error):
        return TopicReport(name, "exists", spec.partitions)
    if is_transient(error):
        return None
    raise error


def _with_isr(config: dict[str, str], replication: int) -> dict[str, str]:
    if replication < 2:
        return config
    return {**config, "min.insync.replicas": str(min(2, replication))}
