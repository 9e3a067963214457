"""Follow and append to the snapshot log (`kaizen.snapshots`, one partition, keyed by scope).

The active behavior of a scope is derived from this log alone, so every reader starts at the
beginning and then follows the tail; an activation reaches every follower as soon as it is
fetched (short fetch waits, and a consume that returns with the first record instead of
waiting for a full batch).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition

from kaizen.schemas import model, scope
from kaizen.schemas.codec import Codec, DecodeError
from kaizen.streams.clients import consume_ready, consumer_config
from kaizen.streams.publish import publish_events

log = structlog.get_logger(__name__)

OnSnapshotEvent = Callable[[int, model.SnapshotEvent], None]


class SnapshotTail:
    """A thread that replays the snapshot log from offset 0 and then follows it."""

    def __init__(self, bootstrap: str, topic: str, on_event: OnSnapshotEvent,
                 poll_interval: float = 0.05, client: Mapping[str, Any] | None = None) -> None:
        self._consumer = Consumer(consumer_config(  # short fetch waits: activations spread fast
            bootstrap, f"kaizen-tail-{uuid.uuid4().hex}", **{"fetch.wait.max.ms": 10},
            **(client or {})))
        self._topic, self._on_event, self._interval = topic, on_event, poll_interval
        self._codec = Codec()
        self._stop = threading.Event()
        self._caught_up = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kaizen-snapshot-tail", daemon=True)
        self.position = 0  # next offset to read
        self.poisoned: list[int] = []  # offsets of events whose fold kept raising

    def start(self) -> SnapshotTail:
        self._consumer.assign([TopicPartition(self._topic, 0, OFFSET_BEGINNING)])
        self._thread.start()
        return self

    def wait_caught_up(self, timeout: float = 30.0) -> bool:
        """True once everything that was in the log at start has been seen."""
        return self._caught_up.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()

    def _run(self) -> None:
        try:
            _, end = self._consumer.get_watermark_offsets(TopicPartition(self._topic, 0),
                                                          timeout=10)
        except KafkaException:  # no snapshot log yet: nothing to catch up on
            end = 0
        if end == 0:
            self._caught_up.set()
        while not self._stop.is_set():
            for message in consume_ready(self._consumer, 500, self._interval):
                if message.error() is not None or message.offset() is None:
                    continue
                offset = int(message.offset())  # type: ignore[arg-type]
                self.position = offset + 1
                try:
                    event = self._codec.decode(message.value() or b"")
                except DecodeError:
                    continue  # not a snapshot event: the sinks dead-letter it
                if isinstance(event, model.SnapshotEvent):
                    self._deliver(offset, event)
            if self.position >= end:
                self._caught_up.set()


    def _deliver(self, offset: int, event: model.SnapshotEvent) -> None:
        """A lifecycle event the follower's fold raises on (3 tries) is skipped, logged with
        its traceback and counted in `poisoned`; the tail goes on (the sinks store it)."""
        for attempt in range(3):
            try:
                self._on_event(offset, event)
                return
            except Exception:
                if attempt == 2:
                    log.exception("snapshot event skipped: its fold raised", offset=offset)
                    self.poisoned.append(offset)


def scope_key(tenant: str, agent: str) -> bytes:
    """The Kafka key of a scope's snapshot events: the one injective `schemas.scope` encoding."""
    return scope.scope_key(tenant, agent).encode()


def publish(bootstrap: str, topic: str, events: Sequence[model.SnapshotEvent],
            producer: Producer | None = None, client: Mapping[str, Any] | None = None
            ) -> list[int]:
    """Append lifecycle events keyed by scope, waiting for the broker; returns their offsets."""
    keyed = [(scope_key(e.tenant, e.agent), e) for e in events]
    return publish_events(bootstrap, topic, keyed, producer, client)
