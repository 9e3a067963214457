"""Create the processors' internal (repartition) topics before their worker starts.

faust declares them itself, but a worker that subscribes before the broker has them prints
"Ignoring missing topic" and, on a loaded machine, could go minutes without reading them (its
metadata refresh), so every pattern and lesson waited: they are created up front instead,
idempotently, with the episode topics' partition count and the configured replication.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic


def ensure_topics(bootstrap: str, names: Sequence[str], partitions: int,
                  replication: int = 1, timeout: float = 30.0,
                  config: dict[str, str] | None = None,
                  client: Mapping[str, Any] | None = None) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, **(client or {})})
    existing = admin.list_topics(timeout=timeout).topics
    missing = [n for n in names if n not in existing]
    if not missing:
        return
    futures = admin.create_topics(
        [NewTopic(n, partitions, replication, config=config or {}) for n in missing],
        operation_timeout=timeout)
    for name in missing:
        try:
            futures[name].result(timeout)
        except KafkaException as error:
            if "TOPIC_ALREADY_EXISTS" not in str(error):
                raise
