"""The snapshot log folded from the broker: what the embedded recall and the CLI need to serve
exactly the behavior the log says, without a running service."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kaizen.processors.learning import snapshots
from kaizen.processors.learning.snapshots import SnapshotLog
from kaizen.schemas import model
from kaizen.streams.replay import Bounds, TopicReader


def read_log(bootstrap: str, topic: str, client: Mapping[str, Any] | None = None
             ) -> SnapshotLog:
    """The snapshot log folded from offset 0 (`client`: a Kafka login, e.g. SASL)."""
    state = SnapshotLog()
    for record in TopicReader(bootstrap, topic, Bounds(), client=dict(client or {})).records():
        if isinstance(record.event, model.SnapshotEvent):
            state = snapshots.apply(state, record.event, record.offset)
    return state
