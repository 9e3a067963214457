"""Recall without a running service: open the embedded experience library in this process.

Needs the server install (Qdrant, the embedder) and works only while no other process holds the
embedded store; `kaizen serve` is the normal way, this is the fallback `kaizen.recall` takes when
nothing answers on the service port.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kaizen.readmodel.index import RecallIndex, recall_from_index
from kaizen.readmodel.lesson import Recalled, lesson_from_json
from kaizen.settings import Settings
from kaizen.sinks.qdrant_library import ExperienceLibrary


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
        index = RecallIndex(library.embedder)
        index.load(library.scroll(tenant=body["tenant"], agent=body["agent"]))
        return [lesson_from_json(x) for x in recall_from_index(index, body)["lessons"]]
    finally:
        library.close()
