"""Parse τ²-bench simulation files (sierra-research/tau2-bench results) into imported episodes.

A file is one JSON object `{timestamp, info, tasks, simulations}`, usually gzip-compressed:
- `info.agent_info.llm` is the agent's model (the episode's agent version),
  `info.environment_info.domain_name` the domain (retail, telecom, ...: the task type, and the
  agent name `tau2-<domain>`);
- `tasks[]` by `id`: the user scenario, the ticket (no-user runs) and the expected actions;
- `simulations[]`: `task_id`, `trial`, `start_time` / `end_time` (ISO, UTC when no zone),
  `reward_info.reward`, and `messages` (assistant `tool_calls[] {id, name, arguments,
  requestor}`, tool messages `{id, content, error}`, each with a `timestamp`).

One simulation is one episode. The task is what the agent was first told: the first user message,
or the ticket when the run has no simulated user. A step is a call the agent made
(`requestor: assistant`); calls the simulated user makes on its own phone (telecom) are not the
agent's and are left out. A tool message with `error: true` is a failure, its content the error.
The user is the customer the expected actions name (`user_id`), when they name one.
Elements that are not simulations are `Skipped`; a truncated or malformed file yields a
`ReadError` naming the position, after every simulation read before it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
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


class _Malformed(KaizenError, ValueError):
    """A simulation that cannot be read; its message is the Skipped reason."""


def parse_tau2(path: str | Path) -> Iterator[ImportedEpisode | Skipped]:
    """Yield one `ImportedEpisode` per simulation of a τ²-bench results file."""
    path = Path(path)
    text, problem = read_text(path)
    stream = JsonStream(text)
    header: dict[str, Any] = {}
    read = 0
    try:
        for key in stream.object_keys():
            if key != "simulations":
                header[key] = stream.value()
                continue
            context = _Context.of(path.name, header)
            for index, item in enumerate(stream.array_items()):
                read += 1
                source = f"{path.name}:simulations[{index}]"
                try:
                    yield context.episode(source, index, item)
                except _Malformed as error:
                    yield Skipped(source, str(error))
    except JsonPositionError as error:
        cause = f"{problem}; " if problem else ""
        yield ReadError(path.name, f"{cause}cannot read on: {error} ({read:,} simulations read "
                                   "before it are kept)")
        return
    if read == 0:
        yield Skipped(path.name, "no simulations found")


class _Context:
    """What the file's header says about every simulation in it."""

    def __init__(self, file_name: str, model: str, domain: str,
                 tasks: Mapping[str, Mapping[str, Any]]) -> None:
        self.file_name, self.model, self.domain, self.tasks = file_name, model, domain, tasks

    @classmethod
    def of(cls, file_name: str, header: Mapping[str, Any]) -> _Context:
        info = _dict(header.get("info"))
        agent, env = _dict(info.get("agent_info")), _dict(info.get("environment_info"))
        tasks = header.get("tasks")
        by_id = {str(t["id"]): t for t in (tasks if isinstance(tasks, list) else [])
                 if isinstance(t, dict) and "id" in t}
        return cls(file_name, str(agent.get("llm") or ""), str(env.get("domain_name") or ""),
                   by_id)

    def episode(self, source: str, index: int, item: Any) -> ImportedEpisode:
        if not isinstance(item, dict):
            raise _Malformed("simulation is not an object")
        messages = item.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise _Malformed("no messages list")
        task_id = str(item.get("task_id", ""))
        task = self.tasks.get(task_id, {})
        text = _first_user_text(messages) or _ticket(task) or f"task {task_id}"
        reward = _reward(item)
        key = str(item.get("id") or f"{task_id}/{item.get('trial')}/{index}")
        return ImportedEpisode(
            episode_id=episode_id_for("tau2", self.file_name, key),
            task=text,
            task_type=self.domain,
            user=_user(task),
            steps=_steps(messages),
            outcome="abandoned" if reward is None else "success" if reward > 0 else "failure",
            reward=reward,
            reflections=[],
            source=source,
            task_id=task_id,
            agent_version=self.model,
            started_ms=iso_ms(item.get("start_time")),
            ended_ms=iso_ms(item.get("end_time")),
            agent=f"tau2-{self.domain}" if self.domain else "tau2",
        )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def iso_ms(value: Any) -> int | None:
    """UTC milliseconds of an ISO time (UTC when it has no zone); None if it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _first_user_text(messages: list[dict[str, Any]]) -> str:
    for message in messages:
        content = message.get("content")
        if message.get("role") == "user" and isinstance(content, str) and content.strip():
            return content.strip()
    return ""


def _ticket(task: Mapping[str, Any]) -> str:
    ticket = task.get("ticket")
    return ticket.strip() if isinstance(ticket, str) else ""


def _user(task: Mapping[str, Any]) -> str | None:
    """The customer the expected actions are about (`user_id`), if they name one."""
    criteria = task.get("evaluation_criteria")
    actions = criteria.get("actions") if isinstance(criteria, dict) else None
    for action in actions if isinstance(actions, list) else []:
        arguments = action.get("arguments") if isinstance(action, dict) else None
        if isinstance(arguments, dict) and isinstance(arguments.get("user_id"), str):
            return str(arguments["user_id"])
    return None


def _reward(item: Mapping[str, Any]) -> float | None:
    info = item.get("reward_info")
    reward = info.get("reward") if isinstance(info, dict) else None
    if isinstance(reward, bool) or not isinstance(reward, int | float):
        return None
    return float(reward)


def _steps(messages: list[dict[str, Any]]) -> list[ImportedStep]:
    """The agent's calls in order, each with the tool message that answers its id."""
    results = {str(m.get("id")): m for m in messages if m.get("role") == "tool"}
    steps = []
    for message in messages:
        if message.get("role") != "assistant":
            continue
        calls = message.get("tool_calls") or []
        if not isinstance(calls, list):
            raise _Malformed("tool_calls is not a list")
        for call in calls:
            if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                raise _Malformed("tool call without a name")
            if call.get("requestor", "assistant") != "assistant":
                continue  # the simulated user acting on its own device
            result = results.pop(str(call.get("id")), None)
            steps.append(_step(call, message, result))
    return steps


def _step(call: dict[str, Any], message: Mapping[str, Any],
          result: Mapping[str, Any] | None) -> ImportedStep:
    arguments = call.get("arguments")
    args: dict[str, object] = arguments if isinstance(arguments, dict) else {
        "_raw": json.dumps(arguments)}
    called = iso_ms(message.get("timestamp"))
    if result is None:
        return ImportedStep(call["name"], args, False, NO_RESULT, None, None, called, None)
    content = result.get("content")
    text = content if isinstance(content, str) else json.dumps(content)
    answered = iso_ms(result.get("timestamp"))
    if result.get("error") is True:
        error = truncate(text or "error (no message)", ERROR_LIMIT)
        return ImportedStep(call["name"], args, False, error, None, None, called, answered)
    return ImportedStep(call["name"], args, True, None, truncate(text, OUTPUT_LIMIT), None,
                        called, answered)
