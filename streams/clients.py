"""Client configurations for confluent-kafka, in one place so every producer and consumer agrees."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, Message, Producer


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


#: Client settings that say who a client is (SASL, TLS): shared by its producers and consumers.
LOGIN_PREFIXES = ("security.", "sasl.", "ssl.")


def login_of(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The identity part of a client configuration (e.g. a Recorder's producer overrides),
    for the other clients of the same component."""
    return {k: v for k, v in (config or {}).items() if k.startswith(LOGIN_PREFIXES)}


def consume_ready(consumer: Consumer, max_records: int, timeout: float) -> list[Message]:
    """Up to `max_records` messages as soon as one is there, waiting at most `timeout` for it.

    `Consumer.consume(n, timeout)` waits for all `n` messages or the whole timeout, so on a
    quiet topic every record would sit out the timeout (the 50-550 ms rollback reach of
    issue 14); this waits for the first and then takes only what is already fetched."""
    first = consumer.consume(1, timeout=timeout)
    if not first or max_records <= 1:
        return first
    return first + consumer.consume(max_records - 1, timeout=0)


def make_producer(bootstrap: str, **overrides: Any) -> Producer:
    return Producer(producer_config(bootstrap, **overrides))


def make_consumer(bootstrap: str, group_id: str, **overrides: Any) -> Consumer:
    return Consumer(consumer_config(bootstrap, group_id, **overrides))
