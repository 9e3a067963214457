"""kaizen.testing: the doubles behave like the real Recorder and recall where a test can see."""

from __future__ import annotations

from kaizen.readmodel.lesson import Recalled
from kaizen.schemas import model
from kaizen.testing import MemoryRecorder, StubRecall


def test_memory_recorder_keeps_the_real_episode_events_in_order() -> None:
    rec = MemoryRecorder(agent="bot", tenant="acme", snapshot_id="s1")
    with rec.episode("check order 7", user="u1", episode_id="ep-1") as ep:
        call = ep.tool_call("orders.get", {"order_id": 7})
        ep.tool_result("orders.get", ok=False, error="unknown field", call_id=call)
        ep.end(success=False)
    kinds = [type(e.payload).__name__ for e in rec.events]
    assert kinds == ["EpisodeStarted", "ToolCall", "ToolResult", "EpisodeEnded"]
    assert {(e.tenant, e.agent, e.snapshot_id, e.user) for e in rec.events} == {
        ("acme", "bot", "s1", "u1")}
    assert [r.error for r in rec.payloads(model.ToolResult)] == ["unknown field"]
    assert rec.episode_ids() == ["ep-1"]
    times = [e.occurred_at for e in rec.events]
    assert times == sorted(times) and len(set(times)) == len(times)


def test_an_episode_left_without_end_is_abandoned_as_with_the_real_recorder() -> None:
    rec = MemoryRecorder()
    with rec.episode("t", episode_id="ep"):
        pass
    assert rec.payloads(model.EpisodeEnded)[0].outcome == "abandoned"


def test_stub_recall_filters_by_tools_and_k_and_remembers_queries() -> None:
    about = [Recalled("a", 0.9, "g", None, "recovery", "orders.get"),
             Recalled("b", 0.8, "g", None, "pitfall", "search"),
             Recalled("c", 0.7, "g", None, "strategy", None)]
    recall = StubRecall(about)
    assert [x.experience_id for x in recall("t", agent="a", tenant="t", tools=["orders.get"])
            ] == ["a", "c"]
    assert [x.experience_id for x in recall("t", agent="a", tenant="t", k=1)] == ["a"]
    assert recall.queries[0]["tools"] == ["orders.get"] and recall.queries[1]["k"] == 1
