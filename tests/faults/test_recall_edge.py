"""Issue 13: `recall()` raised `TimeoutError` / `ConnectionResetError` into the agent (only
`URLError` was caught). Whatever the service or the network does, recall returns no lessons and
logs once, and answers again as soon as a real service does.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from structlog.testing import capture_logs

from kaizen.client.embedded import open_library
from kaizen.client.recall import recall
from kaizen.settings import load_settings

Behaviour = Callable[[socket.socket], None]


def _hang(conn: socket.socket) -> None:
    conn.recv(65536)
    threading.Event().wait(10)  # reads the request, never answers


def _reset(conn: socket.socket) -> None:
    conn.recv(65536)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _garbage(conn: socket.socket) -> None:
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnot json!")


def _server_error(conn: socket.socket) -> None:
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\n{}")


def _wrong_shape(conn: socket.socket) -> None:
    conn.recv(65536)
    conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 26\r\n\r\n{"lessons": [{"x": 1}, 2]}')


@contextmanager
def hostile_service(behaviour: Behaviour) -> Iterator[int]:
    """A TCP server on a free port that answers every connection with `behaviour`."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                behaviour(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()


def test_recall_never_raises_whatever_the_service_does_and_warns_once(tmp_path: Path) -> None:
    behaviours = (_hang, _reset, _garbage, _server_error, _wrong_shape)
    with capture_logs() as logs:
        for behaviour in behaviours:
            with hostile_service(behaviour) as port:
                settings = load_settings(home=tmp_path / behaviour.__name__, http_port=port)
                answers = [recall("a task", agent="a", tenant="t", settings=settings,
                                  timeout=0.5) for _ in range(3)]
            assert answers == [[], [], []], behaviour.__name__
    reasons = [e["event"] for e in logs if e["log_level"] == "warning"]
    assert reasons and len(reasons) == len(set(reasons))  # each kind of trouble logged once


def test_recall_without_a_service_and_with_the_store_busy_returns_no_lessons(
    tmp_path: Path,
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:  # a port nothing listens on after close
        port = taken.getsockname()[1]
    settings = load_settings(home=tmp_path, http_port=port)
    holder = open_library(settings)  # another process would hold the embedded store like this
    try:
        assert recall("a task", agent="a", tenant="t", settings=settings, timeout=0.5) == []
    finally:
        holder.close()
