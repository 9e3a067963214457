"""Every HTTP handler of `kaizen serve` on random methods, paths, queries, headers and bodies,
sent as raw bytes to the real in-process server: never a 500, never a dropped answer, and the
service keeps answering `/health`.

The routes are those of `kaizen/service/http_api.py` (`/`, `/health`, `/recall`, `/experiences`,
`/analytics/<name>`, `/snapshots`, `/snapshots/digest`, `/snapshots/<action>`, `/forget`) and the
OTLP route `/v1/traces` (`kaizen/integrations/otlp_http.py`), with OTLP bodies: JSON trace
requests, gzip, and the protobuf content type."""

from __future__ import annotations

import gzip
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaizen.settings import load_settings
from kaizen.streams.admin import create_topics
from tests.faults.http_service import in_process_service
from tests.fuzz.settings import fuzz

pytestmark = pytest.mark.integration

PATHS = ["/", "/health", "/recall", "/experiences", "/snapshots", "/snapshots/digest",
         *(f"/analytics/{n}" for n in ("failures", "signatures", "repeats", "snapshots", "curve",
                                       "nope")),
         *(f"/snapshots/{a}" for a in ("approve", "reject", "activate", "rollback", "explode")),
         "/forget", "/v1/traces", "/v1", "/v1/metrics"]
KEYS = ["tenant", "agent", "by", "since", "until", "hours", "now", "bucket", "task", "user",
        "tools", "k", "signature", "snapshot_id", "to_time_ms", "to_offset", "actor", "reason",
        "resourceSpans", "scopeSpans", "spans", "resource", "attributes", "traceId", "spanId",
        "parentSpanId", "name", "startTimeUnixNano", "endTimeUnixNano", "key", "value",
        "stringValue", "intValue", "status", "events"]
SCALARS = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30))
JSON: Any = st.recursive(SCALARS, lambda c: st.lists(c, max_size=4)
                         | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), c,
                                           max_size=6), max_leaves=20)
URL_TEXT = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="#"),
                   max_size=20)
QUERY = st.dictionaries(st.sampled_from(KEYS), URL_TEXT | st.integers(-(2**70), 2**70).map(str),
                        max_size=5).map(lambda q: "&".join(f"{k}={v}" for k, v in q.items()))
PATH = st.one_of(st.sampled_from(PATHS), st.builds(lambda p, x: p + "/" + x,
                                                   st.sampled_from(PATHS), URL_TEXT))
HEADER_NAME = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"),
                      min_size=1, max_size=20)
LATIN1 = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=12)  # "²" is a digit
HEADER_VALUE = st.one_of(
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40), LATIN1,
    st.sampled_from(["application/json", "application/x-protobuf", "application/json; x=1",
                     "gzip", "deflate", "identity", "t1", "close", "100-continue", "chunked"]))
HEADERS = st.dictionaries(HEADER_NAME | st.sampled_from(["Content-Type", "Expect", "Connection",
                                                          "Transfer-Encoding", "Host",
                                                          "Content-Encoding", "X-Kaizen-Tenant"]),
                          HEADER_VALUE, max_size=6)
ATTRIBUTES = st.lists(st.fixed_dictionaries({"key": st.sampled_from(
    ["gen_ai.operation.name", "gen_ai.agent.name", "gen_ai.tool.name", "openinference.span.kind",
     "input.value", "output.value", "kaizen.tenant", "error.type"]) | st.text(max_size=12),
    "value": st.one_of(JSON, st.fixed_dictionaries({"stringValue": st.text(max_size=30)}),
                       st.fixed_dictionaries({"intValue": st.integers(-(2**70), 2**70)}))}),
    max_size=5)
HEX = st.text("0123456789abcdef", max_size=34)
TRACE_ID = st.sampled_from(["0" * 31 + "1", "ab" * 16]) | HEX  # mostly valid: real traces
SPAN_ID = st.sampled_from(["0" * 15 + "1", "0" * 15 + "2", "cd" * 8]) | HEX
SPAN = st.fixed_dictionaries(
    {"traceId": TRACE_ID, "spanId": SPAN_ID},
    optional={"parentSpanId": SPAN_ID, "name": st.text(max_size=20),
              "startTimeUnixNano": st.integers(-1, 2**70) | st.text(max_size=20),
              "endTimeUnixNano": st.integers(-1, 2**70) | st.text(max_size=20),
              "attributes": ATTRIBUTES, "status": JSON, "kind": st.integers(-1, 9)})
OTLP = st.fixed_dictionaries({"resourceSpans": st.lists(st.fixed_dictionaries(
    {"resource": st.fixed_dictionaries({"attributes": ATTRIBUTES}),
     "scopeSpans": st.lists(st.fixed_dictionaries({"spans": st.lists(SPAN, max_size=4)}),
                            max_size=2)}), max_size=2)}).map(lambda v: json.dumps(v).encode())
BODY = st.one_of(st.binary(max_size=2048), JSON.map(lambda v: json.dumps(v).encode()),
                 st.dictionaries(st.sampled_from(KEYS), JSON, max_size=8)
                 .map(lambda v: json.dumps(v).encode()),
                 OTLP, OTLP.map(gzip.compress), st.binary(max_size=512).map(gzip.compress))


@pytest.fixture(scope="module")
def port(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    home = tmp_path_factory.mktemp("fuzz-http")
    prefix = f"fuzz{home.name[-6:]}"
    create_topics(kafka_broker.bootstrap, prefix, 1)
    settings = load_settings(home=home, http_port=0, kafka_bootstrap=kafka_broker.bootstrap,
                             topic_prefix=prefix)
    with in_process_service(settings, otlp=True, request_timeout=2.0) as server:
        yield server.server_port


def _send(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@fuzz
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"]),
       path=PATH, query=QUERY, headers=HEADERS, body=BODY,
       length=st.one_of(st.none(), st.integers(-10, 10**10).map(str), URL_TEXT, LATIN1))
def test_no_request_gets_a_500_or_no_answer(
    port: int, method: str, path: str, query: str, headers: dict[str, str], body: bytes,
    length: str | None,
) -> None:
    lines = [f"{method} {path}{'?' + query if query else ''} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "content-length"]
    lines.append(f"Content-Length: {length if length is not None else len(body)}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body  # as headers are read
    answer = _send(port, raw)
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1."), (raw[:300], answer[:300])
    status = int(status_line.split()[1])
    assert status < 500 or status == 503, (raw[:300], answer[:500])
    health = _send(port, b"GET /health HTTP/1.0\r\n\r\n")
    assert health.startswith(b"HTTP/1.0 200"), health[:200]
