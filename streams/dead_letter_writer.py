"""A non-blocking writer of dead letters for components outside the stream processors (the OTLP
receiver): the record goes to `kaizen.deadletter` with its reason, and the caller never waits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from confluent_kafka import Producer

from kaizen.schemas import model
from kaizen.schemas.codec import Codec
from kaizen.streams.clients import producer_config


class DeadLetterWriter:
    """`write(letter)` queues one dead letter keyed by its id; `close()` delivers what it can."""

    def __init__(self, bootstrap: str, topic: str, client: Mapping[str, Any] | None = None
                 ) -> None:
        self.topic = topic
        self.written = 0
        self.failed = 0
        self._codec = Codec()
        self._producer = Producer(producer_config(bootstrap, **{"message.timeout.ms": 300_000},
                                                  **(client or {})))

    def write(self, letter: model.DeadLetter) -> None:
        try:
            self._producer.produce(self.topic, self._codec.encode(letter),
                                   letter.event_id.encode(), on_delivery=self._delivered)
        except BufferError:
            self.failed += 1  # the queue is full (the broker is away): counted, never blocking
        self._producer.poll(0)

    def flush(self, timeout: float = 10.0) -> int:
        return int(self._producer.flush(timeout))

    def close(self, timeout: float = 10.0) -> None:
        self.flush(timeout)

    def _delivered(self, error: object, message: object) -> None:
        if error is None:
            self.written += 1
        else:
            self.failed += 1
