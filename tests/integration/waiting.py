"""Waiting for facts, never for time: consumer groups caught up with their topics, an HTTP answer.

A pipeline stage is done with its input when its consumer group's committed offsets reach the end
offsets of every partition it reads. The processors commit only after their outputs are delivered
and the sinks only after a flush to the stores, so "every group caught up, observed at once" means
nothing is in flight.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from kaizen.processors.config import CURATION_TOPIC, TOOL_RESULTS_TOPIC
from kaizen.streams.topics import Topics

T = TypeVar("T")


def wait_for(what: str, fact: Callable[[], T], timeout: float = 120.0, every: float = 0.2) -> T:
    """Ask `fact()` until it is truthy and return it; an exception counts as "not yet"."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = fact()
        except Exception as error:  # noqa: BLE001 - the service may not answer yet
            value, last = None, error
        else:
            if value:
                return value
            last = value
        time.sleep(every)
    raise AssertionError(f"waited {timeout:.0f}s for {what}; last: {str(last)[:300]}")


def lag(bootstrap: str, group: str, topics: Sequence[str]) -> int:
    """Records of `topics` that `group` has not committed yet (a topic not created yet: none)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    listed = admin.list_topics(timeout=10).topics
    partitions = [TopicPartition(t, p) for t in topics if t in listed for p in listed[t].partitions]
    if not partitions:
        return 0
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                      "enable.auto.commit": False})
    try:
        committed = {(tp.topic, tp.partition): tp.offset
                     for tp in probe.committed(partitions, timeout=10)}
        behind = 0
        for tp in partitions:
            _, high = probe.get_watermark_offsets(tp, timeout=10)
            behind += max(0, high - max(committed[(tp.topic, tp.partition)], 0))
        return behind
    finally:
        probe.close()


def wait_until_consumed(bootstrap: str, groups: Mapping[str, Sequence[str]],
                        timeout: float = 180.0) -> None:
    """Until every group has committed the end of every topic it reads, in one observation."""
    wait_for(f"no lag in {sorted(groups)}",
             lambda: all(lag(bootstrap, g, t) == 0 for g, t in groups.items()), timeout, 0.5)


def processors_group(prefix: str) -> dict[str, list[str]]:
    """The processors' consumer group and the topics it reads (episodes and internal hops)."""
    return {f"{prefix}-processors": [Topics(prefix).episodes, f"{prefix}.{TOOL_RESULTS_TOPIC}",
                                     f"{prefix}.{CURATION_TOPIC}"]}


def sinks_group(prefix: str) -> dict[str, list[str]]:
    """The service's sink runner group and the topics it reads."""
    t = Topics(prefix)
    return {f"{prefix}-sinks-v1": [t.episodes, t.signals, t.patterns, t.experiences, t.snapshots]}


def wait_for_pipeline(bootstrap: str, prefix: str, *, sinks: bool = True,
                      timeout: float = 180.0) -> None:
    """Until the processors (and the sinks) have consumed everything produced so far."""
    groups = processors_group(prefix) | (sinks_group(prefix) if sinks else {})
    wait_until_consumed(bootstrap, groups, timeout)


def group_members_with_partitions(bootstrap: str, group: str) -> int:
    """How many members of `group` hold at least one partition now."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    described = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return sum(1 for m in described.members if m.assignment.topic_partitions)
