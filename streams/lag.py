"""How far a consumer group is behind: committed offsets against the log end, per group.

`/health` asks this for the sinks' and the processors' groups. A group that committed nothing
yet counts from the start of the log (where it will begin reading: `auto.offset.reset=earliest`).
One probe consumer (never subscribed, so it joins no group) answers every question; calls are
serialized because a confluent-kafka client is not meant to be shared across threads.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from confluent_kafka import Consumer, KafkaException, TopicPartition

from kaizen.streams.clients import consumer_config


class LagProbe:
    """Lag of named groups on named topics, from the broker."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._meta = Consumer(consumer_config(bootstrap, "kaizen-lag-probe"))
        self._lock = threading.Lock()

    def lag(self, group: str, topics: Sequence[str], timeout: float = 5.0) -> int | None:
        """Records of `topics` the group has not committed yet; None if the broker did not
        answer in time (the caller reports that, it does not guess)."""
        by_topic = self.lags(group, topics, timeout)
        return None if by_topic is None else sum(by_topic.values())

    def lags(self, group: str, topics: Sequence[str], timeout: float = 5.0
             ) -> dict[str, int] | None:
        """`lag` per topic."""
        with self._lock:
            try:
                parts = self._partitions(topics, timeout)
                committed = self._committed(group, parts, timeout)
                out: dict[str, int] = {}
                for tp in parts:
                    low, high = self._meta.get_watermark_offsets(tp, timeout=timeout)
                    done = committed.get((tp.topic, tp.partition), -1)
                    out[tp.topic] = out.get(tp.topic, 0) + max(0, high - (done if done >= 0
                                                                          else low))
                return out
            except KafkaException:
                return None

    def _partitions(self, topics: Sequence[str], timeout: float) -> list[TopicPartition]:
        meta = self._meta.list_topics(timeout=timeout)
        return [TopicPartition(name, p) for name in topics if name in meta.topics
                for p in sorted(meta.topics[name].partitions)]

    def _committed(self, group: str, parts: list[TopicPartition], timeout: float
                   ) -> dict[tuple[str, int], int]:
        reader = Consumer(consumer_config(self._bootstrap, group))
        try:
            return {(tp.topic, tp.partition): tp.offset
                    for tp in reader.committed(parts, timeout=timeout)}
        finally:
            reader.close()

    def close(self) -> None:
        self._meta.close()
