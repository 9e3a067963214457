"""`kaizen.recall(...)`: the lessons an agent should see for the task at hand.

Asks the running `kaizen serve` (which owns the embedded stores and keeps the in-process index of
the active behavior set current). Without a service it opens the experience library itself, which
works as long as no other process holds the embedded store.

An agent is never hurt by recall: a slow, broken or absent service, a reset connection, an answer
that is not what was asked for, or a busy store all give no lessons and one warning (per reason,
rate-limited), never an exception.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any

from kaizen.schemas import model
from kaizen.schemas.records import from_record
from kaizen.settings import Settings, load_settings
from kaizen.sinks.prompt import render_lessons
from kaizen.sinks.recall_index import Recalled, RecallIndex
from kaizen.streams.limits import limiter
from kaizen.streams.replay import event_as_dict

_warn = limiter(__name__, every=300.0)

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
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            answer = json.loads(response.read())
        return [_from_json(x) for x in answer["lessons"]]
    except urllib.error.HTTPError as error:
        return _no_lessons("recall service answered with an error", error, url)
    except urllib.error.URLError as error:
        if isinstance(error.reason, ConnectionRefusedError):  # no service: ask the library
            return _recall_without_service(settings, body)
        return _no_lessons("recall service did not answer", error, url)  # reset, timeout
    except (OSError, http.client.HTTPException) as error:  # timeout, reset, truncated answer
        return _no_lessons("recall service did not answer", error, url)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        return _no_lessons("recall service gave an answer that is not lessons", error, url)


def _no_lessons(reason: str, error: BaseException, where: str) -> list[Recalled]:
    _warn.warning(reason + "; no lessons this time", error=repr(error), where=where)
    return []


def _recall_without_service(settings: Settings, body: Mapping[str, Any]) -> list[Recalled]:
    try:
        from kaizen.service import open_library

        library = open_library(settings)
    except Exception as error:  # noqa: BLE001 - store busy, not installed, unreadable
        return _no_lessons("no recall service and the library cannot be opened", error,
                           str(settings.home))
    try:
        index = RecallIndex(library.embedder)
        index.load(library.scroll(tenant=body["tenant"], agent=body["agent"]))
        return [_from_json(x) for x in recall_from_index(index, body)["lessons"]]
    except Exception as error:  # noqa: BLE001 - whatever the embedded store raises
        return _no_lessons("recall from the library failed", error, str(settings.home))
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
