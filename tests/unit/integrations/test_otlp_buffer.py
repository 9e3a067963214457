"""Buffering spans per trace: close on the root agent span, or when idle by the injected clock."""

from __future__ import annotations

from kaizen.integrations.otlp_buffer import TraceBuffer
from tests.unit.integrations.spans import genai_trace, openinference_trace, span


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_children_in_one_request_and_the_root_in_the_next_make_one_episode() -> None:
    buffer = TraceBuffer(Clock())
    spans = genai_trace()
    first = buffer.add(spans[:2])
    assert (first.plans, first.accepted, len(buffer)) == ([], 2, 1)
    second = buffer.add(spans[2:])
    assert [p.episode_id for p in second.plans] == ["conv-1"]
    assert len(second.plans[0].steps) == 5 and len(buffer) == 0


def test_a_late_span_of_a_recorded_trace_is_rejected_not_recorded_twice() -> None:
    buffer = TraceBuffer(Clock())
    spans = genai_trace()
    buffer.add(spans)
    again = buffer.add(spans[:1])
    assert again.plans == [] and [r for _, r in again.rejected] == [
        "late span: the episode of its trace was already recorded"]


def test_idle_trace_closes_after_the_timeout_by_the_injected_clock() -> None:
    clock = Clock()
    buffer = TraceBuffer(clock, idle_seconds=30)
    buffer.add(openinference_trace()[:2])
    clock.now = 29.0
    assert buffer.expire() == []
    clock.now = 30.0
    plans = buffer.expire()
    assert [(p.episode_id, p.outcome) for p in plans] == [("s-1", "abandoned")]


def test_second_trace_of_a_conversation_gets_its_own_episode_id() -> None:
    buffer = TraceBuffer(Clock())
    first = buffer.add(genai_trace("a" * 32)).plans
    second = buffer.add(genai_trace("c" * 32)).plans
    assert first[0].episode_id == "conv-1"
    assert second[0].episode_id == "conv-1#" + "c" * 16


def test_trace_without_conversation_is_named_by_its_trace_id() -> None:
    buffer = TraceBuffer(Clock())
    assert buffer.add(genai_trace("d" * 32, conversation=None)).plans[0].episode_id == "d" * 32


def test_bounds_close_the_oldest_trace_and_reject_spans_over_the_limit() -> None:
    buffer = TraceBuffer(Clock(), max_open=2, max_spans=1)
    tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "x"}
    out = [buffer.add([span("t", tool, trace=c * 32, parent="9" * 16)]) for c in "abc"]
    assert [p.episode_id for p in out[2].plans] == ["a" * 32]
    over = buffer.add([span("t", tool, trace="b" * 32, sid="2" * 16, parent="9" * 16)])
    assert [r for _, r in over.rejected] == ["trace over 1 spans"]


def test_one_bad_span_does_not_reject_the_rest_of_the_request() -> None:
    buffer = TraceBuffer(Clock())
    spans = genai_trace()
    broken = span("x", {"gen_ai.operation.name": "chat"}, sid="")
    added = buffer.add([broken, *spans])
    assert added.accepted == len(spans) and len(added.rejected) == 1
    assert len(added.plans) == 1
