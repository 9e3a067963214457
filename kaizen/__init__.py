"""Kaizen: on-the-job learning for AI agent fleets.

    from kaizen import Recorder, recall
    rec = Recorder(agent="support-bot", tenant="acme")
    with rec.episode(task=question, user=user_id) as ep:
        lessons = recall(question, agent="support-bot", tenant="acme", user=user_id)
        ep.recall([x.experience_id for x in lessons], question)
        ep.tool_call("search", {"q": q}); ep.tool_result("search", ok=False, error=str(e))
        ep.end(success=True)

Rooms (one role each; import-linter keeps the layers, top to bottom):
    kaizen.cli          one module per `kaizen` command
    kaizen.demo         the drifting-world demo and its HTML report
    kaizen.service      `kaizen serve`: host, sink runner, gate, HTTP API, rebuild, local stack
    kaizen.importers    existing agent logs -> episode events (ReAct, OpenAI chat, τ-bench)
    kaizen.client       what an agent process needs: Recorder wiring, the recall client
    kaizen.processors   stream processors (faust app) over pure learning folds
    kaizen.sinks        ClickHouse and Qdrant writers, analytics SQL
    kaizen.readmodel    the recall read model: in-process index, embedder, prompt rendering
    kaizen.streams      everything that talks to Kafka
    kaizen.schemas      Avro schemas, the model, codecs, the JSON converter
    kaizen.settings / kaizen.errors / kaizen.testing / kaizen.logs   shared by all

The front door's names load on first use, so `import kaizen` stays light (no server stack).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kaizen.errors import KaizenError

if TYPE_CHECKING:
    from kaizen.client.recall import Recalled, recall, recall_for_call, render_lessons
    from kaizen.client.recorder import Recorder
    from kaizen.settings import Settings, load_settings

__all__ = ["KaizenError", "Recalled", "Recorder", "Settings", "load_settings", "recall",
           "recall_for_call", "render_lessons"]

_LAZY = {
    "Recorder": "kaizen.client.recorder",
    "recall": "kaizen.client.recall",
    "recall_for_call": "kaizen.client.recall",
    "render_lessons": "kaizen.client.recall",
    "Recalled": "kaizen.client.recall",
    "Settings": "kaizen.settings",
    "load_settings": "kaizen.settings",
}


def __getattr__(name: str) -> Any:
    """PEP 562: import a front-door name's module when the name is first used."""
    if name not in _LAZY:
        raise AttributeError(f"module 'kaizen' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
