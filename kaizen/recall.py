"""`kaizen.recall(...)`: the lessons an agent should see for the task at hand.

Asks the running `kaizen serve` (which owns the embedded stores and keeps the in-process index of
the active behavior set current). Without a service it opens the experience library itself, which
works as long as no other process holds the embedded store.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any

import structlog

from kaizen.processors.learning.recallable import recall_view
from kaizen.processors.learning.signatures import error_signature
from kaizen.processors.learning.snapshots import SnapshotLog
from kaizen.schemas import model
from kaizen.schemas.records import from_record
from kaizen.settings import Settings, load_settings
from kaizen.sinks.prompt import render_lessons
from kaizen.sinks.recall_index import Recalled, RecallIndex
from kaizen.streams.replay import event_as_dict

__all__ = ["Recalled", "apply_snapshot_log", "recall", "recall_from_index", "render_lessons"]
log = structlog.get_logger(__name__)


def recall_from_index(index: RecallIndex, body: Mapping[str, Any]) -> dict[str, Any]:
    """Serve one recall request (the HTTP API's body format)."""
    lessons = index.recall(
        str(body["task"]), agent=str(body["agent"]), tenant=str(body["tenant"]),
        user=body.get("user"), tools=body.get("tools"), k=int(body.get("k", 5)),
        signature=body.get("signature"),
        min_score=float(body["min_score"]) if body.get("min_score") is not None else None,
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
    signature: str | None = None,
    min_score: float | None = None,
    settings: Settings | None = None,
    timeout: float = 2.0,
) -> list[Recalled]:
    """The `k` most relevant active lessons for `task` within the scope, best first.

    Scope is strict: the tenant always, the agent, and a user's preferences only for that user.
    `signature` is the error signature just hit (`error_signature(tool, error)`): lessons learnt
    from exactly that failure come first ("I just got this error: what worked?"). Lessons
    scoring below `min_score` (default `KAIZEN_RECALL_MIN_SCORE`) are not returned.
    """
    settings = settings or load_settings()
    body = {"task": task, "agent": agent, "tenant": tenant, "user": user,
            "tools": list(tools) if tools is not None else None, "k": k,
            "signature": signature,
            "min_score": settings.recall_min_score if min_score is None else min_score}
    url = f"http://{settings.http_host}:{settings.http_port}/recall"
    request = urllib.request.Request(url, json.dumps(body).encode(),  # noqa: S310 - local http
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            answer = json.loads(response.read())
    except urllib.error.URLError:
        return _recall_without_service(settings, body)
    return [_from_json(x) for x in answer["lessons"]]


def what_worked(
    tool: str,
    error: str,
    *,
    task: str,
    agent: str,
    tenant: str,
    user: str | None = None,
    k: int = 3,
    settings: Settings | None = None,
) -> list[Recalled]:
    """"I just got this error: what worked?" Lessons for `tool` (or no tool) ranked with the
    failure's error signature, so the lesson learnt from exactly this failure comes first."""
    return recall(task, agent=agent, tenant=tenant, user=user, tools=[tool], k=k,
                  signature=error_signature(tool, error), settings=settings)


def _recall_without_service(settings: Settings, body: Mapping[str, Any]) -> list[Recalled]:
    from kaizen.service import open_library

    library = open_library(settings)
    try:
        index = RecallIndex(library.embedder, min_score=settings.recall_min_score)
        index.load(library.scroll(tenant=body["tenant"], agent=body["agent"]))
        apply_snapshot_log(index, _snapshot_log(settings), body["tenant"], body["agent"])
        return [_from_json(x) for x in recall_from_index(index, body)["lessons"]]
    finally:
        library.close()


def apply_snapshot_log(index: RecallIndex, log: SnapshotLog, tenant: str, agent: str) -> None:
    """Serve what the snapshot log says (the same fold as the service's behavior manager)."""
    view = recall_view(log, tenant, agent)
    index.set_active(tenant, agent, view.active, view.excluded)


def _snapshot_log(settings: Settings) -> SnapshotLog:
    """The snapshot log folded from offset 0; empty (all proposed lessons) if the broker is not
    reachable, which is said in the log: recall must not block an agent."""
    from kaizen.snapshot_actions import read_log
    from kaizen.streams.topics import Topics

    try:
        return read_log(settings.bootstrap, Topics(settings.topic_prefix).snapshots)
    except Exception as exc:  # noqa: BLE001 - any broker failure: serve, and say so
        log.warning("recall without the snapshot log", error=str(exc))
        return SnapshotLog()


def _as_json(lesson: Recalled) -> dict[str, Any]:
    return {"experience_id": lesson.experience_id, "score": lesson.score,
            "guidance": lesson.guidance, "kind": lesson.kind, "tool": lesson.tool,
            "patch": event_as_dict(lesson.patch) if lesson.patch else None}


def _from_json(data: Mapping[str, Any]) -> Recalled:
    patch = from_record(model.ToolCallPatch, dict(data["patch"])) if data.get("patch") else None
    return Recalled(data["experience_id"], float(data["score"]), data["guidance"], patch,
                    data["kind"], data.get("tool"))
