"""`kaizen mcp`: an MCP server, so any MCP-speaking agent can recall lessons and record episodes.

Three tools, over stdio (the default: `kaizen mcp`) or streamable HTTP (`kaizen mcp --transport
streamable-http --port 8766`):

    recall_lessons(task, agent, tenant?, user?, tools?, k?)
        -> {"lessons": [{experience_id, score, guidance, kind, tool}], "prompt": "..."}
    lessons_for_call(tool, arguments, task, agent, tenant?, user?)
        -> the same, for lessons about `tool` only: call it right before calling the tool
    record_episode(task, agent, tool_calls=[{tool, arguments, ok, error?, output?}],
                   outcome="success"|"failure"|"abandoned", tenant?, user?, episode_id?)
        -> {"episode_id", "events", "pending"}

Recall asks the running `kaizen serve`; recording goes through a `kaizen.Recorder` per (tenant,
agent), so episodes reach Kafka (or the spool) like any instrumented agent's. Built on the `mcp`
SDK 2.x server API (`MCPServer`, formerly FastMCP); `mcp` is imported only when the command runs.
Logs go to stderr, never stdout (stdout is the stdio transport).
"""

from __future__ import annotations

import argparse
import threading
from typing import Any

from pydantic import BaseModel, Field

from kaizen.client.recall import recall, recall_for_call
from kaizen.client.recorder import Recorder
from kaizen.settings import Settings

SERVER_NAME = "kaizen"
FLUSH_SECONDS = 10.0


class ToolCallRecord(BaseModel):
    """One tool call of the episode and what it returned."""

    tool: str = Field(description="tool name, e.g. orders.get")
    arguments: dict[str, Any] = Field(default_factory=dict, description="the call's arguments")
    ok: bool = Field(True, description="false when the call failed")
    error: str | None = Field(None, description="error text of a failed call")
    output: str | None = Field(None, description="what the tool returned (optional)")


class KaizenTools:
    """The tools' logic, free of MCP types so it is easy to reason about and to test."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._recorders: dict[tuple[str, str], Recorder] = {}
        self._lock = threading.Lock()

    def recall_lessons(self, task: str, agent: str, tenant: str = "default",
                       user: str | None = None, tools: list[str] | None = None, k: int = 5
                       ) -> dict[str, Any]:
        from kaizen.readmodel.prompt import render_lessons

        lessons = recall(task, agent=agent, tenant=tenant, user=user, tools=tools, k=k,
                         settings=self.settings)
        return {"lessons": [{"experience_id": x.experience_id, "score": x.score,
                             "guidance": x.guidance, "kind": x.kind, "tool": x.tool}
                            for x in lessons],
                "prompt": render_lessons(lessons)}

    def lessons_for_call(self, tool: str, arguments: dict[str, Any], task: str, agent: str,
                         tenant: str = "default", user: str | None = None) -> dict[str, Any]:
        """Recall at the point of use (`kaizen.recall_for_call`): the lessons about `tool`,
        right before the agent calls it with `arguments`."""
        from kaizen.readmodel.prompt import render_lessons

        lessons = recall_for_call(tool, arguments, task=task, agent=agent, tenant=tenant,
                                  user=user, settings=self.settings)
        return {"lessons": [{"experience_id": x.experience_id, "score": x.score,
                             "guidance": x.guidance, "kind": x.kind, "tool": x.tool}
                            for x in lessons],
                "prompt": render_lessons(lessons)}

    def record_episode(self, task: str, agent: str, tool_calls: list[ToolCallRecord],
                       outcome: str = "success", tenant: str = "default",
                       user: str | None = None, episode_id: str | None = None,
                       recalled: list[str] | None = None) -> dict[str, Any]:
        if outcome not in ("success", "failure", "abandoned"):
            raise ValueError("outcome must be success, failure or abandoned")
        recorder = self._recorder(tenant, agent)
        episode = recorder.episode(task, user=user, episode_id=episode_id)
        episode.start()
        if recalled:
            episode.recall(recalled, task)
        for call in tool_calls:
            call_id = episode.tool_call(call.tool, call.arguments)
            episode.tool_result(call.tool, ok=call.ok, error=call.error, output=call.output,
                                call_id=call_id)
        episode.end(outcome=outcome)
        pending = recorder.flush(FLUSH_SECONDS)
        return {"episode_id": episode.episode_id, "events": 2 + 2 * len(tool_calls)
                + (1 if recalled else 0), "pending": pending}

    def close(self) -> None:
        with self._lock:
            recorders, self._recorders = list(self._recorders.values()), {}
        for recorder in recorders:
            recorder.close()

    def _recorder(self, tenant: str, agent: str) -> Recorder:
        with self._lock:
            key = (tenant, agent)
            if key not in self._recorders:
                self._recorders[key] = Recorder(agent=agent, tenant=tenant,
                                                settings=self.settings)
            return self._recorders[key]


def build_server(tools: KaizenTools) -> Any:
    """The MCP server with Kaizen's two tools registered."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer(SERVER_NAME, instructions=(
        "Call recall_lessons before a task and put the prompt into your instructions; call "
        "lessons_for_call right before calling a tool and follow what it says; call "
        "record_episode after it with the tool calls you made and how the task ended."))

    @server.tool(description="Lessons learned from earlier tasks, best first, and a prompt "
                             "block to paste into the system prompt.")
    def recall_lessons(task: str, agent: str, tenant: str = "default", user: str | None = None,
                       tools_used: list[str] | None = None, k: int = 5) -> dict[str, Any]:
        return tools.recall_lessons(task, agent, tenant, user, tools_used, k)

    @server.tool(description="Lessons about one tool, right before calling it with these "
                             "arguments: the rules earlier calls of it broke, best first.")
    def lessons_for_call(tool: str, arguments: dict[str, Any], task: str, agent: str,
                         tenant: str = "default", user: str | None = None) -> dict[str, Any]:
        return tools.lessons_for_call(tool, arguments, task, agent, tenant, user)

    @server.tool(description="Record one finished task: its tool calls (in order, with "
                             "arguments and whether each worked) and its outcome.")
    def record_episode(task: str, agent: str, tool_calls: list[ToolCallRecord],
                       outcome: str = "success", tenant: str = "default",
                       user: str | None = None, episode_id: str | None = None,
                       recalled: list[str] | None = None) -> dict[str, Any]:
        return tools.record_episode(task, agent, tool_calls, outcome, tenant, user, episode_id,
                                    recalled)

    return server


def run(args: argparse.Namespace, settings: Settings) -> int:
    tools = KaizenTools(settings)
    server = build_server(tools)
    try:
        if args.transport == "stdio":
            server.run("stdio")
        else:
            server.run("streamable-http", host=args.host, port=args.port)
    finally:
        tools.close()
    return 0


def register(sub: Any) -> None:
    """`kaizen mcp`: registered by the CLI with one call."""
    mcp = sub.add_parser("mcp", help="MCP server: recall_lessons and record_episode tools")
    mcp.add_argument("--transport", choices=["stdio", "streamable-http"], default="stdio")
    mcp.add_argument("--host", default="127.0.0.1", help="streamable HTTP only")
    mcp.add_argument("--port", type=int, default=8766, help="streamable HTTP only")
    mcp.set_defaults(handler=run)
