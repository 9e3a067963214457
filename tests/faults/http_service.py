"""The HTTP API of `kaizen serve` in this process, on a free port, over real embedded stores."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kaizen.service.host import Stores, make_behavior
from kaizen.settings import Settings


@contextmanager
def in_process_service(settings: Settings, otlp: bool = False,
                       **server_options: Any) -> Iterator[Any]:
    """Open the stores and the gate (and with `otlp` the `/v1/traces` receiver), serve the API
    on `settings.http_port` (0: a free port), yield the server (its port is
    `server.server_port`), then shut everything down."""
    from kaizen.integrations.otlp_ingest import OtlpReceiver
    from kaizen.service.http_api import make_server

    stores = Stores.open(settings)
    behavior = make_behavior(settings, stores)
    receiver = OtlpReceiver.from_settings(settings).start() if otlp else None
    server = make_server(settings.http_host, settings.http_port, stores, settings, behavior,
                         otlp=receiver, **server_options)
    thread = threading.Thread(target=server.serve_forever, name="test-http", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
        if receiver is not None:
            receiver.close()
        stores.close()


def request(port: int, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None, timeout: float = 30.0) -> tuple[int, Any]:
    """One request; the status and the decoded JSON answer (or the raw bytes if not JSON). A body
    goes as JSON unless the headers say otherwise, as a client of the API sends it."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    sent = {"Content-Type": "application/json"} if body is not None else {}
    try:
        conn.request(method, path, body=body, headers={**sent, **(headers or {})})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(data)
    except ValueError:
        return response.status, data
