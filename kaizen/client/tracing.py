"""Recall made visible in the user's own traces: one span per `kaizen.recall(...)`.

Only when `opentelemetry-api` is installed and the application set a real tracer provider (no
provider: nothing is emitted and nothing is imported beyond the check). The span follows the GenAI
retrieval conventions (`retrieval kaizen`, `gen_ai.operation.name=retrieval`,
`gen_ai.data_source.id=kaizen`, `gen_ai.retrieval.query.text`, `gen_ai.retrieval.documents` as
`[{"id", "score"}]`), plus `kaizen.recall.lesson_ids` / `kaizen.recall.scores` arrays; it is a child
of whatever span is current (the agent's `invoke_agent`, say). Tracing never raises into recall.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from importlib.util import find_spec
from typing import Any

import structlog

from kaizen.readmodel.lesson import Recalled

log = structlog.get_logger(__name__)
SPAN_NAME = "retrieval kaizen"
QUERY_LIMIT = 1000


@cache
def _has_otel() -> bool:
    return find_spec("opentelemetry") is not None and find_spec("opentelemetry.trace") is not None


def _tracer() -> Any | None:
    """The application's tracer, or None when it configured no provider."""
    if not _has_otel():
        return None
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    return provider.get_tracer("kaizen.recall")


def traced(lessons: list[Recalled], body: Mapping[str, Any], start_ns: int) -> list[Recalled]:
    """Emit the recall span (started at `start_ns`, ending now) and return `lessons` unchanged."""
    try:
        tracer = _tracer()
        if tracer is not None:
            tracer.start_span(SPAN_NAME, start_time=start_ns,
                              attributes=span_attributes(lessons, body)).end()
    except Exception as error:  # noqa: BLE001 - a tracing problem must never fail a recall
        log.warning("recall span not emitted", reason=str(error))
    return lessons


def span_attributes(lessons: Sequence[Recalled], body: Mapping[str, Any]) -> dict[str, Any]:
    ids = [lesson.experience_id for lesson in lessons]
    scores = [round(float(lesson.score), 6) for lesson in lessons]
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": "kaizen",
        "gen_ai.agent.name": str(body.get("agent", "")),
        "gen_ai.retrieval.query.text": str(body.get("task", ""))[:QUERY_LIMIT],
        "gen_ai.retrieval.documents": json.dumps(
            [{"id": i, "score": s} for i, s in zip(ids, scores, strict=True)]),
        "kaizen.tenant": str(body.get("tenant", "")), "kaizen.recall.k": int(body.get("k", 5)),
        "kaizen.recall.lesson_ids": ids, "kaizen.recall.scores": scores,
    }
    if body.get("user"):
        attributes["user.id"] = str(body["user"])
    return attributes
