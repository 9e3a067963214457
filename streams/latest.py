"""The latest version of each keyed record on a topic, read from the log (the source of truth)."""

from __future__ import annotations

from typing import Any

from kaizen.schemas import model
from kaizen.streams.replay import Bounds, TopicReader


def latest_experiences(bootstrap: str, topic: str, client: dict[str, Any] | None = None
                       ) -> list[model.Experience]:
    """Every experience at its highest version, read from the start of the experiences topic."""
    newest: dict[str, model.Experience] = {}
    for record in TopicReader(bootstrap, topic, Bounds(), client=client).records():
        event = record.event
        if not isinstance(event, model.Experience):
            continue
        known = newest.get(event.experience_id)
        if known is None or event.version >= known.version:
            newest[event.experience_id] = event
    return list(newest.values())
