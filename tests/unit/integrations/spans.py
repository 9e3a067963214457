"""Span factories for the OTLP unit tests: GenAI and OpenInference shapes, as exporters send."""

from __future__ import annotations

from typing import Any

from kaizen.integrations.otlp_mapping import Span

T0 = 1_760_000_000_000_000_000  # ns


def span(name: str, attrs: dict[str, Any], *, trace: str = "a" * 32, sid: str = "1" * 16,
         parent: str = "", start_ms: int = 0, end_ms: int = 10, status: int = 0,
         message: str = "", resource: dict[str, Any] | None = None) -> Span:
    return Span(trace, sid, parent, name, T0 + start_ms * 1_000_000, T0 + end_ms * 1_000_000,
                attrs, resource or {"service.name": "svc"}, status, message)


def genai_trace(trace: str = "a" * 32, conversation: str | None = "conv-1") -> list[Span]:
    """A failing then recovering orders.get call under one invoke_agent span (children first)."""
    agent_attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "shop-bot"}
    if conversation:
        agent_attrs["gen_ai.conversation.id"] = conversation
    return [
        span("execute_tool orders.get", {
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "orders.get",
            "gen_ai.tool.call.id": "c1", "gen_ai.tool.call.arguments": '{"order_id": 7}',
            "error.type": "InvalidArgument"}, trace=trace, sid="2" * 16, parent="1" * 16,
            start_ms=1, end_ms=3, status=2, message="unknown field 'order_id'"),
        span("chat gpt-x", {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-x",
                            "gen_ai.usage.input_tokens": 120, "gen_ai.usage.output_tokens": 9},
             trace=trace, sid="4" * 16, parent="1" * 16, start_ms=3, end_ms=4),
        span("execute_tool orders.get", {
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "orders.get",
            "gen_ai.tool.call.id": "c2", "gen_ai.tool.call.arguments": '{"id": 7}',
            "gen_ai.tool.call.result": '{"status": "shipped"}'}, trace=trace, sid="3" * 16,
            parent="1" * 16, start_ms=4, end_ms=6),
        span("invoke_agent shop-bot", agent_attrs, trace=trace, sid="1" * 16, start_ms=0,
             end_ms=8),
    ]


def openinference_trace(trace: str = "b" * 32) -> list[Span]:
    return [
        span("orders.get", {"openinference.span.kind": "TOOL", "tool.name": "orders.get",
                            "input.value": '{"order_id": 7}', "session.id": "s-1",
                            "user.id": "u-9"},
             trace=trace, sid="2" * 16, parent="1" * 16, start_ms=1, end_ms=2, status=2,
             message="unknown field 'order_id'"),
        span("orders.get", {"openinference.span.kind": "TOOL", "tool.name": "orders.get",
                            "input.value": '{"id": 7}', "output.value": "shipped"},
             trace=trace, sid="3" * 16, parent="1" * 16, start_ms=3, end_ms=4),
        span("ChatOpenAI", {"openinference.span.kind": "LLM", "llm.model_name": "gpt-y",
                            "llm.token_count.prompt": 50, "llm.token_count.completion": 5},
             trace=trace, sid="4" * 16, parent="1" * 16, start_ms=4, end_ms=5),
        span("agent", {"openinference.span.kind": "AGENT", "input.value": "where is order 7?",
                       "agent.name": "oi-bot"}, trace=trace, sid="1" * 16, end_ms=6),
    ]
