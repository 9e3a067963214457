"""Append model events to a topic and wait for the broker (CLI actions, injected events)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import Producer

from kaizen.schemas import model
from kaizen.schemas.codec import Codec
from kaizen.streams.clients import producer_config


def publish_events(bootstrap: str, topic: str, keyed: Sequence[tuple[bytes, model.Event]],
                   producer: Producer | None = None, client: Mapping[str, Any] | None = None
                   ) -> list[int]:
    """Write (key, event) pairs in order; returns their offsets, raises if any was not written.
    `client`: this process's Kafka login (SASL), `Settings.kafka_client`."""
    codec = Codec()
    producer = producer or Producer(producer_config(bootstrap, **{"linger.ms": 0},
                                                    **(client or {})))
    offsets: list[int] = []
    errors: list[str] = []

    def delivered(error: object, message: object) -> None:
        if error is not None:
            errors.append(str(error))
        else:
            offsets.append(int(message.offset()))  # type: ignore[attr-defined]

    for key, event in keyed:
        producer.produce(topic, codec.encode(event), key, on_delivery=delivered)
    producer.flush(30)
    if errors or len(offsets) != len(keyed):
        raise RuntimeError(f"events not written to {topic}: {errors or 'timeout'}")
    return offsets
