"""Parse OpenAI chat-completions trajectories (message lists) into imported episodes.

Accepted files (gzip-compressed or not):
- `.jsonl`: one trajectory per line;
- `.json`: a list of trajectories, or a single trajectory.

A trajectory is a list of messages, or an object `{"messages": [...], "reward"?: float,
"outcome"?: "success"|"failure"|"abandoned", "id"?: str, "user"?: str, "task_type"?: str}`.
The task is the first user message. Each assistant `tool_calls` entry (function name + JSON
`arguments` string) is one step, paired with the `tool` message that has its `tool_call_id`
(the legacy `function_call` / role `function` pair is read too, paired by function name).

Error rule for a tool message: it is an error when its content is a JSON object with a non-empty
`"error"` value, or when its text starts with `Error` (as a word: `Error:`, `Error 404`, not
`Errors`) or `error:`. A call with no tool message at all is recorded as an error
(`no tool result recorded`): the tool never answered, which is what the agent experienced.

Outcome: `outcome` if given; else from `reward` (> 0 success, otherwise failure); else abandoned.
Malformed entries become `Skipped` with a reason; this module never raises for bad input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kaizen.errors import KaizenError
from kaizen.importers.jsonstream import read_text
from kaizen.importers.model import (
    ERROR_LIMIT,
    OUTCOMES,
    OUTPUT_LIMIT,
    ImportedEpisode,
    ImportedStep,
    ReadError,
    Skipped,
    episode_id_for,
    truncate,
)

NO_RESULT = "no tool result recorded"
NO_TRAJECTORIES = "no trajectories found"
_ERROR_TEXT = re.compile(r"^\s*(Error\b|error:)")


class _Malformed(KaizenError, ValueError):
    """A trajectory that cannot be read; its message is the Skipped reason."""


def parse_openai_chat(path: str | Path) -> Iterator[ImportedEpisode | Skipped]:
    """Yield one `ImportedEpisode` per trajectory of a `.json` or `.jsonl` file."""
    path = Path(path)
    found = False
    for source, item in _items(path):
        found = True
        if isinstance(item, Skipped):
            yield item
            continue
        try:
            yield _episode(path.name, source, item)
        except _Malformed as error:
            yield Skipped(source, str(error))
    if not found:
        yield Skipped(path.name, NO_TRAJECTORIES)


def _items(path: Path) -> Iterator[tuple[str, Any]]:
    """(source, decoded trajectory) pairs; undecodable input comes back as a `Skipped`."""
    try:
        text, problem = read_text(path)  # gzip is read directly
    except OSError as error:
        yield path.name, Skipped(path.name, f"cannot read file: {error.strerror}")
        return
    if problem:
        yield path.name, ReadError(path.name, problem)
    if path.name.lower().removesuffix(".gz").endswith(".jsonl"):
        yield from _jsonl_items(path.name, text)
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        yield path.name, Skipped(path.name, f"invalid JSON: {error.msg}")
        return
    if isinstance(data, dict) or (isinstance(data, list) and _is_message_list(data)):
        yield f"{path.name}[0]", data
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield f"{path.name}[{index}]", item
    else:
        yield path.name, Skipped(path.name, "expected a list of trajectories")


def _jsonl_items(name: str, text: str) -> Iterator[tuple[str, Any]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        source = f"{name}:{number}"
        try:
            yield source, json.loads(line)
        except json.JSONDecodeError as error:
            yield source, Skipped(source, f"invalid JSON: {error.msg}")


def _is_message_list(data: list[Any]) -> bool:
    """A bare list of messages is one trajectory, not a list of them."""
    return bool(data) and all(isinstance(m, dict) and "role" in m for m in data)


def _episode(file_name: str, source: str, item: Any) -> ImportedEpisode:
    meta: dict[str, Any] = item if isinstance(item, dict) else {"messages": item}
    messages = meta.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _Malformed("no messages list")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise _Malformed(f"message {index} has no role")
    task = next((_text(m.get("content")) for m in messages if m["role"] == "user"), "")
    if not task.strip():
        raise _Malformed("no user message")
    outcome, reward = _outcome(meta)
    key = str(meta["id"]) if meta.get("id") is not None else source
    return ImportedEpisode(
        episode_id=episode_id_for("openai", file_name, key, task),
        task=task,
        task_type=_optional_str(meta, "task_type") or "",
        user=_optional_str(meta, "user"),
        steps=_steps(messages),
        outcome=outcome,
        reward=reward,
        reflections=[],
        source=source,
    )


def _optional_str(meta: dict[str, Any], key: str) -> str | None:
    value = meta.get(key)
    if value is not None and not isinstance(value, str):
        raise _Malformed(f"{key} is not a string")
    return value


def _outcome(meta: dict[str, Any]) -> tuple[str, float | None]:
    reward = meta.get("reward")
    if reward is not None and (isinstance(reward, bool) or not isinstance(reward, int | float)):
        raise _Malformed("reward is not a number")
    outcome = meta.get("outcome")
    if outcome is not None:
        if outcome not in OUTCOMES:
            raise _Malformed(f"unknown outcome {outcome!r}")
        return outcome, _float(reward)
    if reward is not None:
        return ("success" if reward > 0 else "failure"), float(reward)
    return "abandoned", None


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


@dataclass
class _Call:
    """A call waiting for its result; `key` is ("tool", call id) or ("function", name)."""

    name: str
    arguments: str
    key: tuple[str, str]
    thought: str | None
    result: dict[str, Any] | None = None


def _steps(messages: list[dict[str, Any]]) -> list[ImportedStep]:
    """Steps in call order. A result answers the earliest unanswered call with its key, so logs
    that reuse call ids across turns still pair each result with the call it followed."""
    calls: list[_Call] = []
    for message in messages:
        role = message["role"]
        if role == "assistant":
            thought = _text(message.get("content")).strip() or None
            for name, arguments, key in _calls(message):
                calls.append(_Call(name, arguments, key, thought))
                thought = None  # the reasoning text belongs to the first call it led to
        elif role in ("tool", "function"):
            key = (role, str(message.get("tool_call_id" if role == "tool" else "name")))
            waiting = next((c for c in calls if c.key == key and c.result is None), None)
            if waiting is not None:
                waiting.result = message
    return [_step(c.name, c.arguments, c.result, c.thought) for c in calls]


def _calls(message: dict[str, Any]) -> Iterator[tuple[str, str, tuple[str, str]]]:
    """(function name, arguments string, pairing key) of each call in an assistant message."""
    tool_calls = message.get("tool_calls") or []
    if not isinstance(tool_calls, list):
        raise _Malformed("tool_calls is not a list")
    for call in tool_calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _Malformed("tool call without a function name")
        if not isinstance(call.get("id"), str):
            raise _Malformed("tool call without an id")
        yield function["name"], _arguments_text(function.get("arguments")), ("tool", call["id"])
    legacy = message.get("function_call")
    if isinstance(legacy, dict) and isinstance(legacy.get("name"), str):
        name = legacy["name"]
        yield name, _arguments_text(legacy.get("arguments")), ("function", name)


def _arguments_text(value: Any) -> str:
    if value is None:
        return "{}"
    return value if isinstance(value, str) else json.dumps(value)


def _step(
    name: str, arguments: str, result: dict[str, Any] | None, thought: str | None
) -> ImportedStep:
    args = _parse_arguments(arguments)
    if result is None:
        return ImportedStep(name, args, False, NO_RESULT, None, thought)
    content = _text(result.get("content"))
    error = tool_error(content)
    if error is not None:
        return ImportedStep(name, args, False, truncate(error, ERROR_LIMIT), None, thought)
    return ImportedStep(name, args, True, None, truncate(content, OUTPUT_LIMIT), thought)


def _parse_arguments(text: str) -> dict[str, object]:
    """Arguments as the model wrote them; text that is not a JSON object is kept under `_raw`
    (invalid arguments are a real agent mistake worth keeping, not a reason to drop the call)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {"_raw": text}
    return value if isinstance(value, dict) else {"_raw": text}


def tool_error(content: str) -> str | None:
    """The error text of a tool message under the module's error rule, or None if it worked."""
    stripped = content.strip()
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict) and value.get("error"):
            error = value["error"]
            return error if isinstance(error, str) else json.dumps(error, sort_keys=True)
    return stripped if _ERROR_TEXT.match(content) else None


def _text(content: Any) -> str:
    """Message content as text: a string, or the text parts of a content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""
