"""The same loop with a real LLM agent: an OpenAI-compatible chat-completions endpoint with tools.

Not run in tests (no model is reachable there). Usage, with the demo world's tools:

    OPENAI_BASE_URL=http://localhost:8000/v1 OPENAI_API_KEY=... \\
        python -m kaizen.demo.llm_agent "Check the status of order 42" --user u1

Each episode: recall lessons for the task, put them in the system prompt, let the model call tools
(patches from lessons are applied to its calls, as the simulated fleet does), record every step
with the Recorder, and end with the outcome.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.request
from typing import Any

from kaizen import Recorder, recall, render_lessons
from kaizen.demo.world import TOOLS, World
from kaizen.processors.learning.patches import apply_patch

SYSTEM = "You are a support agent. Use the tools to complete the task, then answer briefly."


def _tool_specs() -> list[dict[str, Any]]:
    return [{"type": "function", "function": {
        "name": name.replace(".", "_"), "description": f"the {name} API",
        "parameters": {"type": "object", "additionalProperties": True}}} for name in TOOLS]


def _chat(messages: list[dict[str, Any]], model: str) -> dict[str, Any]:
    base = os.environ.get("OPENAI_BASE_URL", "http://localhost:8000/v1")
    body = json.dumps({"model": model, "messages": messages, "tools": _tool_specs()}).encode()
    request = urllib.request.Request(f"{base}/chat/completions", body, {  # noqa: S310
        "Content-Type": "application/json",
        "Authorization": f"Bearer {os.environ.get('OPENAI_API_KEY', '')}"})
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
        return dict(json.loads(response.read())["choices"][0]["message"])


def run_episode(task: str, user: str, *, agent: str, tenant: str, model: str,
                episode_index: int = 10_000, max_turns: int = 8) -> bool:
    world, recorder = World(), Recorder(agent=agent, tenant=tenant)
    lessons = recall(task, agent=agent, tenant=tenant, user=user)
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM + "\n\n" + render_lessons(lessons)},
        {"role": "user", "content": task}]
    with recorder.episode(task, user=user) as ep:
        ep.recall([x.experience_id for x in lessons], task)
        for _ in range(max_turns):
            reply = _chat(messages, model)
            ep.llm_call(model)
            messages.append(reply)
            calls = reply.get("tool_calls") or []
            if not calls:
                ep.end(success=True)
                break
            for call in calls:
                tool = call["function"]["name"].replace("_", ".")
                args = json.loads(call["function"]["arguments"] or "{}")
                for lesson in lessons:
                    if lesson.patch and lesson.patch.tool == tool:
                        tool, args = apply_patch(lesson.patch, tool, args)
                call_id = ep.tool_call(tool, args)
                outcome = world.call(tool, args, episode_index=episode_index, user=user)
                ep.tool_result(tool, ok=outcome.ok, error=outcome.error, output=outcome.output,
                               call_id=call_id)
                messages.append({"role": "tool", "tool_call_id": call["id"],
                                 "content": outcome.output or outcome.error or ""})
        else:
            ep.end(success=False)
    recorder.close()
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description="one LLM agent episode with Kaizen attached")
    parser.add_argument("task")
    parser.add_argument("--user", default="u1")
    parser.add_argument("--agent", default="llm-support-bot")
    parser.add_argument("--tenant", default="demo")
    parser.add_argument("--model", default=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"))
    args = parser.parse_args()
    run_episode(args.task, args.user, agent=args.agent, tenant=args.tenant, model=args.model)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
