"""`kaizen.recall(...)`: the lessons an agent should see for the task at hand.

Asks the running `kaizen serve` (which owns the embedded stores and keeps the in-process index of
the active behavior set current). Without a service it opens the experience library itself, which
works as long as no other process holds the embedded store.
"""

from __future__ import annotations

import urllib.error
from collections.abc import Iterable, Mapping
from typing import Any

import structlog

from kaizen.client.api import ApiError, post_json
from kaizen.readmodel.lesson import Recalled, lesson_from_json
from kaizen.readmodel.prompt import render_lessons
from kaizen.settings import Settings, load_settings

__all__ = ["Recalled", "recall", "render_lessons"]
log = structlog.get_logger(__name__)


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
    try:  # with KAIZEN_API_TOKEN when the service requires tokens
        answer = post_json(settings, "/recall", body, timeout)
    except ApiError as error:  # refused (token, tenant): no lessons, and say why; never raise
        log.error("recall refused by the service", status=error.status, error=str(error))
        return []
    except urllib.error.URLError:
        return _recall_without_service(settings, body)
    return [lesson_from_json(x) for x in answer["lessons"]]


def _recall_without_service(settings: Settings, body: Mapping[str, Any]) -> list[Recalled]:
    """No service answered: read the embedded library (server install only)."""
    from kaizen.client.embedded import recall_embedded

    return recall_embedded(settings, body)
