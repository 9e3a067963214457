"""Limits for the stdlib HTTP server of `kaizen serve`, so no client can hurt the service.

`ThreadingHTTPServer` alone has a listen backlog of 5 (a burst of 20 clients loses requests), no
request timeout (an idle or half-sent request holds a thread for ever), no body limit and one
thread per connection. Here: a real backlog, a bounded pool of workers with a bounded queue (503
past it), a timeout on every read, a body cap (413), and a handler base class that turns every
bad request into a clear 4xx JSON answer, and any bug into a 500 answer and a logged traceback
instead of a dropped connection.
"""

from __future__ import annotations

import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog

from kaizen.errors import KaizenError

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Limits:
    """What one client may cost the service."""

    request_timeout: float = 10.0  # seconds for each read of a request (line, headers, body)
    max_body_bytes: int = 1024 * 1024
    max_threads: int = 16  # requests handled at once
    max_queued: int = 256  # accepted connections waiting for a worker; past it: 503
    backlog: int = 1024  # connections the kernel holds before accept (capped by somaxconn)


class HTTPError(KaizenError):
    """A request the service refuses, with the status code to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class LimitedHandler(BaseHTTPRequestHandler):
    """Base of the API handler: bounded reads, JSON errors, and never a dropped connection."""

    limits = Limits()
    timeout = limits.request_timeout  # StreamRequestHandler applies it to every socket read

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.timeout = cls.limits.request_timeout

    def setup(self) -> None:
        self.replied = False
        super().setup()

    def send_response(self, code: int, message: str | None = None) -> None:
        self.replied = True
        super().send_response(code, message)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except HTTPError as error:
            self._answer_error(error.status, error.message)
        except (TimeoutError, ConnectionError):
            self.close_connection = True  # the client went away or stalled: nothing to answer
        except Exception:  # noqa: BLE001 - a bug: log it, answer 500, keep serving
            log.exception("http handler failed", path=getattr(self, "path", None))
            self._answer_error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error (logged)")

    def _not_allowed(self) -> None:
        """405 for the methods the API does not use (stdlib's default is an HTML 501)."""
        self._answer_error(HTTPStatus.METHOD_NOT_ALLOWED, f"method {self.command} not allowed; "
                           "the API answers GET and POST")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_TRACE = do_CONNECT = _not_allowed

    def read_json(self) -> Any:
        """The request's JSON body ({} if empty), bounded by `limits.max_body_bytes`."""
        raw_length = self.headers.get("Content-Length", "0")
        try:
            length = int(raw_length)
        except ValueError:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"bad Content-Length {raw_length!r}") from None
        if length < 0:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"bad Content-Length {length}")
        if length > self.limits.max_body_bytes:
            raise HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                            f"body of {length} bytes; the limit is {self.limits.max_body_bytes}")
        try:
            data = self.rfile.read(length)
        except TimeoutError:
            raise HTTPError(HTTPStatus.REQUEST_TIMEOUT, "the body did not arrive in time") from None
        try:
            return json.loads(data or b"{}")
        except (ValueError, RecursionError) as error:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"body is not JSON: {error}") from None

    def _answer_error(self, status: int, message: str) -> None:
        self.close_connection = True
        if self.replied:
            return
        data = json.dumps({"error": message}).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass


class LimitedHTTPServer(ThreadingHTTPServer):
    """`ThreadingHTTPServer` with a real backlog and a bounded pool of workers."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[LimitedHandler],
                 limits: Limits) -> None:
        self.limits = limits
        self.request_queue_size = limits.backlog
        self._pool = ThreadPoolExecutor(limits.max_threads, thread_name_prefix="kaizen-http")
        self._slots = threading.BoundedSemaphore(limits.max_threads + limits.max_queued)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            _refuse_busy(request)
            self.shutdown_request(request)
            return
        self._pool.submit(self._work, request, client_address)

    def _work(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)


def _refuse_busy(request: socket.socket) -> None:
    """Answer 503 at once from the accept loop (never blocking it) when every slot is taken."""
    body = b'{"error": "service busy, retry"}'
    head = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            b"Retry-After: 1\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    try:
        request.setblocking(False)
        request.send(head + body)
    except OSError:
        pass
