"""A decoding consumer for the sinks: batches of model events with their log positions, and
commits only what the caller says is safely written (at-least-once; sinks are idempotent)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, Producer, TopicPartition

from schemas import model
from schemas.codec import Codec, DecodeError
from streams.clients import consumer_config, producer_config

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
        for message in self._consumer.consume(max_records, timeout=timeout):
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
        import uuid

        topic, partition, offset = position
        letter = model.DeadLetter(
            event_id=str(uuid.uuid5(uuid.NAMESPACE_URL,
                                    f"kaizen:deadletter:{self._component}/{topic}/{partition}/{offset}")),
            occurred_at=0, component=self._component, source_topic=topic,
            source_partition=partition, source_offset=offset, reason=str(error)[:2000],
            error_type=type(error).__name__, key=key, value=value,
        )
        self._dead.produce(self._deadletter, self._codec.encode(letter),
                           f"{topic}/{partition}/{offset}".encode())
        self._dead.poll(0)
        self.dead_letters += 1
