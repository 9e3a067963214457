"""Recall without a running service: open the embedded experience library in this process.

Needs the server install (Qdrant, the embedder) and works only while no other process holds the
embedded store; `kaizen serve` is the normal way, this is the fallback `kaizen.recall` takes when
nothing answers on the service port.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from kaizen.client.snapshot_log import read_log
from kaizen.processors.learning.recallable import recall_view
from kaizen.processors.learning.snapshots import SnapshotLog
from kaizen.readmodel.index import RecallIndex, recall_from_index
from kaizen.readmodel.lesson import Recalled, lesson_from_json
from kaizen.settings import Settings
from kaizen.sinks.qdrant_library import ExperienceLibrary
from kaizen.streams.topics import Topics

log = structlog.get_logger(__name__)


def open_library(settings: Settings) -> ExperienceLibrary:
    """The experience library the settings point at: a Qdrant server, or the embedded one."""
    if settings.qdrant_url:
        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return ExperienceLibrary.open(url=settings.qdrant_url, api_key=key)
    settings.home.mkdir(parents=True, exist_ok=True)
    return ExperienceLibrary.open(path=settings.qdrant_path)


def recall_embedded(settings: Settings, body: Mapping[str, Any]) -> list[Recalled]:
    """Answer one recall request (the HTTP body format) from the library itself."""
    library = open_library(settings)
    try:
        index = RecallIndex(library.embedder, min_score=settings.recall_min_score)
        index.load(library.scroll(tenant=body["tenant"], agent=body["agent"]))
        apply_snapshot_log(index, _snapshot_log(settings), body["tenant"], body["agent"])
        return [lesson_from_json(x) for x in recall_from_index(index, body)["lessons"]]
    finally:
        library.close()


def apply_snapshot_log(index: RecallIndex, log: SnapshotLog, tenant: str, agent: str) -> None:
    """Serve what the snapshot log says (the same fold as the service's behavior manager)."""
    view = recall_view(log, tenant, agent)
    index.set_active(tenant, agent, view.active, view.excluded)


def _snapshot_log(settings: Settings) -> SnapshotLog:
    """The snapshot log folded from offset 0; empty (all proposed lessons) if the broker is not
    reachable, which is said in the log: recall must not block an agent."""
    try:
        return read_log(settings.bootstrap, Topics(settings.topic_prefix).snapshots,
                        settings.kafka_client)
    except Exception as exc:  # noqa: BLE001 - any broker failure: serve, and say so
        log.warning("recall without the snapshot log", error=str(exc))
        return SnapshotLog()
