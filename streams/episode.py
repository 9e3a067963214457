"""The handle an agent holds while it works on one task: each call records one episode event.

It only builds events; the Recorder owns delivery. Calls never raise into the agent for broker
trouble, because a learning system must never be the reason an agent fails.
"""

from __future__ import annotations

import json
import reprlib
import uuid
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol

from kaizen.schemas import model


class EventSink(Protocol):
    """What an episode needs from whoever delivers its events (the Recorder, or a test double):
    the scope stamped on every event, a clock, and a non-blocking `emit`."""

    tenant: str
    agent: str
    agent_version: str
    snapshot_id: str | None

    def now_ms(self) -> int: ...

    def emit(self, event: model.EpisodeEvent) -> None: ...

#: Event ids derive from (episode id, seq): re-importing or re-emitting an episode yields the same
#: ids, so every consumer's de-duplication by event id catches it.
EVENT_ID_NAMESPACE = uuid.UUID("6f1c2b1e-5d0a-4c59-9a43-3f4f7f0c2a11")


class Episode:
    """One task attempt. Use as a context manager; leaving it without `end()` records `abandoned`
    (or `failure` if an exception escapes, which is re-raised)."""

    def __init__(
        self,
        recorder: EventSink,
        task: str,
        *,
        user: str | None = None,
        task_type: str = "",
        episode_id: str | None = None,
        occurred_at: int | None = None,
        task_id: str = "",
        agent_version: str | None = None,
    ) -> None:
        self.recorder = recorder
        self.episode_id = episode_id or str(uuid.uuid4())
        self.task = task
        self.user = user
        self.task_type = task_type
        self.task_id = task_id
        self.agent_version = recorder.agent_version if agent_version is None else agent_version
        self.ended = False
        self._seq = 0
        self._open_calls: dict[str, list[str]] = {}
        self._start_at = occurred_at

    def __enter__(self) -> Episode:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.ended:
            self.end(outcome="failure" if exc_type else "abandoned")

    def start(self) -> None:
        """Record the task; called by `with`, or by hand for long-lived episodes."""
        self._emit(
            model.EpisodeStarted(self.task, self.task_type, self.agent_version, self.task_id),
            self._start_at,
        )

    def llm_call(
        self,
        model_name: str,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        latency_ms: float = 0.0,
        content: str | None = None,
        occurred_at: int | None = None,
    ) -> None:
        """Record a model call; `content` only if you want prompts/responses kept."""
        self._emit(
            model.LlmCall(model_name, input_tokens, output_tokens, latency_ms, content), occurred_at
        )

    def tool_call(
        self,
        tool_name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        call_id: str | None = None,
        occurred_at: int | None = None,
    ) -> str:
        """Record a tool invocation; returns the call id that pairs it with its result."""
        call_id = call_id or f"{self.episode_id}:{self._seq}"
        self._open_calls.setdefault(tool_name, []).append(call_id)
        args = _arguments_json(arguments)
        self._emit(model.ToolCall(call_id, tool_name, args), occurred_at)
        return call_id

    def tool_result(
        self,
        tool_name: str,
        *,
        ok: bool = True,
        error: str | None = None,
        output: str | None = None,
        latency_ms: float = 0.0,
        call_id: str | None = None,
        occurred_at: int | None = None,
    ) -> None:
        """Record what a tool returned; without `call_id` it answers the oldest open call."""
        if call_id is None:
            open_calls = self._open_calls.get(tool_name) or [f"{self.episode_id}:{self._seq}"]
            call_id = open_calls.pop(0)
        elif call_id in self._open_calls.get(tool_name, []):
            self._open_calls[tool_name].remove(call_id)
        result = model.ToolResult(call_id, tool_name, ok, error, output, latency_ms)
        self._emit(result, occurred_at)

    def feedback(
        self,
        *,
        rating: float | None = None,
        correction: str | None = None,
        source: str = "user",
        occurred_at: int | None = None,
    ) -> None:
        """Record a rating in [-1, 1] and/or a correction, by the user or an evaluator."""
        self._emit(model.Feedback(rating, correction, source), occurred_at)

    def recall(
        self, experience_ids: Sequence[str], query: str = "", occurred_at: int | None = None
    ) -> None:
        """Record which experiences were injected into this episode (for per-lesson effect)."""
        self._emit(model.Recall(list(experience_ids), query), occurred_at)

    def what_worked(self, tool: str, error: str, *, k: int = 3) -> list[Any]:
        """"I just got this error: what worked?" -- the lessons learnt from this very failure
        (same tool and error signature first), to fix the next call of an episode in flight.

        Asks the recorder's `on_error_recall(episode, tool, error, k)` (the front-door
        `kaizen.Recorder` wires it to `kaizen.client.recall.what_worked`); [] without one. Records
        nothing itself: call `recall(...)` with the ids you inject."""
        hook = getattr(self.recorder, "on_error_recall", None)
        return list(hook(self, tool, error, k)) if hook is not None else []

    def end(
        self,
        success: bool | None = None,
        *,
        outcome: str | None = None,
        reward: float | None = None,
        occurred_at: int | None = None,
    ) -> None:
        """Close the episode: `success=True/False`, or an explicit outcome."""
        if self.ended:
            return
        chosen = outcome or ("success" if success else "failure" if success is False else None)
        if chosen not in ("success", "failure", "abandoned"):
            raise ValueError("end() needs success=True/False or outcome=success|failure|abandoned")
        self.ended = True
        self._emit(model.EpisodeEnded(chosen, reward), occurred_at)

    def _emit(self, payload: model.EpisodePayload, occurred_at: int | None) -> None:
        event = model.EpisodeEvent(
            event_id=str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{self.episode_id}/{self._seq}")),
            occurred_at=occurred_at if occurred_at is not None else self.recorder.now_ms(),
            tenant=self.recorder.tenant,
            agent=self.recorder.agent,
            episode_id=self.episode_id,
            seq=self._seq,
            payload=payload,
            user=self.user,
            snapshot_id=self.recorder.snapshot_id,
        )
        self._seq += 1
        self.recorder.emit(event)


def _arguments_json(arguments: Mapping[str, Any] | None) -> str:
    """The arguments as JSON; anything JSON cannot write (a cycle, odd keys) is described instead
    of raising into the agent."""
    try:
        return json.dumps(dict(arguments or {}), sort_keys=True, default=str)
    except (TypeError, ValueError, RecursionError):
        return json.dumps({"unserialisable_arguments": reprlib.repr(arguments)})
