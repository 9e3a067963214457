"""LangChain / LangGraph: a callback handler that records episodes, and lessons in the prompt.

    from kaizen import Recorder
    from kaizen.integrations.langchain import KaizenCallbackHandler, with_lessons
    handler = KaizenCallbackHandler(Recorder(agent="shop-bot", tenant="acme"))
    messages = with_lessons([HumanMessage(question)], question, agent="shop-bot", tenant="acme")
    graph.invoke({"messages": messages}, config={"callbacks": [handler]})

Every top-level run (a chain, a LangGraph graph, or a tool or model called on its own) is one
episode: its tool runs become tool calls and results (a tool error is a failed result with the
exception as error text), chat-model ends become LLM calls with token usage, and the run's end or
error ends the episode as success or failure. `langchain-core` is imported lazily: the handler
class is built on first use (`pip install 'kaizen-fleet[langchain]'`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any
from uuid import UUID

from kaizen.client.recall import recall
from kaizen.readmodel.prompt import render_lessons
from kaizen.streams.episode import Episode
from kaizen.streams.recorder import Recorder

TEXT_LIMIT = 4000


class _Runs:
    """Episodes by root run id, and which root every run belongs to (bounded by open runs)."""

    def __init__(self, recorder: Recorder, user: str | None) -> None:
        self.recorder, self.user = recorder, user
        self.episodes: dict[UUID, Episode] = {}
        self.root_of: dict[UUID, UUID] = {}
        self.calls: dict[UUID, tuple[str, str]] = {}  # tool run -> (tool name, call id)
        self.models: dict[UUID, str] = {}
        self.lock = threading.Lock()

    def enter(self, run_id: UUID, parent: UUID | None, task: Callable[[], str]) -> Episode:
        with self.lock:
            root = self.root_of.get(parent, parent) if parent is not None else run_id
            self.root_of[run_id] = root
            episode = self.episodes.get(root)
            if episode is None:
                episode = self.episodes[root] = self.recorder.episode(task(), user=self.user)
                episode.start()
            return episode

    def episode_of(self, run_id: UUID) -> Episode | None:
        with self.lock:
            return self.episodes.get(self.root_of.get(run_id, run_id))

    def leave(self, run_id: UUID, ok: bool) -> None:
        with self.lock:
            root = self.root_of.pop(run_id, run_id)
            self.calls.pop(run_id, None)
            self.models.pop(run_id, None)
            episode = self.episodes.pop(run_id, None) if root == run_id else None
            if episode is not None:
                self.root_of = {r: p for r, p in self.root_of.items() if p != run_id}
        if episode is not None:
            episode.end(success=ok)


def _task_text(inputs: Any) -> str:
    if isinstance(inputs, Mapping):
        for key in ("input", "question", "query", "task"):
            if isinstance(inputs.get(key), str):
                return str(inputs[key])[:TEXT_LIMIT]
        messages = inputs.get("messages")
        if isinstance(messages, Sequence) and messages:
            return str(getattr(messages[-1], "content", messages[-1]))[:TEXT_LIMIT]
    return (inputs if isinstance(inputs, str) else json.dumps(inputs, default=str))[:TEXT_LIMIT]


def _arguments(input_str: str, inputs: Mapping[str, Any] | None) -> dict[str, Any]:
    if inputs:
        return dict(inputs)
    try:
        value = json.loads(input_str)
    except ValueError:
        return {"input": input_str}
    return value if isinstance(value, dict) else {"input": value}


def _usage(response: Any) -> tuple[str, int, int]:
    """(model, input tokens, output tokens) from an LLMResult, whichever way the model put it."""
    output = response.llm_output or {}
    usage = output.get("token_usage") or output.get("usage") or {}
    model = str(output.get("model_name") or output.get("model") or "")
    tokens_in = usage.get("prompt_tokens", usage.get("input_tokens", 0))
    tokens_out = usage.get("completion_tokens", usage.get("output_tokens", 0))
    for generation in (g for gens in response.generations for g in gens):
        meta = getattr(getattr(generation, "message", None), "usage_metadata", None)
        if meta:
            tokens_in, tokens_out = meta.get("input_tokens", 0), meta.get("output_tokens", 0)
        response_meta = getattr(getattr(generation, "message", None), "response_metadata", {})
        model = model or str(response_meta.get("model_name", ""))
    return model, int(tokens_in or 0), int(tokens_out or 0)


@cache
def _handler_class() -> type:
    from langchain_core.callbacks import BaseCallbackHandler

    class KaizenCallbackHandler(BaseCallbackHandler):
        """Records each top-level run as a Kaizen episode (see the module docstring)."""

        raise_error = False  # a learning system must never be the reason an agent fails

        def __init__(self, recorder: Recorder, *, user: str | None = None) -> None:
            self.runs = _Runs(recorder, user)

        def on_chain_start(self, serialized: dict[str, Any] | None, inputs: Any, *,
                           run_id: UUID, parent_run_id: UUID | None = None, **kw: Any) -> None:
            self.runs.enter(run_id, parent_run_id, lambda: _task_text(inputs))

        def on_chain_end(self, outputs: Any, *, run_id: UUID, **kw: Any) -> None:
            self.runs.leave(run_id, ok=True)

        def on_chain_error(self, error: BaseException, *, run_id: UUID, **kw: Any) -> None:
            self.runs.leave(run_id, ok=False)

        def on_tool_start(self, serialized: dict[str, Any] | None, input_str: str, *,
                          run_id: UUID, parent_run_id: UUID | None = None,
                          inputs: dict[str, Any] | None = None, **kw: Any) -> None:
            name = str((serialized or {}).get("name") or kw.get("name") or "tool")
            episode = self.runs.enter(run_id, parent_run_id, lambda: input_str)
            call_id = episode.tool_call(name, _arguments(input_str, inputs))
            self.runs.calls[run_id] = (name, call_id)

        def on_tool_end(self, output: Any, *, run_id: UUID, **kw: Any) -> None:
            self._tool_result(run_id, ok=True, output=str(getattr(output, "content", output)))

        def on_tool_error(self, error: BaseException, *, run_id: UUID, **kw: Any) -> None:
            self._tool_result(run_id, ok=False, error=f"{type(error).__name__}: {error}")

        def on_chat_model_start(self, serialized: dict[str, Any] | None, messages: Any, *,
                                run_id: UUID, parent_run_id: UUID | None = None,
                                metadata: dict[str, Any] | None = None, **kw: Any) -> None:
            self.runs.enter(run_id, parent_run_id, lambda: _task_text({"messages": messages[0]}))
            self.runs.models[run_id] = str((metadata or {}).get("ls_model_name") or "")

        def on_llm_end(self, response: Any, *, run_id: UUID, **kw: Any) -> None:
            episode = self.runs.episode_of(run_id)
            if episode is not None:
                model, tokens_in, tokens_out = _usage(response)
                episode.llm_call(model or self.runs.models.get(run_id, "") or "unknown",
                                 input_tokens=tokens_in, output_tokens=tokens_out)
            self.runs.leave(run_id, ok=True)

        def on_llm_error(self, error: BaseException, *, run_id: UUID, **kw: Any) -> None:
            self.runs.leave(run_id, ok=False)

        def _tool_result(self, run_id: UUID, ok: bool, error: str | None = None,
                         output: str | None = None) -> None:
            episode = self.runs.episode_of(run_id)
            name, call_id = self.runs.calls.get(run_id) or ("tool", None)
            if episode is not None:
                episode.tool_result(name, ok=ok, error=error[:TEXT_LIMIT] if error else None,
                                    output=output[:TEXT_LIMIT] if output else None,
                                    call_id=call_id)
            self.runs.leave(run_id, ok=ok)

    return KaizenCallbackHandler


def __getattr__(name: str) -> Any:
    if name == "KaizenCallbackHandler":
        return _handler_class()
    raise AttributeError(name)


def system_prompt_with_lessons(base: str, task: str, *, agent: str, tenant: str,
                               user: str | None = None, tools: Sequence[str] | None = None,
                               k: int = 5, **recall_options: Any) -> str:
    """`base` followed by the lessons recalled for `task` ("" lessons: `base` unchanged)."""
    lessons = recall(task, agent=agent, tenant=tenant, user=user, tools=tools, k=k,
                     **recall_options)
    block = render_lessons(lessons)
    return f"{base}\n\n{block}".strip() if block else base


def with_lessons(messages: Sequence[Any], task: str, *, agent: str, tenant: str,
                 **options: Any) -> list[Any]:
    """`messages` with the recalled lessons in the system message (added first if absent)."""
    from langchain_core.messages import SystemMessage

    out = list(messages)
    if out and isinstance(out[0], SystemMessage):
        base = str(out[0].content)
        out[0] = SystemMessage(system_prompt_with_lessons(base, task, agent=agent,
                                                          tenant=tenant, **options))
        return out
    prompt = system_prompt_with_lessons("", task, agent=agent, tenant=tenant, **options)
    return [SystemMessage(prompt), *out] if prompt else out
