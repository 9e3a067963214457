"""The real MCP client over stdio against `kaizen mcp`: episodes recorded through the
record_episode tool teach a lesson that the recall_lessons tool then returns."""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.integration.integrations.conftest import Service

AGENT = "mcp-bot"


def _episode(n: int) -> dict[str, Any]:
    return {"task": f"book room {n}", "agent": AGENT, "outcome": "success", "tool_calls": [
        {"tool": "rooms.book", "arguments": {"room": f"r{n}"}, "ok": False,
         "error": "unknown field 'room'; use 'room_id'"},
        {"tool": "rooms.book", "arguments": {"room_id": f"r{n}"}, "ok": True,
         "output": "booked"}]}


async def _session(service: Service, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    params = StdioServerParameters(command=sys.executable, args=["-m", "kaizen.cli", "mcp"],
                                   env={**service.env, "KAIZEN_HOME": str(service.home / "mcp")})
    out = []
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        names = {tool.name for tool in (await session.list_tools()).tools}
        assert {"recall_lessons", "record_episode"} <= names
        for name, arguments in calls:
            result = await session.call_tool(name, arguments)
            assert not result.is_error, result
            out.append(result.structured_content or json.loads(result.content[0].text))
    return out


def _call(service: Service, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    return anyio.run(_session, service, calls)


def test_mcp_client_records_episodes_and_recalls_the_lesson(service: Service) -> None:
    recorded = _call(service, [("record_episode", _episode(n)) for n in range(3)])
    assert [r["pending"] for r in recorded] == [0, 0, 0]
    assert len({r["episode_id"] for r in recorded}) == 3

    service.wait_for_lesson("book room 9", AGENT, "rooms.book")  # learned and active
    answer = _call(service, [("recall_lessons", {"task": "book room 9", "agent": AGENT})])[0]
    found = [x for x in answer["lessons"] if x["tool"] == "rooms.book"]
    assert any(x["kind"] == "recovery" and "room_id" in x["guidance"] for x in found)
    assert "room_id" in answer["prompt"]
