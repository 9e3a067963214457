"""`POST /v1/traces`: the OTLP/HTTP trace route, called from the service's HTTP handler.

Status codes follow the OTLP/HTTP spec: 200 with an `ExportTraceServiceResponse` (its
`partial_success` counts the rejected spans and says why), 400 for a body that does not decode,
411 without Content-Length, 413 over `max_bytes` (also once inflated), 415 for a content type other
than `application/x-protobuf` or `application/json`. Errors carry a `google.rpc.Status` (protobuf
requests) or its JSON form. The answer never waits for the broker.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any

from kaizen.integrations.otlp_decode import JSON, PROTOBUF, BodyError, TooLarge, decode, inflate
from kaizen.integrations.otlp_ingest import ExportResult, OtlpReceiver

TENANT_HEADER = "X-Kaizen-Tenant"
DRAIN_LIMIT = 256 * 1024 * 1024  # an oversize body is read (and dropped) up to this, then cut


def handle_traces(handler: BaseHTTPRequestHandler, receiver: OtlpReceiver, max_bytes: int
                  ) -> None:
    """Answer one export request on `handler`."""
    content_type = handler.headers.get("Content-Type", "").split(";")[0].strip().lower()
    length = _length(handler)
    if content_type not in (PROTOBUF, JSON):
        drained = length is not None and _drain(handler, length)
        _error(handler, 415, JSON, f"unsupported Content-Type {content_type!r}; use "
                                   f"{PROTOBUF} or {JSON}", close=not drained)
        return
    if length is None:
        _error(handler, 411, content_type, "Content-Length is required", close=True)
        return
    if length > max_bytes:
        drained = _drain(handler, length)
        _error(handler, 413, content_type, f"body of {length} bytes is over the limit of "
                                           f"{max_bytes}", close=not drained)
        return
    body = handler.rfile.read(length)
    try:
        data = inflate(body, handler.headers.get("Content-Encoding", ""), max_bytes)
        spans, rejections = decode(data, content_type)
    except TooLarge as error:
        _error(handler, 413, content_type, str(error))
        return
    except BodyError as error:
        _error(handler, 400, content_type, str(error))
        return
    except ImportError:  # the service was installed without the `otel` extra
        _error(handler, 415, JSON, "protobuf bodies need `pip install 'kaizen-fleet[otel]'`; "
                                   "JSON bodies work without it")
        return
    tenant = handler.headers.get(TENANT_HEADER) or None
    _success(handler, content_type, receiver.export(spans, rejections, tenant))


def _success(handler: BaseHTTPRequestHandler, content_type: str, result: ExportResult) -> None:
    if content_type == PROTOBUF:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTracePartialSuccess,
            ExportTraceServiceResponse,
        )

        response = ExportTraceServiceResponse()
        if result.rejected:
            response.partial_success.CopyFrom(ExportTracePartialSuccess(
                rejected_spans=result.rejected, error_message=result.message))
        _send(handler, 200, PROTOBUF, response.SerializeToString())
        return
    body: dict[str, Any] = {}
    if result.rejected:
        body["partialSuccess"] = {"rejectedSpans": result.rejected,
                                  "errorMessage": result.message}
    _send(handler, 200, JSON, json.dumps(body).encode())


def _error(handler: BaseHTTPRequestHandler, status: int, content_type: str, message: str,
           close: bool = False) -> None:
    code = {400: 3, 411: 3, 413: 8, 415: 3}.get(status, 2)  # google.rpc.Code
    if content_type == PROTOBUF:
        from google.rpc.status_pb2 import Status

        data = Status(code=code, message=message).SerializeToString()
    else:
        data = json.dumps({"code": code, "message": message}).encode()
    _send(handler, status, content_type, data, close)


def _send(handler: BaseHTTPRequestHandler, status: int, content_type: str, data: bytes,
          close: bool = False) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    if close:
        handler.send_header("Connection", "close")
        handler.close_connection = True
    handler.end_headers()
    handler.wfile.write(data)


def _length(handler: BaseHTTPRequestHandler) -> int | None:
    """The request's Content-Length, None when absent or not a number of bytes."""
    header = (handler.headers.get("Content-Length") or "").strip()
    return int(header) if header.isdigit() and header.isascii() else None


def _drain(handler: BaseHTTPRequestHandler, length: int) -> bool:
    """Read and drop a body we refuse, so the client sees our answer; False if cut short."""
    left = min(length, DRAIN_LIMIT)
    while left > 0:
        chunk = handler.rfile.read(min(left, 1 << 20))
        if not chunk:
            return False
        left -= len(chunk)
    return length <= DRAIN_LIMIT
