"""Client configurations for confluent-kafka, in one place so every producer and consumer agrees."""

from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer, Producer


def producer_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """Safe defaults: idempotent, acks=all, in-order retries, small linger for throughput."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "message.timeout.ms": 0,  # retry forever: an outage delays events, never drops them
        "reconnect.backoff.max.ms": 1000,
    }
    config.update(overrides)
    return config


def consumer_config(bootstrap: str, group_id: str, **overrides: Any) -> dict[str, Any]:
    """Manual commits after processing, earliest start, so nothing is skipped on a new group."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
    }
    config.update(overrides)
    return config


def make_producer(bootstrap: str, **overrides: Any) -> Producer:
    return Producer(producer_config(bootstrap, **overrides))


def make_consumer(bootstrap: str, group_id: str, **overrides: Any) -> Consumer:
    return Consumer(consumer_config(bootstrap, group_id, **overrides))
