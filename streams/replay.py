"""Audit replay: read a topic range back as decoded records, with their log positions.

Reads by assignment (no consumer group, nothing committed), so an audit never disturbs the
processors. Bounds are per partition: an offset applies to every partition, a time is resolved to
each partition's first offset at or after it. Undecodable records are reported, never skipped.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from kaizen.schemas.codec import Codec, DecodeError
from kaizen.schemas.records import to_json
from kaizen.streams.clients import consumer_config


@dataclass(frozen=True)
class Bounds:
    """A range of a topic: offsets are inclusive-from, exclusive-to; times are UTC ms."""

    from_offset: int | None = None
    to_offset: int | None = None
    from_time_ms: int | None = None
    to_time_ms: int | None = None


@dataclass(frozen=True)
class ReplayedRecord:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: str | None
    schema: str | None
    value: dict[str, Any] | None
    error: str | None = None
    event: Any = field(default=None, repr=False, compare=False)  # the decoded model object

    def as_json(self) -> dict[str, Any]:
        fields = dataclasses.fields(self)
        return {f.name: getattr(self, f.name) for f in fields if f.name != "event"}


class RawRecord(NamedTuple):
    """A record as stored: its position and bytes (a tuple: bulk reads make millions)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes


def matches(value: Mapping[str, Any], where: Mapping[str, str]) -> bool:
    """`field=value` filters; a field is a dotted path or a name found at the top or in payload."""
    for path, expected in where.items():
        found = _lookup(value, path)
        if found is None or str(found) != expected:
            return False
    return True


def _lookup(value: Mapping[str, Any], path: str) -> Any:
    current: Any = value
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            current = None
            break
        current = current[part]
    if current is None and "." not in path and isinstance(value.get("payload"), Mapping):
        return value["payload"].get(path)
    return current


def _start_offsets(
    consumer: Consumer, topic: str, partitions: list[int], bounds: Bounds
) -> dict[int, int]:
    starts: dict[int, int] = {}
    if bounds.from_time_ms is not None:
        wanted = [TopicPartition(topic, p, bounds.from_time_ms) for p in partitions]
        for tp in consumer.offsets_for_times(wanted, timeout=10):
            starts[tp.partition] = tp.offset
    for p in partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        start = starts.get(p, low)
        if start < 0 or start == OFFSET_END:
            start = high
        if bounds.from_offset is not None:
            start = max(start, bounds.from_offset)
        starts[p] = max(start, low)
    return starts


def _end_offsets(
    consumer: Consumer, topic: str, partitions: list[int], bounds: Bounds
) -> dict[int, int]:
    ends: dict[int, int] = {}
    for p in partitions:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        ends[p] = high if bounds.to_offset is None else min(high, bounds.to_offset)
    if bounds.to_time_ms is not None:
        wanted = [TopicPartition(topic, p, bounds.to_time_ms) for p in partitions]
        for tp in consumer.offsets_for_times(wanted, timeout=10):
            if tp.offset >= 0:
                ends[tp.partition] = min(ends[tp.partition], tp.offset)
    return ends


class TopicReader:
    """Reads a bounded range of one topic; `total` is known before reading (for progress)."""

    def __init__(self, bootstrap: str, topic: str, bounds: Bounds, codec: Codec | None = None,
                 client: dict[str, Any] | None = None):  # client: e.g. SASL (streams/acls.py)
        self.topic = topic
        self._codec = codec or Codec()
        # A reader drains its queue as fast as the broker fills it: when the local queue hits
        # its size bound, librdkafka pauses fetching for fetch.queue.backoff.ms (default 1 s),
        # which stalled long reads for a second at a time.
        self._consumer = Consumer(
            consumer_config(bootstrap, f"kaizen-replay-{uuid.uuid4().hex}",
                            **{"enable.auto.offset.store": False, "fetch.queue.backoff.ms": 10,
                               **(client or {})})
        )
        metadata = self._consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            self._consumer.close()
            raise ValueError(f"topic {topic!r} does not exist")
        partitions = sorted(metadata.partitions)
        self.starts = _start_offsets(self._consumer, topic, partitions, bounds)
        self.ends = _end_offsets(self._consumer, topic, partitions, bounds)
        self.total = sum(max(0, self.ends[p] - self.starts[p]) for p in partitions)

    def records(self) -> Iterator[ReplayedRecord]:
        """Every record in range, decoded, partition by partition interleaved as served."""
        for batch in self._batches(500):
            for message in batch:
                yield self._decoded(message)

    def raw_batches(self) -> Iterator[list[RawRecord]]:
        """Every record in range, undecoded, a consumer batch at a time: for bulk readers that
        decode elsewhere (a generator step per record would cost more than the read itself)."""
        for batch in self._batches(10_000):
            yield [RawRecord(m.topic(), m.partition(), m.offset(), m.timestamp()[1], m.key(),
                             m.value() or b"") for m in batch]

    def _batches(self, size: int) -> Iterator[list[Any]]:
        remaining = {p for p in self.starts if self.ends[p] > self.starts[p]}
        self._consumer.assign(
            [TopicPartition(self.topic, p, self.starts[p]) for p in sorted(remaining)]
        )
        # Ask for no more than the range still holds: consume() waits out its timeout when fewer
        # messages than asked for exist, which would cost a second at the end of every range.
        left, ends = self.total, self.ends
        try:
            while remaining:
                kept = []
                for message in self._consumer.consume(max(1, min(size, left)), timeout=1.0):
                    if message.error() is not None:
                        continue
                    partition, offset = message.partition(), message.offset()
                    if partition not in remaining or offset is None:
                        continue
                    if offset >= ends[partition]:
                        remaining.discard(partition)
                        continue
                    kept.append(message)
                    if offset + 1 >= ends[partition]:
                        remaining.discard(partition)
                left -= len(kept)
                if kept:
                    yield kept
        finally:
            self._consumer.close()

    def _decoded(self, message: Any) -> ReplayedRecord:
        key = message.key()
        base = dict(
            topic=message.topic(),
            partition=message.partition(),
            offset=message.offset(),
            timestamp_ms=message.timestamp()[1],
            key=key.decode(errors="replace") if key is not None else None,
        )
        try:
            decoded = self._codec.decode_full(message.value() or b"")
        except DecodeError as error:
            return ReplayedRecord(**base, schema=None, value=None, error=str(error))
        return ReplayedRecord(**base, schema=decoded.schema, value=to_json(decoded.event),
                              event=decoded.event)
