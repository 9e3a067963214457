"""Parse τ-bench (v1, sierra-research/tau-bench) result files into imported episodes.

A file is a JSON list (usually gzip-compressed) of runs `{task_id, trial, reward, info, traj}`:
`traj` is an OpenAI chat-completions message list (system policy, user, assistant with
`tool_calls[].function{name, arguments}`, `tool` messages), `info.task.user_id` the customer.
Variants seen in published results, all read:
- tool messages paired by `tool_call_id`, or only by `name` when calls carry no id;
- `arguments` as a JSON string, a Python-literal string (`{'order_id': '#W1'}`), or an object;
- an `info.error` / `traceback` when the run crashed (the trajectory up to the crash is kept).

A tool result whose content starts with `Error:` is a failure (τ-bench's own convention; a
program-style agent's `# var_0 = "Error: ..."` too). Tool messages pair by `tool_call_id`, else by
`name`, else in call order. The task is the first user message, the task type the domain named by
the policy's title (`# Retail agent policy`), the agent `tau-bench` (one scope for every variant),
and the agent version the file name's run part (`tool-calling-grok-3-0.0` in
`tool-calling-grok-3-0.0_range_0--1_user-...json`). The files carry no times: the
importer places their runs in file order (`kaizen.importers.timeline`). Entries that are not runs
are `Skipped`; a truncated or malformed file yields a `ReadError` after every run before it.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from kaizen.errors import KaizenError
from kaizen.importers.jsonstream import JsonPositionError, JsonStream, read_text
from kaizen.importers.model import (
    ERROR_LIMIT,
    OUTPUT_LIMIT,
    ImportedEpisode,
    ImportedStep,
    ReadError,
    Skipped,
    episode_id_for,
    truncate,
)

NO_RESULT = "no tool result recorded"
ERROR_PREFIX = "Error:"
_POLICY_TITLE = re.compile(r"^\s*#\s*(\w+)\s+agent\s+policy", re.IGNORECASE)
_RUN_NAME = re.compile(r"^(?:.*__)?(?P<run>.+?)_range_")
_ASSIGNED_ERROR = re.compile(r'^#\s*\w+\s*=\s*(?P<value>"Error:.*")$', re.DOTALL)


class _Malformed(KaizenError, ValueError):
    """A run that cannot be read; its message is the Skipped reason."""


def parse_tau_bench(path: str | Path) -> Iterator[ImportedEpisode | Skipped]:
    """Yield one `ImportedEpisode` per run of a τ-bench results list."""
    path = Path(path)
    text, problem = read_text(path)
    version = agent_version_of(path.name)
    read = 0
    try:
        for index, item in enumerate(JsonStream(text).array_items()):
            read += 1
            source = f"{path.name}[{index}]"
            try:
                yield _episode(path.name, version, source, index, item)
            except _Malformed as error:
                yield Skipped(source, str(error))
    except JsonPositionError as error:
        cause = f"{problem}; " if problem else ""
        yield ReadError(path.name, f"{cause}cannot read on: {error} ({read:,} runs read "
                                   "before it are kept)")
        return
    if read == 0:
        yield Skipped(path.name, "no runs found")


def agent_version_of(file_name: str) -> str:
    """The run part of a τ-bench result name (agent strategy, model, temperature)."""
    stem = file_name.removesuffix(".gz").removesuffix(".json")
    match = _RUN_NAME.match(stem)
    return match["run"] if match else stem


def _episode(file_name: str, version: str, source: str, index: int, item: Any) -> ImportedEpisode:
    if not isinstance(item, dict):
        raise _Malformed("run is not an object")
    traj = item.get("traj")
    if not isinstance(traj, list) or not all(isinstance(m, dict) for m in traj):
        raise _Malformed("no traj message list")
    task = next((m["content"].strip() for m in traj if m.get("role") == "user"
                 and isinstance(m.get("content"), str) and m["content"].strip()), "")
    if not task:
        raise _Malformed("no user message")
    reward = item.get("reward")
    if isinstance(reward, bool) or not isinstance(reward, int | float):
        reward = None
    task_id = str(item.get("task_id", ""))
    domain = _domain(traj)
    return ImportedEpisode(
        episode_id=episode_id_for("tau-bench", file_name, task_id, str(item.get("trial")),
                                  str(index)),
        task=task,
        task_type=domain,
        user=_user(item.get("info")),
        steps=_steps(traj),
        outcome="abandoned" if reward is None else "success" if reward > 0 else "failure",
        reward=None if reward is None else float(reward),
        reflections=[],
        source=source,
        task_id=task_id,
        agent_version=version,
        agent="tau-bench",
    )


def _domain(traj: list[dict[str, Any]]) -> str:
    system = next((m.get("content") for m in traj if m.get("role") == "system"), None)
    match = _POLICY_TITLE.match(system) if isinstance(system, str) else None
    return match[1].lower() if match else ""


def _user(info: Any) -> str | None:
    task = info.get("task") if isinstance(info, dict) else None
    user = task.get("user_id") if isinstance(task, dict) else None
    return user if isinstance(user, str) else None


class _Call:
    def __init__(self, name: str, call_id: str | None, arguments: dict[str, object]) -> None:
        self.name, self.call_id, self.arguments = name, call_id, arguments
        self.result: Mapping[str, Any] | None = None


def _steps(traj: list[dict[str, Any]]) -> list[ImportedStep]:
    """Calls in order; a tool message answers the call with its `tool_call_id`, or else the
    earliest unanswered call of the tool it names."""
    calls: list[_Call] = []
    for message in traj:
        if message.get("role") == "assistant":
            calls += [_call(c) for c in _tool_calls(message)]
        elif message.get("role") == "tool":
            waiting = _waiting_for(calls, message)
            if waiting is not None:
                waiting.result = message
    return [_step(call) for call in calls]


def _tool_calls(message: Mapping[str, Any]) -> list[Any]:
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise _Malformed("tool_calls is not a list")
    return calls


def _call(raw: Any) -> _Call:
    function = raw.get("function") if isinstance(raw, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise _Malformed("tool call without a function name")
    call_id = raw.get("id")
    return _Call(function["name"], call_id if isinstance(call_id, str) else None,
                 parse_arguments(function.get("arguments")))


def _waiting_for(calls: list[_Call], message: Mapping[str, Any]) -> _Call | None:
    call_id = message.get("tool_call_id")
    if isinstance(call_id, str):
        found = next((c for c in calls if c.call_id == call_id and c.result is None), None)
        if found is not None:
            return found
    name = message.get("name")
    if isinstance(name, str):
        return next((c for c in calls if c.name == name and c.result is None), None)
    return next((c for c in calls if c.result is None), None)  # unnamed: answers in call order


def parse_arguments(value: Any) -> dict[str, object]:
    """Arguments as an object: JSON text, a Python literal (some agents printed a dict's repr), or
    an object already; anything else is kept whole under `_raw`, as the model wrote it."""
    if isinstance(value, dict):
        return value
    if value is None or value == "":
        return {}
    text = value if isinstance(value, str) else json.dumps(value)
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        try:
            parsed = ast.literal_eval(text[:20_000])
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            parsed = None
    return parsed if isinstance(parsed, dict) else {"_raw": text}


def _step(call: _Call) -> ImportedStep:
    if call.result is None:
        return ImportedStep(call.name, call.arguments, False, NO_RESULT, None, None)
    content = call.result.get("content")
    text = content if isinstance(content, str) else json.dumps(content)
    error = tool_error(text)
    if error is not None:
        return ImportedStep(call.name, call.arguments, False, truncate(error, ERROR_LIMIT), None,
                            None)
    return ImportedStep(call.name, call.arguments, True, None, truncate(text, OUTPUT_LIMIT), None)


def tool_error(text: str) -> str | None:
    """The error of a tool result: content starting with `Error:`, also when a program-style
    agent printed it as an assignment (`# var_0 = "Error: user not found"`)."""
    stripped = text.strip()
    if stripped.startswith(ERROR_PREFIX):
        return stripped
    match = _ASSIGNED_ERROR.match(stripped)
    if match:
        try:
            value = json.loads(match["value"])
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, str) and value.startswith(ERROR_PREFIX) else None
    return None
