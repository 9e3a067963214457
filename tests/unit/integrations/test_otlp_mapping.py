"""The pure span -> episode mapping: GenAI and OpenInference conventions, rejections."""

from __future__ import annotations

import json

import pytest

from kaizen.integrations.otlp_mapping import Rejected, classify, plan_episode
from tests.unit.integrations.spans import genai_trace, openinference_trace, span


def test_genai_trace_becomes_a_failed_then_recovered_tool_call_with_usage() -> None:
    plan = plan_episode("conv-1", genai_trace(), None, closed=True)
    assert (plan.tenant, plan.agent, plan.outcome) == ("default", "shop-bot", "success")
    kinds = [(s.kind, s.tool or s.model) for s in plan.steps]
    assert kinds == [("tool_call", "orders.get"), ("tool_result", "orders.get"),
                     ("llm_call", "gpt-x"), ("tool_call", "orders.get"),
                     ("tool_result", "orders.get")]
    failed, ok = plan.steps[1], plan.steps[4]
    assert (failed.ok, failed.call_id) == (False, "c1")
    assert failed.error == "InvalidArgument: unknown field 'order_id'"
    assert plan.steps[0].arguments == {"order_id": 7}
    assert plan.steps[3].arguments == {"id": 7}
    assert (ok.ok, ok.output) == (True, '{"status": "shipped"}')
    assert (plan.steps[2].input_tokens, plan.steps[2].output_tokens) == (120, 9)
    assert plan.started_at_ms <= plan.steps[0].at_ms <= plan.ended_at_ms


def test_arrival_order_does_not_change_the_plan() -> None:
    spans = genai_trace()
    assert plan_episode("k", spans, None, True) == plan_episode("k", spans[::-1], None, True)


def test_openinference_trace_maps_kinds_session_and_user() -> None:
    plan = plan_episode("s-1", openinference_trace(), "acme", closed=True)
    assert (plan.tenant, plan.agent, plan.user, plan.task) == (
        "acme", "oi-bot", "u-9", "where is order 7?")
    assert [(s.kind, s.ok) for s in plan.steps] == [
        ("tool_call", True), ("tool_result", False), ("tool_call", True), ("tool_result", True),
        ("llm_call", True)]
    assert plan.steps[1].error == "unknown field 'order_id'"
    assert plan.steps[4].model == "gpt-y" and plan.steps[4].input_tokens == 50


def test_tenant_from_resource_beats_header_and_agent_falls_back_to_service_name() -> None:
    tool = span("execute_tool x", {"gen_ai.tool.name": "x"}, parent="9" * 16,
                resource={"service.name": "billing", "kaizen.tenant": "globex"})
    plan = plan_episode(tool.trace_id, [tool], "acme", closed=False)
    assert (plan.tenant, plan.agent, plan.outcome) == ("globex", "billing", "abandoned")


def test_failed_root_agent_span_is_a_failed_episode() -> None:
    spans = genai_trace()
    root = spans[-1]
    failed = type(root)(**{**root.__dict__, "status_code": 2})
    assert plan_episode("k", [*spans[:-1], failed], None, True).outcome == "failure"


def test_non_json_arguments_are_kept_as_input() -> None:
    tool = span("t", {"openinference.span.kind": "TOOL", "tool.name": "search",
                      "input.value": "weather in Paris"})
    assert plan_episode("k", [tool], None, False).steps[0].arguments == {
        "input": "weather in Paris"}
    assert json.dumps(dict(plan_episode("k", [tool], None, False).steps[0].arguments))


@pytest.mark.parametrize(("changes", "reason"), [
    ({"trace_id": ""}, "trace id"), ({"span_id": "00" * 8}, "span id"),
    ({"span_id": "abc"}, "span id"), ({"attributes": {}}, "not a GenAI"),
    ({"attributes": {"gen_ai.operation.name": "execute_tool"}}, "without gen_ai.tool.name"),
    ({"end_ns": 1}, "ends before"),
])
def test_malformed_or_unknown_spans_are_rejected_with_a_reason(
        changes: dict[str, object], reason: str) -> None:
    good = span("x", {"gen_ai.operation.name": "chat"}, start_ms=5)
    bad = type(good)(**{**good.__dict__, **changes})
    assert classify(good) == "llm"
    with pytest.raises(Rejected, match=reason):
        classify(bad)


def test_root_chain_is_the_agent_and_other_kinds_are_known_but_silent() -> None:
    assert classify(span("c", {"openinference.span.kind": "CHAIN"})) == "agent"
    assert classify(span("c", {"openinference.span.kind": "CHAIN"}, parent="2" * 16)) == "other"
    assert classify(span("r", {"openinference.span.kind": "RETRIEVER"})) == "other"
