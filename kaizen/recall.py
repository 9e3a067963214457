"""`kaizen.recall(...)`: the lessons an agent should see for the task at hand.

Asks the running `kaizen serve` (which owns the embedded stores and keeps the in-process index of
the active behavior set current). Without a service it opens the experience library itself, which
works as long as no other process holds the embedded store.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any

from kaizen.integrations.otel_recall import traced
from kaizen.schemas import model
from kaizen.schemas.records import from_record
from kaizen.settings import Settings, load_settings
from kaizen.sinks.prompt import render_lessons
from kaizen.sinks.recall_index import Recalled, RecallIndex
from kaizen.streams.replay import event_as_dict

__all__ = ["Recalled", "recall", "render_lessons", "recall_from_index"]


def recall_from_index(index: RecallIndex, body: Mapping[str, Any]) -> dict[str, Any]:
    """Serve one recall request (the HTTP API's body format)."""
    lessons = index.recall(
        str(body["task"]), agent=str(body["agent"]), tenant=str(body["tenant"]),
        user=body.get("user"), tools=body.get("tools"), k=int(body.get("k", 5)),
        signature=body.get("signature"),
    )
    return {"lessons": [_as_json(x) for x in lessons], "prompt": render_lessons(lessons)}


def recall(
    task: str,
    *,
    agent: str,
    tenant: str,
    user: str | None = None,
    tools: Iterable[str] | None = None,
    k: int = 5,
    settings: Settings | None = None,
    timeout: float = 2.0,
) -> list[Recalled]:
    """The `k` most relevant active lessons for `task` within the scope, best first.

    Scope is strict: the tenant always, the agent, and a user's preferences only for that user.
    """
    settings = settings or load_settings()
    body = {"task": task, "agent": agent, "tenant": tenant, "user": user,
            "tools": list(tools) if tools is not None else None, "k": k}
    url = f"http://{settings.http_host}:{settings.http_port}/recall"
    request = urllib.request.Request(url, json.dumps(body).encode(),  # noqa: S310 - local http
                                     {"Content-Type": "application/json"})
    started = time.time_ns()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            lessons = [_from_json(x) for x in json.loads(response.read())["lessons"]]
    except urllib.error.URLError:
        lessons = _recall_without_service(settings, body)
    return traced(lessons, body, started)  # a span in the user's traces, when they have any


def _recall_without_service(settings: Settings, body: Mapping[str, Any]) -> list[Recalled]:
    from kaizen.service import open_library

    library = open_library(settings)
    try:
        index = RecallIndex(library.embedder)
        index.load(library.scroll(tenant=body["tenant"], agent=body["agent"]))
        return [_from_json(x) for x in recall_from_index(index, body)["lessons"]]
    finally:
        library.close()


def _as_json(lesson: Recalled) -> dict[str, Any]:
    return {"experience_id": lesson.experience_id, "score": lesson.score,
            "guidance": lesson.guidance, "kind": lesson.kind, "tool": lesson.tool,
            "patch": event_as_dict(lesson.patch) if lesson.patch else None}


def _from_json(data: Mapping[str, Any]) -> Recalled:
    patch = from_record(model.ToolCallPatch, dict(data["patch"])) if data.get("patch") else None
    return Recalled(data["experience_id"], float(data["score"]), data["guidance"], patch,
                    data["kind"], data.get("tool"))
