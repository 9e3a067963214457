"""OTLP bodies: protobuf from the real opentelemetry-proto classes, the OTLP JSON form, gzip."""

from __future__ import annotations

import gzip
import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Status
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from kaizen.integrations.otlp_decode import (
    JSON,
    PROTOBUF,
    BodyError,
    TooLarge,
    decode,
    inflate,
)


def _kv(key: str, value: str | int) -> KeyValue:
    any_value = AnyValue(int_value=value) if isinstance(value, int) else AnyValue(
        string_value=value)
    return KeyValue(key=key, value=any_value)


def protobuf_body() -> bytes:
    tool = PbSpan(trace_id=bytes.fromhex("ab" * 16), span_id=bytes.fromhex("01" * 8),
                  parent_span_id=bytes.fromhex("02" * 8), name="execute_tool orders.get",
                  start_time_unix_nano=10, end_time_unix_nano=20,
                  attributes=[_kv("gen_ai.tool.name", "orders.get"), _kv("n", 3)],
                  status=Status(code=2, message="boom"))
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource={"attributes": [_kv("service.name", "svc")]},
        scope_spans=[ScopeSpans(spans=[tool])])])
    return request.SerializeToString()


def json_body() -> bytes:
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "kaizen.tenant", "value": {"stringValue": "acme"}}]},
        "scopeSpans": [{"spans": [
            {"traceId": "AB" * 16, "spanId": "01" * 8, "name": "execute_tool x",
             "startTimeUnixNano": "10", "endTimeUnixNano": "20",
             "attributes": [{"key": "gen_ai.tool.name", "value": {"stringValue": "x"}},
                            {"key": "k", "value": {"intValue": "5"}}],
             "status": {"code": "STATUS_CODE_ERROR", "message": "bad"},
             "events": [{"name": "exception", "attributes": [
                 {"key": "exception.message", "value": {"stringValue": "oops"}}]}]},
            {"traceId": "ab" * 16, "spanId": "02" * 8, "attributes": "not a list"},
        ]}]}]}).encode()


def test_protobuf_body_decodes_ids_attributes_status_and_resource() -> None:
    spans, rejected = decode(protobuf_body(), PROTOBUF)
    assert rejected == []
    (s,) = spans
    assert (s.trace_id, s.span_id, s.parent_id) == ("ab" * 16, "01" * 8, "02" * 8)
    assert s.attributes == {"gen_ai.tool.name": "orders.get", "n": 3}
    assert (s.status_code, s.status_message, s.resource) == (2, "boom", {"service.name": "svc"})


def test_json_body_keeps_good_spans_and_rejects_a_malformed_one() -> None:
    spans, rejected = decode(json_body(), JSON)
    (s,) = spans
    assert (s.trace_id, s.status_code, s.exception) == ("ab" * 16, 2, "oops")
    assert s.attributes == {"gen_ai.tool.name": "x", "k": 5}
    assert s.resource == {"kaizen.tenant": "acme"}
    assert len(rejected) == 1 and rejected[0][1].startswith("malformed span")


@pytest.mark.parametrize("body", [b"\xff\x00garbage", protobuf_body()[:-7]])
def test_bytes_that_are_not_a_protobuf_export_raise_body_error(body: bytes) -> None:
    with pytest.raises(BodyError):
        decode(body, PROTOBUF)


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"resourceSpans": 3}'])
def test_json_that_is_not_an_export_raises_body_error(body: bytes) -> None:
    with pytest.raises(BodyError):
        decode(body, JSON)


def test_gzip_inflates_within_the_limit_and_refuses_bombs_and_garbage() -> None:
    body = json_body()
    assert inflate(gzip.compress(body), "gzip", 1 << 20) == body
    assert inflate(body, "", 10) == body
    with pytest.raises(TooLarge):
        inflate(gzip.compress(b"\0" * (1 << 20)), "gzip", 1 << 16)
    with pytest.raises(BodyError):
        inflate(b"not gzip", "gzip", 1 << 20)
    with pytest.raises(BodyError):
        inflate(gzip.compress(body)[:-12], "gzip", 1 << 20)
    with pytest.raises(BodyError):
        inflate(body, "br", 1 << 20)
