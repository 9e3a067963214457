"""OpenAI Agents SDK with a scripted model: a function tool fails, the fixed call works; the
trace processor records the runs, the lesson is learned, `with_lessons` adds it to the agent's
instructions, and the recall is a span in the application's own traces."""

from __future__ import annotations

import json
from typing import Any

from agents import Agent, ModelResponse, Runner, Usage, function_tool, set_trace_processors
from agents.models.interface import Model
from agents.tracing import generation_span
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from kaizen.client.recorder import Recorder
from kaizen.integrations.openai_agents import KaizenTraceProcessor, with_lessons
from kaizen.streams.replay import Bounds, TopicReader
from tests.integration.integrations.conftest import Service

AGENT = "agents-bot"


@function_tool
def tickets_close(ticket: int | None = None, ticket_id: int | None = None) -> str:
    """Close a support ticket."""
    if ticket is not None:
        raise ValueError("unknown parameter 'ticket'; expected 'ticket_id'")
    return f"closed {ticket_id}"


class ScriptedModel(Model):
    """Answers from a list, with a generation span per call like the SDK's own models."""

    def __init__(self, n: int) -> None:
        self.turns: list[Any] = [
            ResponseFunctionToolCall(type="function_call", call_id="a", name="tickets_close",
                                     arguments=json.dumps({"ticket": n}), id="fa",
                                     status="completed"),
            ResponseFunctionToolCall(type="function_call", call_id="b", name="tickets_close",
                                     arguments=json.dumps({"ticket_id": n}), id="fb",
                                     status="completed"),
            ResponseOutputMessage(id="m", type="message", role="assistant", status="completed",
                                  content=[ResponseOutputText(type="output_text", text="closed",
                                                              annotations=[])]),
        ]

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        with generation_span(model="scripted-1", usage={"input_tokens": 30,
                                                        "output_tokens": 4}):
            item = self.turns.pop(0)
        return ModelResponse(output=[item], usage=Usage(requests=1, input_tokens=30,
                                                        output_tokens=4, total_tokens=34),
                             response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


def test_agents_sdk_runs_are_recorded_and_the_lesson_reaches_the_instructions(
        service: Service) -> None:
    recorder = Recorder(agent=AGENT, tenant="default", settings=service.settings())
    set_trace_processors([KaizenTraceProcessor(recorder)])  # type: ignore[list-item]
    for n in range(3):
        agent = Agent(name=AGENT, instructions="Close tickets.", tools=[tickets_close],
                      model=ScriptedModel(n))
        assert Runner.run_sync(agent, f"close ticket {n}").final_output == "closed"
    assert recorder.flush(30) == 0
    recorder.close()

    lessons = service.wait_for_lesson("close ticket 5", AGENT, "tickets_close")
    assert any(x["kind"] == "recovery" and "ticket_id" in x["guidance"] for x in lessons)
    events = [r.event for r in TopicReader(service.bootstrap, service.topics.episodes,
                                           Bounds()).records() if r.event.agent == AGENT]
    first = [type(e.payload).__name__ for e in events if e.episode_id == events[0].episode_id]
    assert first == ["EpisodeStarted", "LlmCall", "ToolCall", "ToolResult", "LlmCall",
                     "ToolCall", "ToolResult", "LlmCall", "EpisodeEnded"]
    results = [e.payload for e in events if type(e.payload).__name__ == "ToolResult"]
    assert [r.ok for r in results] == [False, True] * 3
    assert results[0].error  # the SDK redacts the details unless trace_include_sensitive_data

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    base = Agent(name=AGENT, instructions="Close tickets.", tools=[tickets_close])
    taught = with_lessons(base, "close ticket 5", tenant="default", settings=service.settings())
    assert taught.instructions.startswith("Close tickets.") and "ticket_id" in taught.instructions
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "retrieval kaizen"]
    assert span.attributes["gen_ai.operation.name"] == "retrieval"
    ids = list(span.attributes["kaizen.recall.lesson_ids"])
    assert ids and set(ids) <= {x["experience_id"] for x in service.recall(
        "close ticket 5", AGENT)}
    assert len(span.attributes["kaizen.recall.scores"]) == len(ids)
