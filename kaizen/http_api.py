"""The HTTP API of `kaizen serve` (stdlib server, JSON in and out, bound to 127.0.0.1 by default).

    GET  /              the dashboard (kaizen/static/dashboard.html)
    GET  /health
    POST /recall        {"task", "agent", "tenant", "user"?, "tools"?, "k"?}
    GET  /experiences   ?tenant=&agent=
    GET  /analytics/<failures|signatures|repeats|snapshots|curve>?by=&since=&until=&hours=&agent=
    GET  /snapshots     ?tenant=&agent=     (timeline and the active snapshot per scope)
    POST /snapshots/<approve|reject|activate|rollback>
                        {"tenant", "agent", "snapshot_id"?, "to_time_ms"?, "to_offset"?, "reason"?}
"""

from __future__ import annotations

import json
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

from kaizen.processors.learning.snapshots import SnapshotLog
from kaizen.recall import recall_from_index
from kaizen.settings import Settings
from kaizen.sinks import analytics
from kaizen.snapshot_actions import Request, events_for

if TYPE_CHECKING:
    from kaizen.behavior import Behavior
    from kaizen.service import Stores

ANALYTICS = ("failures", "signatures", "repeats", "snapshots", "curve")
DASHBOARD = Path(__file__).parent / "static" / "dashboard.html"


def run_analytics(stores: Stores, name: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """One analytics query by name; the same function serves the CLI and the API."""
    since = int(params.get("since", 0))
    until = int(params.get("until", analytics.END_OF_TIME))
    client = stores.clickhouse.client
    with stores.lock:
        if name == "failures":
            by = params.get("by", "tool")
            return analytics.failure_rate(client, by, since, until)  # type: ignore[arg-type]
        if name == "signatures":
            latest = analytics.latest_event_ms(client) if params.get("anchor") == "latest" else None
            now = int(params.get("until") or params.get("now") or latest or time.time() * 1000)
            return analytics.new_signatures(client, int(params.get("hours", 24)), now,
                                            int(params["since"]) if "since" in params else None)
        if name == "repeats":
            return analytics.repeat_failures(client, since, until)
        if name == "snapshots":
            return analytics.outcomes_by_snapshot(client)
        if name == "curve":
            return analytics.learning_curve(client, params["agent"],
                                            int(params.get("bucket", 60)), params.get("tenant"))
    raise KeyError(name)


def snapshot_rows(log: SnapshotLog, scope: str | None = None) -> list[dict[str, Any]]:
    """Every snapshot lifecycle event (of a scope), oldest first: the snapshot timeline."""
    rows = []
    for name, items in sorted(log.scopes.items()):
        if scope is not None and name != scope:
            continue
        for item in items:
            e = item.event
            rows.append({"offset": item.offset, "occurred_at": e.occurred_at, "scope": name,
                         "snapshot_id": e.snapshot_id, "action": e.action, "parent": e.parent_id,
                         "size": len(e.members), "added": len(e.added), "removed": len(e.removed),
                         "evaluator": e.evaluator, "verdict": e.verdict, "actor": e.actor,
                         "reason": e.reason, "edge_cases": list(e.edge_cases)})
    return sorted(rows, key=lambda r: r["offset"])


def make_server(host: str, port: int, stores: Stores, settings: Settings,
                behavior: Behavior | None = None) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            return

        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body, default=str).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _reply_html(self, data: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            url = urlparse(self.path)
            params = {k: v[-1] for k, v in parse_qs(url.query).items()}
            parts = [p for p in url.path.split("/") if p]
            try:
                if not parts:
                    self._reply_html(DASHBOARD.read_bytes())
                elif parts == ["health"]:
                    self._reply(200, {"ok": True, "experiences": len(stores.index)})
                elif len(parts) == 2 and parts[0] == "analytics" and parts[1] in ANALYTICS:
                    self._reply(200, {"rows": run_analytics(stores, parts[1], params)})
                elif parts == ["snapshots", "digest"] and behavior is not None:
                    with behavior.lock:
                        digests = dict(behavior.digests)
                    self._reply(200, {"digests": digests})
                elif parts == ["snapshots"] and behavior is not None:
                    scope = (f"{params['tenant']}/{params['agent']}"
                             if "tenant" in params and "agent" in params else None)
                    with behavior.lock:
                        rows = snapshot_rows(behavior.log, scope)
                        active = {name: behavior.log.active(name) for name in behavior.log.scopes}
                    self._reply(200, {"events": rows, "active": active})
                elif parts == ["experiences"]:
                    found = stores.library.scroll(tenant=params.get("tenant"),
                                                  agent=params.get("agent"))
                    self._reply(200, {"experiences": [_experience_json(e.experience)
                                                      for e in found]})
                else:
                    self._reply(404, {"error": f"no such endpoint: {url.path}"})
            except (KeyError, ValueError) as error:
                self._reply(HTTPStatus.BAD_REQUEST, {"error": f"bad request: {error}"})

        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            parts = [p for p in urlparse(self.path).path.split("/") if p]
            if len(parts) == 2 and parts[0] == "snapshots" and behavior is not None:
                self._snapshot_action(parts[1])
                return
            if parts != ["recall"]:
                self._reply(404, {"error": "no such endpoint"})
                return
            try:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                self._reply(200, recall_from_index(stores.index, body))
            except (KeyError, ValueError, TypeError) as error:
                self._reply(HTTPStatus.BAD_REQUEST, {"error": f"bad request: {error}"})

        def _snapshot_action(self, action: str) -> None:
            assert behavior is not None
            try:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                request = Request(action, body["tenant"], body["agent"], body.get("snapshot_id"),
                                  body.get("to_time_ms"), body.get("to_offset"),
                                  body.get("actor", "api"), body.get("reason"))
                with behavior.lock:
                    events = events_for(behavior.log, request)
                behavior.publish(events)
                self._reply(200, {"events": [e.event_id for e in events]})
            except (KeyError, ValueError, TypeError) as error:
                self._reply(HTTPStatus.BAD_REQUEST, {"error": str(error)})

    return ThreadingHTTPServer((host, port), Handler)


def _experience_json(experience: Any) -> dict[str, Any]:
    from kaizen.streams.replay import event_as_dict

    return event_as_dict(experience)
