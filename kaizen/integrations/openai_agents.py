"""OpenAI Agents SDK: a trace processor that records each run as an episode, and lessons in the
agent's instructions.

    from agents import Agent, Runner, add_trace_processor
    from kaizen import Recorder
    from kaizen.integrations.openai_agents import KaizenTraceProcessor, with_lessons
    add_trace_processor(KaizenTraceProcessor(Recorder(agent="shop-bot", tenant="acme")))
    result = Runner.run_sync(with_lessons(agent, question, tenant="acme"), question)

One SDK trace (a `Runner.run`, or a `trace(...)` block around several) is one episode. Function
tool spans become a tool call and its result (a span error is a failed result with its message),
generation and response spans become LLM calls with token usage, and the trace's end ends the
episode: a failure if an agent span or the last tool span errored. The episode's task is the
trace metadata's `task` when given, else the trace name. `agents` is imported lazily.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from typing import Any

from kaizen.client.recall import recall
from kaizen.readmodel.prompt import render_lessons
from kaizen.streams.episode import Episode
from kaizen.streams.recorder import Recorder

TEXT_LIMIT = 4000


def _ms(stamp: str | None) -> int | None:
    return int(datetime.fromisoformat(stamp).timestamp() * 1000) if stamp else None


def _arguments(raw: Any) -> dict[str, Any]:
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return {"input": raw}
    return value if isinstance(value, dict) else {"input": value}


def _usage(usage: Any) -> tuple[int, int]:
    if usage is None:
        return 0, 0
    get = usage.get if isinstance(usage, dict) else lambda k, d=0: getattr(usage, k, d)
    return int(get("input_tokens", 0) or 0), int(get("output_tokens", 0) or 0)


class _Open:
    def __init__(self, episode: Episode) -> None:
        self.episode = episode
        self.failed = False


class KaizenTraceProcessor:
    """A `TracingProcessor` (duck-typed, so importing this module needs no `agents`)."""

    def __init__(self, recorder: Recorder, *, user: str | None = None) -> None:
        self.recorder, self.user = recorder, user
        self._open: dict[str, _Open] = {}
        self._lock = threading.Lock()

    def on_trace_start(self, trace: Any) -> None:
        metadata = getattr(trace, "metadata", None) or {}
        task = str(metadata.get("task") or trace.name)[:TEXT_LIMIT]
        episode = self.recorder.episode(task, user=metadata.get("user") or self.user)
        episode.start()
        with self._lock:
            self._open[trace.trace_id] = _Open(episode)

    def on_trace_end(self, trace: Any) -> None:
        with self._lock:
            entry = self._open.pop(trace.trace_id, None)
        if entry is not None:
            entry.episode.end(success=not entry.failed)

    def on_span_start(self, span: Any) -> None:
        return

    def on_span_end(self, span: Any) -> None:
        with self._lock:
            entry = self._open.get(span.trace_id)
        if entry is None:
            return
        data, error = span.span_data, span.error
        kind = getattr(data, "type", "")
        if kind == "function":
            self._tool(entry, span, data, error)
        elif kind in ("generation", "response"):
            usage = getattr(data, "usage", None)
            response = getattr(data, "response", None)
            if usage is None and response is not None:
                usage = getattr(response, "usage", None)
            model = getattr(data, "model", None) or getattr(response, "model", "") or "unknown"
            tokens_in, tokens_out = _usage(usage)
            entry.episode.llm_call(str(model), input_tokens=tokens_in, output_tokens=tokens_out,
                                   occurred_at=_ms(span.ended_at))
        elif kind == "agent" and error:
            entry.failed = True

    def _tool(self, entry: _Open, span: Any, data: Any, error: Any) -> None:
        name = str(data.name)
        call_id = entry.episode.tool_call(name, _arguments(data.input),
                                          occurred_at=_ms(span.started_at))
        message = None
        if error:
            detail = error.get("data") or {}
            message = str(detail.get("error") or error.get("message") or "tool error")
        entry.failed = bool(error)
        entry.episode.tool_result(name, ok=not error, error=message[:TEXT_LIMIT] if message
                                  else None, output=str(data.output)[:TEXT_LIMIT]
                                  if data.output is not None else None, call_id=call_id,
                                  occurred_at=_ms(span.ended_at))

    def shutdown(self) -> None:
        self.force_flush()

    def force_flush(self) -> None:
        self.recorder.flush(10)


def instructions_with_lessons(base: str, task: str, *, agent: str, tenant: str,
                              **recall_options: Any) -> str:
    """`base` followed by the lessons recalled for `task`."""
    block = render_lessons(recall(task, agent=agent, tenant=tenant, **recall_options))
    return f"{base}\n\n{block}".strip() if block else base


def with_lessons(sdk_agent: Any, task: str, *, tenant: str, agent: str | None = None,
                 **recall_options: Any) -> Any:
    """A clone of the SDK `Agent` whose instructions carry the lessons recalled for `task`
    (Kaizen agent name: `agent`, default the SDK agent's name). String instructions only."""
    base = sdk_agent.instructions if isinstance(sdk_agent.instructions, str) else ""
    text = instructions_with_lessons(base, task, agent=agent or sdk_agent.name, tenant=tenant,
                                     **recall_options)
    return sdk_agent.clone(instructions=text)
