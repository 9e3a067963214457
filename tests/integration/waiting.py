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

from confluent_kafka.admin import AdminClient

from kaizen.processors.config import CURATION_TOPIC, TOOL_RESULTS_TOPIC
from kaizen.streams.lag import LagProbe, wait_drained
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


def wait_until_consumed(bootstrap: str, groups: Mapping[str, Sequence[str]],
                        timeout: float = 180.0) -> None:
    """Until every group has committed the end of every topic it reads, in one observation
    (`streams.lag.wait_drained`: the end offsets held still while the lags were read)."""
    probe = LagProbe(bootstrap)
    try:
        left = wait_drained(probe, groups, timeout=timeout, poll=0.5)
    finally:
        probe.close()
    assert not left, f"waited {timeout:.0f}s for the pipeline; still behind: {left}"


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
