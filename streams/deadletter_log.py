"""Read dead letters back and put their records on a topic again (`kaizen deadletters`).

A dead letter keeps at most the first 64 KB of the value it rejected and says where the whole
record is; `original` fetches that record from its source position while the topic still
retains it. Replaying appends the bytes, unchanged and with their key, to the source topic (or
another one): the consumers decide about them afresh, which is the point after a fix or a change
of limits. Nothing is edited in place: the log stays the source of truth.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from kaizen.schemas import model
from kaizen.schemas.dead_letters import is_cut
from kaizen.streams.clients import consumer_config, producer_config
from kaizen.streams.replay import Bounds, TopicReader


def read_letters(bootstrap: str, topic: str, client: dict[str, Any] | None = None
                 ) -> list[tuple[int, model.DeadLetter]]:
    """Every dead letter with its offset, one per id (a letter written again is the same id)."""
    seen: dict[str, tuple[int, model.DeadLetter]] = {}
    for record in TopicReader(bootstrap, topic, Bounds(), client=client).records():
        if isinstance(record.event, model.DeadLetter):
            seen.setdefault(record.event.event_id, (record.offset, record.event))
    return sorted(seen.values(), key=lambda item: item[0])


def original(bootstrap: str, letter: model.DeadLetter, timeout: float = 10.0,
             client: dict[str, Any] | None = None) -> tuple[bytes | None, bytes | None] | None:
    """(key, value) of the rejected record: from the letter when it holds it whole, else from
    its source position; None when that position is no longer retained."""
    if not is_cut(letter):
        return letter.key, letter.value
    consumer = Consumer(consumer_config(bootstrap, f"kaizen-dlq-{uuid.uuid4().hex}",
                                        **{"fetch.message.max.bytes": 64 * 1024 * 1024},
                                        **(client or {})))
    try:
        consumer.assign([TopicPartition(letter.source_topic, letter.source_partition,
                                        letter.source_offset)])
        message = consumer.poll(timeout)
        if message is None or message.error() is not None \
                or message.offset() != letter.source_offset:
            return None
        return message.key(), message.value()
    finally:
        consumer.close()


def republish(bootstrap: str, records: Sequence[tuple[str, bytes | None, bytes]],
              client: dict[str, Any] | None = None) -> int:
    """Append (topic, key, value) records; returns how many the broker acknowledged."""
    producer = Producer(producer_config(bootstrap, **{"message.max.bytes": 64 * 1024 * 1024},
                                        **(client or {})))
    delivered: list[bool] = []
    for topic, key, value in records:
        producer.produce(topic, value, key,
                         on_delivery=lambda error, _m: delivered.append(error is None))
    producer.flush(60)
    return sum(delivered)
