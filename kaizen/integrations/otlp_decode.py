"""OTLP/HTTP trace bodies to plain `Span`s: protobuf (`opentelemetry-proto`) or JSON, gzip or not.

A body that does not decode as a whole raises `BodyError` (the route answers 400); a gzip body
that inflates beyond `max_bytes` raises `TooLarge` (413). Within a decodable JSON body, a span
whose fields have the wrong shape is returned as a rejection with its reason, and the other spans
are kept. `opentelemetry-proto` is imported only when a protobuf body arrives.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from kaizen.errors import KaizenError
from kaizen.integrations.otlp_mapping import Span

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
ERROR_CODES = {"STATUS_CODE_ERROR": 2, "STATUS_CODE_OK": 1, "STATUS_CODE_UNSET": 0}
Rejection = tuple[str, str]  # (a short description of the span, reason)


class BodyError(KaizenError, ValueError):
    """The request body is not an OTLP trace export (the route answers 400)."""


class TooLarge(KaizenError, ValueError):
    """The body, or what it inflates to, is over the size limit (413)."""


def inflate(body: bytes, encoding: str, max_bytes: int) -> bytes:
    """The body without its Content-Encoding; at most `max_bytes` are ever inflated."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise BodyError(f"unsupported Content-Encoding {encoding!r} (gzip or none)")
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error as error:
        raise BodyError(f"body is not valid gzip: {error}") from error
    if len(out) > max_bytes:
        raise TooLarge(f"gzip body inflates beyond {max_bytes} bytes")
    if not inflater.eof:
        raise BodyError("gzip body is truncated")
    return out


def decode(body: bytes, content_type: str) -> tuple[list[Span], list[Rejection]]:
    """Spans and per-span rejections of one export request."""
    if content_type == PROTOBUF:
        return _decode_protobuf(body), []
    if content_type == JSON:
        return _decode_json(body)
    raise ValueError(content_type)  # the route checks the content type first


def _decode_protobuf(body: bytes) -> list[Span]:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, RuntimeError, ValueError) as error:
        raise BodyError(f"body is not an OTLP protobuf ExportTraceServiceRequest: {error}"
                        ) from error
    spans = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: _pb_value(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                exception = next((_pb_value(kv.value) for e in s.events if e.name == "exception"
                                  for kv in e.attributes if kv.key == "exception.message"), "")
                spans.append(Span(
                    trace_id=s.trace_id.hex(), span_id=s.span_id.hex(),
                    parent_id=s.parent_span_id.hex(), name=s.name,
                    start_ns=s.start_time_unix_nano, end_ns=s.end_time_unix_nano,
                    attributes={kv.key: _pb_value(kv.value) for kv in s.attributes},
                    resource=resource, status_code=s.status.code,
                    status_message=s.status.message, exception=str(exception)))
    return spans


def _pb_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_pb_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _pb_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def _decode_json(body: bytes) -> tuple[list[Span], list[Rejection]]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise BodyError(f"body is not JSON: {error}") from error
    if not isinstance(data, dict) or not isinstance(data.get("resourceSpans", []), list):
        raise BodyError("JSON body has no resourceSpans list")
    spans: list[Span] = []
    rejected: list[Rejection] = []
    for resource_spans in data.get("resourceSpans", []):
        try:
            resource = _json_attrs(_get(resource_spans, "resource", {}).get("attributes"))
            groups = (_get(resource_spans, "scopeSpans", None)
                      or _get(resource_spans, "instrumentationLibrarySpans", []))
            raw_spans = [s for group in _list(groups) for s in _list(_get(group, "spans", []))]
        except (TypeError, ValueError, AttributeError) as error:
            rejected.append(("resourceSpans entry", f"malformed resourceSpans: {error}"))
            continue
        for raw in raw_spans:
            try:
                spans.append(_json_span(raw, resource))
            except (TypeError, ValueError, AttributeError, binascii.Error) as error:
                rejected.append((json.dumps(raw, default=str)[:2000], f"malformed span: {error}"))
    return spans, rejected


def _json_span(raw: Any, resource: Mapping[str, Any]) -> Span:
    if not isinstance(raw, dict):
        raise TypeError("span is not an object")
    status = raw.get("status") or {}
    code = status.get("code", 0)
    exception = next((str(_json_attrs(e.get("attributes")).get("exception.message", ""))
                      for e in _list(raw.get("events", [])) if e.get("name") == "exception"), "")
    return Span(
        trace_id=_json_id(raw.get("traceId")), span_id=_json_id(raw.get("spanId")),
        parent_id=_json_id(raw.get("parentSpanId")), name=str(raw.get("name", "")),
        start_ns=int(raw.get("startTimeUnixNano") or 0),
        end_ns=int(raw.get("endTimeUnixNano") or 0),
        attributes=_json_attrs(raw.get("attributes")), resource=resource,
        status_code=ERROR_CODES.get(code, 0) if isinstance(code, str) else int(code),
        status_message=str(status.get("message", "")), exception=exception)


def _json_id(value: Any) -> str:
    """OTLP JSON ids are hex; some exporters send protobuf-JSON base64 instead: accept both."""
    if not value:
        return ""
    text = str(value)
    if len(text) in (16, 32) and all(c in "0123456789abcdefABCDEF" for c in text):
        return text.lower()
    return base64.b64decode(text, validate=True).hex()


def _json_attrs(items: Any) -> dict[str, Any]:
    return {str(kv["key"]): _json_value(kv.get("value") or {}) for kv in _list(items or [])}


def _json_value(value: Mapping[str, Any]) -> Any:
    if "stringValue" in value:
        return str(value["stringValue"])
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [_json_value(v) for v in _list(value["arrayValue"].get("values", []))]
    if "kvlistValue" in value:
        return _json_attrs(value["kvlistValue"].get("values", []))
    if "bytesValue" in value:
        return base64.b64decode(str(value["bytesValue"])).hex()
    return None


def _get(obj: Any, key: str, default: Any) -> Any:
    if not isinstance(obj, dict):
        raise TypeError("expected an object")
    return obj.get(key, default)


def _list(value: Any) -> Iterable[Any]:
    if not isinstance(value, list):
        raise TypeError("expected a list")
    return value
