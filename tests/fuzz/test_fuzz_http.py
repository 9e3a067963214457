"""Every HTTP handler of `kaizen serve` on random methods, paths, queries, headers and bodies,
sent as raw bytes to the real in-process server: never a 500, never a dropped answer, and the
service keeps answering `/health`."""

from __future__ import annotations

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
         *(f"/snapshots/{a}" for a in ("approve", "reject", "activate", "rollback", "explode"))]
KEYS = ["tenant", "agent", "by", "since", "until", "hours", "now", "bucket", "task", "user",
        "tools", "k", "signature", "snapshot_id", "to_time_ms", "to_offset", "actor", "reason"]
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
HEADERS = st.dictionaries(HEADER_NAME | st.sampled_from(["Content-Type", "Expect", "Connection",
                                                          "Transfer-Encoding", "Host"]),
                          st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
                          max_size=6)
BODY = st.one_of(st.binary(max_size=2048), JSON.map(lambda v: json.dumps(v).encode()),
                 st.dictionaries(st.sampled_from(KEYS), JSON, max_size=8)
                 .map(lambda v: json.dumps(v).encode()))


@pytest.fixture(scope="module")
def port(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    home = tmp_path_factory.mktemp("fuzz-http")
    prefix = f"fuzz{home.name[-6:]}"
    create_topics(kafka_broker.bootstrap, prefix, 1)
    settings = load_settings(home=home, http_port=0, kafka_bootstrap=kafka_broker.bootstrap,
                             topic_prefix=prefix)
    with in_process_service(settings, request_timeout=2.0) as server:
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
       length=st.one_of(st.none(), st.integers(-10, 10**10).map(str), URL_TEXT))
def test_no_request_gets_a_500_or_no_answer(
    port: int, method: str, path: str, query: str, headers: dict[str, str], body: bytes,
    length: str | None,
) -> None:
    lines = [f"{method} {path}{'?' + query if query else ''} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "content-length"]
    lines.append(f"Content-Length: {length if length is not None else len(body)}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    answer = _send(port, raw)
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1."), (raw[:300], answer[:300])
    status = int(status_line.split()[1])
    assert status < 500 or status == 503, (raw[:300], answer[:500])
    health = _send(port, b"GET /health HTTP/1.0\r\n\r\n")
    assert health.startswith(b"HTTP/1.0 200"), health[:200]
