"""Issue 13: the HTTP service under load had no request timeouts, a listen backlog of 5, no body
limit and one thread per connection. A slow or hostile client must cost a bounded, short-lived
share of the service, and every bad request gets a clear status code, never a dropped connection.
"""

from __future__ import annotations

import json
import select
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from kaizen.settings import load_settings
from tests.faults.http_service import in_process_service, request


@pytest.fixture(scope="module")
def service(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("http-limits")
    settings = load_settings(home=home, http_port=0, kafka_bootstrap=kafka_broker.bootstrap,
                             topic_prefix=f"http{home.name[-6:]}")
    with in_process_service(settings, otlp=True, request_timeout=1.0, max_threads=8,
                            max_body_bytes=64 * 1024) as server:
        yield server


def _connects_accepted_without_accept(port: int, clients: int) -> int:
    """Open `clients` connections at once while nobody calls accept(): how many the kernel
    completes is what the listen backlog allows."""
    socks = [socket.socket() for _ in range(clients)]
    for sock in socks:
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
    _, writable, _ = select.select([], socks, [], 2.0)
    ok = sum(1 for s in writable if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0)
    for sock in socks:
        sock.close()
    return ok


def test_the_listen_backlog_holds_a_burst_of_clients(tmp_path: Path) -> None:
    from kaizen.service.http_api import make_server

    server = make_server("127.0.0.1", 0, None, load_settings(home=tmp_path))  # type: ignore[arg-type]
    try:
        assert _connects_accepted_without_accept(server.server_port, 64) == 64
    finally:
        server.server_close()


def test_an_idle_or_half_sent_request_is_closed_and_the_service_keeps_answering(
    service: Any,
) -> None:
    port = service.server_port
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]  # > max_threads
    half = socket.create_connection(("127.0.0.1", port))
    half.sendall(b"POST /recall HTTP/1.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n{")
    status, answer = request(port, "GET", "/health")
    assert status == 200 and answer["ok"] is True
    extra = threading.active_count()
    assert extra <= 8 + 6, extra  # the pool's workers, the serve loop, the test's own threads
    for sock in [*idle, half]:
        sock.settimeout(30)
        data = sock.recv(65536)  # the server closes (or answers 408) instead of waiting forever
        assert data == b"" or data.startswith(b"HTTP/1.") and b" 408 " in data.split(b"\r\n")[0]
        sock.close()
    assert request(port, "GET", "/health")[0] == 200


@pytest.mark.parametrize(("headers", "body", "expected"), [
    ({"Content-Length": str(10**9)}, b"{}", 413),
    ({"Content-Length": "-5"}, b"{}", 400),
    ({"Content-Length": "many"}, b"{}", 400),
    ({}, b"[" * 60_000, 400),  # nested past the recursion limit, under the body cap
    ({}, json.dumps({"task": "x", "agent": "a", "tenant": "t", "k": "lots"}).encode(), 400),
    ({}, b"\xff\xfe not utf-8", 400),
    ({}, b'"just a string"', 400),
])
def test_every_bad_body_gets_a_clear_status(
    service: Any, headers: dict[str, str], body: bytes, expected: int
) -> None:
    for path in ("/recall", "/snapshots/approve", "/forget"):  # /forget read any length once
        status, answer = request(service.server_port, "POST", path, body, headers)
        assert status == expected, (path, answer)
        assert isinstance(answer, dict) and answer.get("error")
    assert request(service.server_port, "GET", "/health")[0] == 200


@pytest.mark.parametrize(("headers", "expected"), [
    ({"Content-Type": "text/plain", "Content-Length": "many"}, 415),
    ({"Content-Type": "text/plain", "Content-Length": "\u00b2"}, 415),  # "²": a digit, no int
    ({"Content-Type": "application/json", "Content-Length": "\u00b2"}, 411),
    ({"Content-Type": "application/json", "Content-Length": "-5"}, 411),
])
def test_a_bad_otlp_content_length_gets_a_clear_status(
    service: Any, headers: dict[str, str], expected: int
) -> None:
    status, answer = request(service.server_port, "POST", "/v1/traces", b"{}", headers)
    assert status == expected, answer  # a 500 before: int() of the header raised
    assert request(service.server_port, "GET", "/health")[0] == 200
