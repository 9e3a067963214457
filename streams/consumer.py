"""A decoding consumer for the sinks: batches of model events with their log positions, and
commits only what the caller says is safely written (at-least-once; sinks are idempotent).

Every record passes its topic's boundary (`schemas/boundary.py`: type, size, event time) before
a sink sees it. A rejected record is dead-lettered once: by this consumer for the topics whose
only reader it is, and not for the topics the processors read first (`letters_by_others`, the
episodes): they reject the same records with the same rule and write that letter, and writing
it here too is how every bad episode record used to get two letters.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition

from kaizen.schemas import model
from kaizen.schemas.boundary import Limits, admit
from kaizen.schemas.codec import Codec, DecodeError
from kaizen.schemas.dead_letters import dead_letter, dead_letter_key
from kaizen.streams.clients import consume_ready, consumer_config, producer_config

Position = tuple[str, int, int]  # topic, partition, offset


@dataclass(frozen=True)
class Consumed:
    position: Position
    event: model.Event


class EventConsumer:
    """Subscribes to topics (name -> catalog kind); rejected records never stop it."""

    def __init__(self, bootstrap: str, group_id: str, topics: Mapping[str, str] | Sequence[str],
                 deadletter: str, component: str, *, limits: Limits | None = None,
                 letters_by_others: Collection[str] = (), codec: Codec | None = None,
                 client: Mapping[str, Any] | None = None) -> None:
        self._kinds = dict(topics) if isinstance(topics, Mapping) else {t: "" for t in topics}
        self._consumer = Consumer(consumer_config(bootstrap, group_id, **(client or {})))
        self._consumer.subscribe(list(self._kinds))
        self._dead = Producer(producer_config(bootstrap, **(client or {})))
        self._deadletter, self._component = deadletter, component
        self._limits, self._others = limits or Limits(), frozenset(letters_by_others)
        self._codec = codec or Codec()  # a CipherCodec opens personal fields (streams/personal)
        self.dead_letters = 0
        self.rejected = 0  # records rejected, dead-lettered here or by the processors
        self._passed: dict[tuple[str, int], int] = {}  # next offsets after rejected records

    def poll(self, max_records: int = 2000, timeout: float = 0.2) -> list[Consumed]:
        out = []
        for message in consume_ready(self._consumer, max_records, timeout):
            if message.error() is not None:
                continue
            topic = message.topic() or ""
            position = (topic, message.partition() or 0, message.offset() or 0)
            try:
                event = admit(self._codec, message.value() or b"", _timestamp(message),
                              self._kinds.get(topic, ""), self._limits)
            except DecodeError as error:
                self.rejected += 1
                if topic not in self._others:
                    self._dead_letter(position, message.key(), message.value(), error)
                self._passed[position[:2]] = position[2] + 1
                continue
            out.append(Consumed(position, event))
        return out

    def passed(self) -> dict[tuple[str, int], int]:
        """Next offsets past the rejected records polled so far, then forgotten. Commit them
        only together with a flush of everything polled before (a rejected record is done
        with, but what came before it in its partition must be written first)."""
        passed, self._passed = self._dead_flushed(self._passed), {}
        return passed

    def _dead_flushed(self, passed: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
        if passed and self._dead.flush(30) > 0:  # letters not yet on the broker: not done
            return {}
        return passed

    def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        """Commit next-offsets per partition (the sink's `flush()` result)."""
        if offsets:
            parts = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
            self._consumer.commit(offsets=parts, asynchronous=False)

    def committed(self) -> dict[tuple[str, int], int]:
        """Committed next-offsets of the partitions this consumer holds (for /health lags)."""
        try:
            held = self._consumer.assignment()
            return {(tp.topic, tp.partition): tp.offset
                    for tp in self._consumer.committed(held, timeout=5)}
        except KafkaException:
            return {}

    def close(self) -> None:
        self._dead.flush(10)
        self._consumer.close()

    def reject(self, item: Consumed, component: str, error: BaseException, reason: str) -> None:
        """Dead-letter a record that decoded but that a later step (the gate) cannot take."""
        self._dead_letter(item.position, None, self._codec.encode(item.event), error,
                          component=component, reason=reason)

    def _dead_letter(self, position: Position, key: bytes | None, value: bytes | None,
                     error: BaseException, component: str | None = None,
                     reason: str | None = None) -> None:
        topic, partition, offset = position
        letter = dead_letter(component or self._component, topic, partition, offset, error,
                             key=key, value=value, occurred_at=0, reason=reason)
        data = self._codec.encode(letter)
        while True:
            try:
                self._dead.produce(self._deadletter, data, dead_letter_key(topic, partition,
                                                                           offset))
                break
            except BufferError:  # the local queue is full: let it drain, lose nothing
                self._dead.poll(0.5)
        self._dead.poll(0)
        self.dead_letters += 1


def _timestamp(message: Message) -> int:
    kind, value = message.timestamp()
    return int(value) if kind and value and value > 0 else 0
