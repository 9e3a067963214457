"""`kaizen.recall(...)`: the lessons an agent should see for the task at hand.

Asks the running `kaizen serve` (which owns the embedded stores and keeps the in-process index of
the active behavior set current), with `KAIZEN_API_TOKEN` when the service requires tokens.
Without a service it opens the experience library itself (server install only), which works as
long as no other process holds the embedded store.

An agent is never hurt by recall: a slow, broken, refusing or absent service, a reset connection,
an answer that is not what was asked for, or a busy store all give no lessons and one warning
(per reason, rate-limited), never an exception.
"""

from __future__ import annotations

import http.client
import time
import urllib.error
from collections.abc import Iterable, Mapping
from typing import Any

from kaizen.client.api import ApiError, api_base, post_json
from kaizen.client.tracing import traced
from kaizen.processors.learning.signatures import error_signature
from kaizen.readmodel.lesson import Recalled, lesson_from_json
from kaizen.readmodel.prompt import render_lessons
from kaizen.readmodel.relevance import CALL_K, CALL_MARGIN, call_query
from kaizen.settings import Settings, load_settings
from kaizen.streams.limits import limiter

__all__ = ["Recalled", "recall", "recall_for_call", "render_lessons", "what_worked"]
_warn = limiter(__name__, every=300.0)


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
    signature: str | None = None,
    min_score: float | None = None,
) -> list[Recalled]:
    """The `k` most relevant active lessons for `task` within the scope, best first.

    Scope is strict: the tenant always, the agent, and a user's preferences only for that user.
    `signature` is the error signature just hit (`error_signature(tool, error)`): lessons learnt
    from exactly that failure come first ("I just got this error: what worked?"). Lessons
    scoring below `min_score` (default `KAIZEN_RECALL_MIN_SCORE`) are not returned.
    With an OpenTelemetry tracer configured, each recall is a span in the user's traces.
    """
    started = time.time_ns()
    settings = settings or load_settings()
    body = {"task": task, "agent": agent, "tenant": tenant, "user": user,
            "tools": list(tools) if tools is not None else None, "k": k,
            "signature": signature,
            "min_score": settings.recall_min_score if min_score is None else min_score}
    return traced(_ask(settings, body, timeout), body, started)


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


def recall_for_call(
    tool: str,
    arguments: Mapping[str, Any] | Iterable[str],
    *,
    task: str,
    agent: str,
    tenant: str,
    user: str | None = None,
    k: int = CALL_K,
    margin: float | None = CALL_MARGIN,
    settings: Settings | None = None,
    timeout: float = 2.0,
) -> list[Recalled]:
    """Recall at the point of use: the lessons about `tool`, right before calling it with
    `arguments` (a dict, or the argument names). Only lessons about that tool, ranked by the
    task and the call's shape (`relevance.call_query`), at most `k`, none more than `margin`
    below the best: what the agent needs before the call that would fail, and never a lesson
    about a tool it is not calling (README, Recall)."""
    started = time.time_ns()
    settings = settings or load_settings()
    body = {"task": call_query(task, tool, arguments), "agent": agent, "tenant": tenant,
            "user": user, "tool": tool, "k": k, "margin": margin,
            "min_score": settings.recall_min_score}
    return traced(_ask(settings, body, timeout), body, started)


def _ask(settings: Settings, body: dict[str, Any], timeout: float) -> list[Recalled]:
    """The service's answer, or the library's when no service runs; never an exception."""
    where = api_base(settings)
    try:
        answer = post_json(settings, "/recall", body, timeout)
        return [lesson_from_json(x) for x in answer["lessons"]]
    except ApiError as error:  # refused (token, tenant) or failed: say why, never raise
        return _no_lessons("recall service answered with an error", error, where)
    except urllib.error.URLError as error:
        if isinstance(error.reason, ConnectionRefusedError):  # no service: ask the library
            return _recall_without_service(settings, body)
        return _no_lessons("recall service did not answer", error, where)  # reset, timeout
    except (OSError, http.client.HTTPException) as error:  # timeout, reset, truncated answer
        return _no_lessons("recall service did not answer", error, where)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        return _no_lessons("recall service gave an answer that is not lessons", error, where)


def _no_lessons(reason: str, error: BaseException, where: str) -> list[Recalled]:
    _warn.warning(reason + "; no lessons this time", error=repr(error), where=where)
    return []


def _recall_without_service(settings: Settings, body: Mapping[str, Any]) -> list[Recalled]:
    """No service answered: read the embedded library (server install only)."""
    try:
        from kaizen.client.embedded import recall_embedded

        return recall_embedded(settings, body)
    except Exception as error:  # noqa: BLE001 - not installed, store busy, unreadable
        return _no_lessons("no recall service and the library cannot be read", error,
                           str(settings.home))
