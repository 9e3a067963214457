"""The real opentelemetry-sdk with its OTLP/HTTP exporter feeding `kaizen serve`: GenAI and
OpenInference spans of a failing-then-recovering tool call teach a lesson that recall returns,
and bad OTLP input gets the right status without hurting the service."""

from __future__ import annotations

import gzip
import itertools
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from kaizen.streams.replay import Bounds, TopicReader
from tests.integration.integrations.conftest import Service
from tests.integration.waiting import wait_for

PROTOBUF = {"Content-Type": "application/x-protobuf"}


@contextmanager
def tracer_for(service: Service, name: str, headers: dict[str, str] | None = None) -> Iterator[Any]:
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    exporter = OTLPSpanExporter(endpoint=f"{service.url}/v1/traces", headers=headers)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        yield provider.get_tracer("test")
    finally:
        provider.shutdown()


def test_genai_spans_from_the_otel_sdk_teach_a_recovery_lesson_that_recall_returns(
        service: Service) -> None:
    with tracer_for(service, "genai-svc") as tracer:
        for i in range(3):
            with tracer.start_as_current_span("invoke_agent genai-bot") as agent:
                agent.set_attribute("gen_ai.operation.name", "invoke_agent")
                agent.set_attribute("gen_ai.agent.name", "genai-bot")
                agent.set_attribute("gen_ai.conversation.id", f"genai-conv-{i}")
                with tracer.start_as_current_span("chat gpt-x") as chat:
                    chat.set_attribute("gen_ai.operation.name", "chat")
                    chat.set_attribute("gen_ai.request.model", "gpt-x")
                    chat.set_attribute("gen_ai.usage.input_tokens", 100 + i)
                    chat.set_attribute("gen_ai.usage.output_tokens", 7)
                with tracer.start_as_current_span("execute_tool invoices.find") as bad:
                    bad.set_attribute("gen_ai.operation.name", "execute_tool")
                    bad.set_attribute("gen_ai.tool.name", "invoices.find")
                    bad.set_attribute("gen_ai.tool.call.id", f"g{i}a")
                    bad.set_attribute("gen_ai.tool.call.arguments", json.dumps({"number": i}))
                    bad.set_attribute("error.type", "InvalidArgument")
                    bad.set_status(Status(StatusCode.ERROR, "unknown field 'number'"))
                with tracer.start_as_current_span("execute_tool invoices.find") as good:
                    good.set_attribute("gen_ai.operation.name", "execute_tool")
                    good.set_attribute("gen_ai.tool.name", "invoices.find")
                    good.set_attribute("gen_ai.tool.call.id", f"g{i}b")
                    good.set_attribute("gen_ai.tool.call.arguments", json.dumps({"invoice_no": i}))
                    good.set_attribute("gen_ai.tool.call.result", '{"total": 12}')
    lessons = service.wait_for_lesson("find invoice 9", "genai-bot", "invoices.find")
    recovery = [x for x in lessons if x["kind"] == "recovery"]
    assert recovery and "invoice_no" in json.dumps(recovery[0])
    events = _episode_events(service, "genai-bot", 3)
    episodes = {e.episode_id for e in events}
    assert episodes == {f"genai-conv-{i}" for i in range(3)}
    usage = sorted(e.payload.input_tokens for e in events if type(e.payload).__name__ == "LlmCall")
    assert usage == [100, 101, 102]
    assert {e.tenant for e in events} == {"default"}


def test_openinference_spans_with_a_tenant_header_teach_and_recall_in_that_tenant(
        service: Service) -> None:
    with tracer_for(service, "oi-bot", headers={"X-Kaizen-Tenant": "globex"}) as tracer:
        for i in range(3):
            with tracer.start_as_current_span("agent") as agent:
                agent.set_attribute("openinference.span.kind", "AGENT")
                agent.set_attribute("input.value", f"ship order {i}")
                agent.set_attribute("session.id", f"oi-session-{i}")
                agent.set_attribute("user.id", f"user-{i % 2}")
                with tracer.start_as_current_span("shipping.create") as bad:
                    bad.set_attribute("openinference.span.kind", "TOOL")
                    bad.set_attribute("tool.name", "shipping.create")
                    bad.set_attribute("input.value", json.dumps({"zip": f"0{i}"}))
                    bad.set_status(Status(StatusCode.ERROR, "field 'zip' is now 'postcode'"))
                with tracer.start_as_current_span("shipping.create") as good:
                    good.set_attribute("openinference.span.kind", "TOOL")
                    good.set_attribute("tool.name", "shipping.create")
                    good.set_attribute("input.value", json.dumps({"postcode": f"0{i}"}))
                    good.set_attribute("output.value", "label created")
    lessons = service.wait_for_lesson("ship order 7", "oi-bot", "shipping.create", "globex")
    assert any(x["kind"] == "recovery" for x in lessons)
    assert service.recall("ship order 7", "oi-bot", "default") == []  # tenant is strict
    events = _episode_events(service, "oi-bot", 3)
    assert {e.tenant for e in events} == {"globex"}
    assert {e.user for e in events} == {"user-0", "user-1"}


def _episode_events(service: Service, agent: str, episodes: int) -> list[Any]:
    """The episodes topic's events of `agent`, once `episodes` of its episodes have ended."""
    def read() -> list[Any]:
        reader = TopicReader(service.bootstrap, service.topics.episodes, Bounds())
        return [r.event for r in reader.records() if r.event.agent == agent]

    def ended(events: list[Any]) -> int:
        return len({e.episode_id for e in events if type(e.payload).__name__ == "EpisodeEnded"})

    def when_all_ended() -> list[Any]:
        events = read()
        return events if ended(events) >= episodes else []

    return wait_for(f"{episodes} episodes of {agent} recorded", when_all_ended, timeout=60)


def _export(service: Service, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    return service.post("/v1/traces", body, headers)


def _pb_request(spans: list[PbSpan], name: str = "bad-in") -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource={"attributes": [{"key": "service.name", "value": {"string_value": name}}]},
        scope_spans=[ScopeSpans(spans=spans)])])


def _tool_span(trace: int, span: int, tool: str = "x.y") -> PbSpan:
    return PbSpan(trace_id=trace.to_bytes(16, "big"), span_id=span.to_bytes(8, "big"),
                  parent_span_id=(10**6).to_bytes(8, "big"), name=f"execute_tool {tool}",
                  start_time_unix_nano=1, end_time_unix_nano=2,
                  attributes=[{"key": "gen_ai.tool.name", "value": {"string_value": tool}},
                              {"key": "gen_ai.operation.name",
                               "value": {"string_value": "execute_tool"}}])


_probes = itertools.count(1)


def _still_serving(service: Service) -> None:
    assert (service.get("/health") or {}).get("ok") is True
    probe = _tool_span(30_000 + next(_probes), 1)
    status, body = _export(service, _pb_request([probe]).SerializeToString(), PROTOBUF)
    assert status == 200 and not ExportTraceServiceResponse.FromString(body).HasField(
        "partial_success")


def test_random_bytes_are_a_400_and_the_service_goes_on(service: Service) -> None:
    status, body = _export(service, os.urandom(4096), PROTOBUF)
    assert status == 400 and b"not an OTLP protobuf" in body
    status, _ = _export(service, b"\x1f\x8b" + os.urandom(100), {**PROTOBUF,
                                                                "Content-Encoding": "gzip"})
    assert status == 400
    _still_serving(service)


def test_a_wrong_content_type_is_a_415(service: Service) -> None:
    status, body = _export(service, b"hello", {"Content-Type": "text/plain"})
    assert status == 415 and b"unsupported Content-Type" in body
    _still_serving(service)


def test_a_truncated_protobuf_is_a_400(service: Service) -> None:
    whole = _pb_request([_tool_span(1, i + 1) for i in range(5)]).SerializeToString()
    status, _ = _export(service, whole[: len(whole) // 2], PROTOBUF)
    assert status == 400
    _still_serving(service)


def test_ten_thousand_spans_in_one_request_are_all_taken(service: Service) -> None:
    spans = [_tool_span(10_000 + i // 100, i + 1) for i in range(10_000)]
    body = gzip.compress(_pb_request(spans).SerializeToString())
    status, answer = _export(service, body, {**PROTOBUF, "Content-Encoding": "gzip"})
    assert status == 200
    assert not ExportTraceServiceResponse.FromString(answer).HasField("partial_success")
    _still_serving(service)


def test_an_oversize_body_is_a_413(service: Service) -> None:
    status, _ = _export(service, b"\0" * (17 * 1024 * 1024), PROTOBUF)
    assert status == 413
    bomb = gzip.compress(b"\0" * (40 * 1024 * 1024))
    status, _ = _export(service, bomb, {**PROTOBUF, "Content-Encoding": "gzip"})
    assert status == 413
    _still_serving(service)


def test_spans_with_missing_ids_are_rejected_and_dead_lettered_and_the_rest_is_kept(
        service: Service) -> None:
    good = _tool_span(20_001, 1, "kept.tool")
    no_trace, no_span = _tool_span(20_002, 2), _tool_span(20_003, 3)
    no_trace.trace_id, no_span.span_id = b"", b""
    request = _pb_request([good, no_trace, no_span], name="ids-in")
    status, answer = _export(service, request.SerializeToString(), PROTOBUF)
    assert status == 200
    partial = ExportTraceServiceResponse.FromString(answer).partial_success
    assert partial.rejected_spans == 2 and "valid trace id" in partial.error_message
    status, answer = _export(service, json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"spanId": "ab" * 8, "name": "execute_tool j", "attributes": []}]}]}]}).encode(),
        {"Content-Type": "application/json"})
    assert status == 200 and json.loads(answer)["partialSuccess"]["rejectedSpans"] == 1

    def letters() -> list[Any]:
        reader = TopicReader(service.bootstrap, service.topics.deadletter, Bounds())
        return [r.event for r in reader.records() if r.event.component == "otlp"]

    found = wait_for("both spans dead-lettered", lambda: {x.reason for x in letters()} >= {
        "span without a valid trace id", "span without a valid span id"}, timeout=60)
    reasons = {x.reason for x in letters()}
    assert found
    assert {"span without a valid trace id", "span without a valid span id"} <= reasons
    def kept_calls() -> list[Any]:
        rows = (service.get("/analytics/failures?by=tool") or {}).get("rows", [])
        return [r["calls"] for r in rows if r["key"] == "kept.tool"]

    # recorded once its trace went idle (no root agent span came), the rejected spans are not
    assert wait_for("the kept span's call in analytics", kept_calls, timeout=120) == [1]
    service.drained()  # every stage caught up: a second copy of the call would be counted now
    assert kept_calls() == [1]
