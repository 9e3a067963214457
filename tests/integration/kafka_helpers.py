"""Small helpers for integration tests on the real broker."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Message

from kaizen.schemas import model
from kaizen.schemas.codec import Codec
from kaizen.streams.admin import create_topics
from kaizen.streams.recorder import Recorder
from kaizen.streams.topics import Topics


def make_topics(bootstrap: str, prefix: str, partitions: int = 3) -> Topics:
    create_topics(bootstrap, prefix, partitions)
    return Topics(prefix)


def make_recorder(bootstrap: str, topics: Topics, spool: Path, **kwargs: object) -> Recorder:
    return Recorder("support-bot", "acme", bootstrap=bootstrap, topic=topics.episodes,
                    spool_dir=spool / "acme.support-bot", **kwargs)  # type: ignore[arg-type]


def consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 60.0) -> list[Message]:
    """Read a topic from the start until `expected` records arrived (or the timeout), then a little
    longer so that extra (duplicate) records would be seen too."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    settle_until = None
    try:
        while time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                if message.error() is None:
                    messages.append(message)
            if len(messages) >= expected and settle_until is None:
                settle_until = time.monotonic() + 1.0
            if settle_until is not None and time.monotonic() > settle_until:
                break
    finally:
        consumer.close()
    return messages


def decode_all(messages: list[Message]) -> list[model.Event]:
    codec = Codec()
    return [codec.decode(m.value() or b"") for m in messages]
