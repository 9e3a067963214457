"""Consumer lag from the broker's own facts: end offsets and committed group offsets.

A pipeline stage is done with its input when its consumer group has committed every partition up
to the end offset. `drained(...)` asks that for several groups at once and says which stage still
lags, so a caller (the backtest, a benchmark) waits for facts, never for a guessed duration.
Probing never joins a group: committed offsets are read with a consumer that does not subscribe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

Offsets = dict[tuple[str, int], int]
_TIMEOUT = 10.0


def broker_answers(bootstrap: str, timeout: float = 3.0) -> bool:
    """True when a broker at `bootstrap` returns cluster metadata within `timeout` seconds."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": int(timeout * 1000),
                         "log_level": 0})  # a refused connection is the answer, not an error
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException:
        return False
    return True


@dataclass(frozen=True)
class Lag:
    """What a group still has to read, per (topic, partition); empty when it is caught up."""

    group: str
    behind: Mapping[tuple[str, int], int]

    @property
    def total(self) -> int:
        return sum(self.behind.values())


class LagProbe:
    """Reads end offsets and committed offsets in batched admin requests (one per kind and
    group), so a probe stays cheap on a loaded broker; close after use."""

    def __init__(self, bootstrap: str, client: Mapping[str, Any] | None = None) -> None:
        self._admin = AdminClient({"bootstrap.servers": bootstrap, **(client or {})})
        self._partitions: dict[str, list[int]] = {}

    def _partitions_of(self, topics: Sequence[str]) -> list[tuple[str, int]]:
        missing = [t for t in topics if t not in self._partitions]
        if missing:
            metadata = self._admin.list_topics(timeout=_TIMEOUT).topics
            for topic in missing:
                if topic in metadata and metadata[topic].partitions:
                    self._partitions[topic] = sorted(metadata[topic].partitions)
        return [(t, p) for t in topics for p in self._partitions.get(t, [])]

    def end_offsets(self, topics: Sequence[str]) -> Offsets:
        partitions = self._partitions_of(topics)
        if not partitions:
            return {}
        request = {TopicPartition(t, p): OffsetSpec.latest() for t, p in partitions}
        futures = self._admin.list_offsets(request, request_timeout=_TIMEOUT)
        return {(tp.topic, tp.partition): int(future.result().offset)
                for tp, future in futures.items()}

    def committed(self, group: str, partitions: Sequence[tuple[str, int]]) -> Offsets:
        """The next offset `group` will read per partition (0 where it never committed)."""
        if not partitions:
            return {}
        request = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p) for t, p in partitions])
        future = self._admin.list_consumer_group_offsets([request], request_timeout=_TIMEOUT)
        answer = future[group].result()
        return {(tp.topic, tp.partition): max(int(tp.offset), 0)
                for tp in answer.topic_partitions or []}

    def lags(self, groups: Mapping[str, Sequence[str]], ends: Offsets | None = None
             ) -> list[Lag]:
        """Per group (group id -> topics it reads), how far it is behind the end offsets
        (`ends`, or read now)."""
        if ends is None:
            ends = self.end_offsets(sorted({t for topics in groups.values() for t in topics}))
        out = []
        for group, topics in groups.items():
            mine = [tp for tp in ends if tp[0] in topics]
            done = self.committed(group, mine)
            out.append(Lag(group, {tp: ends[tp] - done.get(tp, 0) for tp in mine
                                   if ends[tp] > done.get(tp, 0)}))
        return out

    def lag(self, group: str, topics: Sequence[str]) -> int | None:
        """Records of `topics` that `group` has not committed yet; None if the broker did not
        answer (the caller reports that, it does not guess)."""
        by_topic = self.lag_by_topic(group, topics)
        return None if by_topic is None else sum(by_topic.values())

    def lag_by_topic(self, group: str, topics: Sequence[str]) -> dict[str, int] | None:
        """`lag` per topic (every topic named, 0 when caught up); `/health` reports this."""
        try:
            behind = self.lags({group: topics})[0].behind
        except KafkaException:
            return None
        out = dict.fromkeys(topics, 0)
        for (topic, _), count in behind.items():
            out[topic] += count
        return out

    def close(self) -> None:
        """Nothing to release (admin clients have no open consumer state)."""


def wait_drained(probe: LagProbe, groups: Mapping[str, Sequence[str]], *, timeout: float,
                 poll: float = 0.05, stop: threading.Event | None = None) -> list[Lag]:
    """Wait until every group has committed up to the end of its topics and the end offsets
    held still while that was checked (so no stage was about to write more). Returns [] when
    drained, or the lags left when `timeout` seconds passed."""
    waiter = stop or threading.Event()
    deadline = time.monotonic() + timeout
    topics = sorted({t for group_topics in groups.values() for t in group_topics})
    lags: list[Lag] = []
    while True:
        try:
            before = probe.end_offsets(topics)
            lags = [lag for lag in probe.lags(groups, before) if lag.behind]
            if not lags and before == probe.end_offsets(topics):
                return []
        except KafkaException as error:  # a topic just created has no leader yet: ask again
            if not _retriable(error):
                raise
        if time.monotonic() > deadline:
            return lags
        waiter.wait(poll)


_TRANSIENT = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
              KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
              KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError.NOT_COORDINATOR,
              KafkaError.REQUEST_TIMED_OUT, KafkaError._TIMED_OUT, KafkaError._TRANSPORT}


def _retriable(error: KafkaException) -> bool:
    """Errors of a topic or group that is just being set up (no leader or coordinator yet)."""
    cause = error.args[0] if error.args else None
    if not isinstance(cause, KafkaError):
        return False
    return cause.retriable() or cause.code() in _TRANSIENT
