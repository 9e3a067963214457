"""LangChain: langchain-core's fake chat model drives real tools (the first call fails, the fixed
call works); the callback handler records the runs, the lesson is learned, and `with_lessons`
puts it into the system prompt."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.tools import tool

from kaizen.client.recorder import Recorder
from kaizen.integrations.langchain import KaizenCallbackHandler, with_lessons
from kaizen.streams.replay import Bounds, TopicReader
from tests.integration.integrations.conftest import Service
from tests.integration.waiting import wait_for

AGENT = "lc-bot"


@tool
def refunds_create(order: int | None = None, order_ref: int | None = None) -> str:
    """Create a refund for an order."""
    if order is not None:
        raise ValueError("unknown argument 'order'; the API now takes 'order_ref'")
    return f"refund created for {order_ref}"


def _scripted_model(n: int) -> FakeMessagesListChatModel:
    usage = {"input_tokens": 40, "output_tokens": 5, "total_tokens": 45}
    return FakeMessagesListChatModel(responses=[
        AIMessage("", tool_calls=[{"name": "refunds_create", "args": {"order": n}, "id": "a"}],
                  usage_metadata=usage),
        AIMessage("", tool_calls=[{"name": "refunds_create", "args": {"order_ref": n},
                                   "id": "b"}], usage_metadata=usage),
        AIMessage("refund done", usage_metadata=usage)])


def _agent(model: FakeMessagesListChatModel) -> RunnableLambda[Any, str]:
    def loop(inputs: dict[str, Any], config: RunnableConfig) -> str:
        messages: list[Any] = [HumanMessage(inputs["input"])]
        for _ in range(5):
            reply = model.invoke(messages, config)
            messages.append(reply)
            if not reply.tool_calls:
                return str(reply.content)
            for call in reply.tool_calls:
                try:
                    out = refunds_create.invoke(call["args"], config)
                except ValueError as error:
                    out = f"error: {error}"
                messages.append(ToolMessage(str(out), tool_call_id=call["id"]))
        return "gave up"

    return RunnableLambda(loop)


def test_langchain_runs_are_recorded_and_the_lesson_reaches_the_system_prompt(
        service: Service) -> None:
    recorder = Recorder(agent=AGENT, tenant="default", settings=service.settings())
    handler = KaizenCallbackHandler(recorder, user="lc-user")
    for n in range(3):
        answer = _agent(_scripted_model(n)).invoke({"input": f"refund order {n}"},
                                                   config={"callbacks": [handler]})
        assert answer == "refund done"
    assert recorder.flush(30) == 0
    recorder.close()

    lessons = service.wait_for_lesson("refund order 8", AGENT, "refunds_create")
    assert any(x["kind"] == "recovery" and "order_ref" in x["guidance"] for x in lessons)
    events = [r.event for r in TopicReader(service.bootstrap, service.topics.episodes,
                                           Bounds()).records() if r.event.agent == AGENT]
    kinds = [type(e.payload).__name__ for e in events if e.episode_id == events[0].episode_id]
    assert kinds == ["EpisodeStarted", "LlmCall", "ToolCall", "ToolResult", "LlmCall",
                     "ToolCall", "ToolResult", "LlmCall", "EpisodeEnded"]
    results = [e.payload for e in events if type(e.payload).__name__ == "ToolResult"]
    assert [r.ok for r in results] == [False, True] * 3
    assert "order_ref" in (results[0].error or "")
    assert {e.payload.input_tokens for e in events if type(e.payload).__name__ == "LlmCall"} == {
        40}
    assert {e.payload.outcome for e in events if type(e.payload).__name__ == "EpisodeEnded"} == {
        "success"}

    messages = with_lessons([SystemMessage("You are a refunds agent."),
                             HumanMessage("refund order 8")], "refund order 8", agent=AGENT,
                            tenant="default", settings=service.settings())
    assert messages[0].content.startswith("You are a refunds agent.")
    assert "order_ref" in str(messages[0].content) and len(messages) == 2
    def with_the_lesson() -> list[Any]:
        messages = with_lessons([HumanMessage("x")], "refund order 8", agent=AGENT,
                                tenant="default", settings=service.settings())
        return messages if len(messages) == 2 else []

    fresh = wait_for("the lesson put before a bare message", with_the_lesson, timeout=30)
    assert isinstance(fresh[0], SystemMessage)
