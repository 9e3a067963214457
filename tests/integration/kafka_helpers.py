"""Small helpers for integration tests on the real broker."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Message, TopicPartition

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
    """Read a topic from the start until `expected` records arrived, then on to the end offsets
    the broker has at that moment, so that extra (duplicate) records are seen too."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    messages: list[Message] = []
    read_to: dict[int, int] = {}  # partition -> next offset to read
    ends: dict[int, int] | None = None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                if message.error() is None:
                    messages.append(message)
                    read_to[message.partition() or 0] = (message.offset() or 0) + 1
            if len(messages) >= expected and ends is None:
                ends = _end_offsets(consumer, topic)
            if ends is not None and all(read_to.get(p, 0) >= end for p, end in ends.items()):
                break
    finally:
        consumer.close()
    return messages


def _end_offsets(consumer: Consumer, topic: str) -> dict[int, int]:
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions}


def decode_all(messages: list[Message]) -> list[model.Event]:
    codec = Codec()
    return [codec.decode(m.value() or b"") for m in messages]
