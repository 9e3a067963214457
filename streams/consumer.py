"""A decoding consumer for the sinks: batches of model events with their log positions, and
commits only what the caller says is safely written (at-least-once; sinks are idempotent)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, Producer, TopicPartition

from kaizen.schemas import model
from kaizen.schemas.codec import Codec, DecodeError
from kaizen.schemas.dead_letters import dead_letter, dead_letter_key
from kaizen.streams.clients import consume_ready, consumer_config, producer_config

Position = tuple[str, int, int]  # topic, partition, offset


@dataclass(frozen=True)
class Consumed:
    position: Position
    event: model.Event


class EventConsumer:
    """Subscribes to topics; undecodable records go to the dead-letter topic, never stop it."""

    def __init__(self, bootstrap: str, group_id: str, topics: Sequence[str], deadletter: str,
                 component: str) -> None:
        self._consumer = Consumer(consumer_config(bootstrap, group_id))
        self._consumer.subscribe(list(topics))
        self._dead = Producer(producer_config(bootstrap))
        self._deadletter, self._component = deadletter, component
        self._codec = Codec()
        self.dead_letters = 0

    def poll(self, max_records: int = 2000, timeout: float = 0.2) -> list[Consumed]:
        out = []
        for message in consume_ready(self._consumer, max_records, timeout):
            if message.error() is not None:
                continue
            position = (message.topic() or "", message.partition() or 0, message.offset() or 0)
            try:
                out.append(Consumed(position, self._codec.decode(message.value() or b"")))
            except DecodeError as error:
                self._dead_letter(position, message.key(), message.value(), error)
        return out

    def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        """Commit next-offsets per partition (the sink's `flush()` result)."""
        if offsets:
            parts = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
            self._consumer.commit(offsets=parts, asynchronous=False)

    def close(self) -> None:
        self._dead.flush(10)
        self._consumer.close()

    def _dead_letter(self, position: Position, key: bytes | None, value: bytes | None,
                     error: Exception) -> None:
        topic, partition, offset = position
        letter = dead_letter(self._component, topic, partition, offset, error, key=key,
                             value=value, occurred_at=0)
        self._dead.produce(self._deadletter, self._codec.encode(letter),
                           dead_letter_key(topic, partition, offset))
        self._dead.poll(0)
        self.dead_letters += 1
