"""The HTTP API of `kaizen serve` (stdlib server, JSON in and out, bound to 127.0.0.1 by default).

    GET  /              the dashboard (kaizen/service/static/dashboard.html)
    GET  /health
    POST /recall        {"task", "agent", "tenant", "user"?, "tools"?, "k"?, "signature"?,
                         "min_score"?, "tool"? (only that tool's lessons), "margin"?}
    GET  /experiences   ?tenant=&agent=
    GET  /analytics/<failures|signatures|repeats|snapshots|curve>?by=&since=&until=&hours=&agent=
    GET  /snapshots     ?tenant=&agent=     (timeline and the active snapshot per scope)
    POST /snapshots/<approve|reject|activate|rollback>
                        {"tenant", "agent", "snapshot_id"?, "to_time_ms"?, "to_offset"?, "reason"?}
    POST /v1/traces     OTLP/HTTP traces (kaizen.integrations.otlp_http; ingest role)

Every route names the role it needs (`auth`: recall, reader, operator, ingest) and `_guard` checks
it, with the tenant, once per request: 401 without a valid token where one is required, 403 for a
role or tenant the token lacks or a cross-origin POST, 415 for a POST that is not JSON. Reads
return only the token's tenants; the actor of a snapshot action is the token's identity; a
user-bound token recalls as its user only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

from kaizen.processors.learning.snapshots import SnapshotLog, scope_of
from kaizen.readmodel.index import recall_from_index
from kaizen.schemas.records import to_json
from kaizen.schemas.scope import parse_scope_key
from kaizen.service import auth
from kaizen.service.http_limits import LimitedHandler, LimitedHTTPServer, Limits
from kaizen.service.snapshot_actions import Request, events_for
from kaizen.settings import Settings, SettingsError
from kaizen.sinks import analytics

if TYPE_CHECKING:
    from kaizen.integrations.otlp_ingest import OtlpReceiver
    from kaizen.service.gate import Behavior
    from kaizen.service.stores import Stores

ANALYTICS = ("failures", "signatures", "repeats", "snapshots", "curve")
DASHBOARD = Path(__file__).parent / "static" / "dashboard.html"


def auth_policy(settings: Settings, host: str | None = None) -> auth.AuthPolicy:
    """The API's token policy for a server bound to `host`; `SettingsError` says what to set."""
    tokens = settings.api_tokens.get_secret_value() if settings.api_tokens else None
    try:
        return auth.load_policy(host or settings.http_host, tokens, settings.api_tokens_file,
                                settings.api_require_tokens)
    except ValueError as error:
        raise SettingsError(str(error)) from None


def run_analytics(stores: Stores, name: str, params: dict[str, str],
                  tenants: frozenset[str] | None = None) -> list[dict[str, Any]]:
    """One analytics query by name, over `tenants` (None: all); serves the CLI and the API."""
    scoped = {"tenants": tenants}
    since = int(params.get("since", 0))
    until = int(params.get("until", analytics.END_OF_TIME))
    client = stores.clickhouse.client
    with stores.lock:
        if name == "failures":
            by = params.get("by", "tool")
            return analytics.failure_rate(client, by, since, until,  # type: ignore[arg-type]
                                          **scoped)
        if name == "signatures":
            latest = analytics.latest_event_ms(client) if params.get("anchor") == "latest" else None
            now = int(params.get("until") or params.get("now") or latest or time.time() * 1000)
            return analytics.new_signatures(client, int(params.get("hours", 24)), now,
                                            int(params["since"]) if "since" in params else None,
                                            **scoped)
        if name == "repeats":
            return analytics.repeat_failures(client, since, until, **scoped)
        if name == "snapshots":
            return analytics.outcomes_by_snapshot(client, **scoped)
        if name == "curve":
            return analytics.learning_curve(client, params["agent"], int(params.get("bucket", 60)),
                                            params.get("tenant"), **scoped)
    raise KeyError(name)


def snapshot_rows(log: SnapshotLog, scope: str | None = None,
                  tenants: frozenset[str] | None = None) -> list[dict[str, Any]]:
    """Every snapshot lifecycle event (of a scope, of `tenants`), oldest first: the timeline."""
    rows = []
    for name, items in sorted(log.scopes.items()):
        if (scope is not None and name != scope) or not _of(name, tenants):
            continue
        for item in items:
            e = item.event
            rows.append({"offset": item.offset, "occurred_at": e.occurred_at, "scope": name,
                         "tenant": e.tenant, "agent": e.agent,
                         "snapshot_id": e.snapshot_id, "action": e.action, "parent": e.parent_id,
                         "size": len(e.members), "added": len(e.added), "removed": len(e.removed),
                         "evaluator": e.evaluator, "verdict": e.verdict, "actor": e.actor,
                         "reason": e.reason, "edge_cases": list(e.edge_cases)})
    return sorted(rows, key=lambda r: r["offset"])


def _of(scope: str, tenants: frozenset[str] | None) -> bool:
    """Is the scope key one of `tenants`' (None: every tenant)?"""
    return tenants is None or parse_scope_key(scope)[0] in tenants


def make_server(host: str, port: int, stores: Stores, settings: Settings,
                behavior: Behavior | None = None,
                health: Callable[[], dict[str, Any]] | None = None,
                otlp: OtlpReceiver | None = None,
                **limits: Any) -> LimitedHTTPServer:
    """The API server; `limits` override the fields of `http_limits.Limits` (timeouts, body
    size, threads, backlog)."""
    bounds = Limits(**limits)
    policy = auth_policy(settings, host)

    class Handler(LimitedHandler):
        limits = bounds

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

        def _guard(self, role: auth.Role | None, tenant: str | None = None
                   ) -> auth.Principal | None:
            """The one auth check a route calls with its role; replies and returns None if
            refused. Call it again with the tenant once a body names one."""
            decision = auth.authorize(policy, self.command, self.headers, role, tenant)
            if not decision.ok:
                self._reply(decision.status, {"error": decision.reason})
            return decision.principal if decision.ok else None

        def _guard_ingest(self) -> bool:
            """Token and ingest role for OTLP, whose bodies are protobuf or JSON by the OTLP
            spec (not a form a foreign page can send without a preflight): no JSON-only check."""
            decision = auth.authenticate(policy, self.headers)
            if decision.ok and decision.principal is not None:
                decision = auth.permit(decision.principal, "ingest", None)
            if not decision.ok:
                self._reply(decision.status, {"error": decision.reason})
            return decision.ok

        def _tenants(self, params: dict[str, str]) -> tuple[bool, frozenset[str] | None]:
            """(allowed, tenants a read returns) for a reader; replies 401/403 when not."""
            who = self._guard("reader", params.get("tenant"))
            if who is None:
                return False, frozenset()
            return True, auth.readable_tenants(who, params.get("tenant"))[0]

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            url = urlparse(self.path)
            params = {k: v[-1] for k, v in parse_qs(url.query).items()}
            parts = [p for p in url.path.split("/") if p]
            try:
                if not parts:
                    self._reply_html(DASHBOARD.read_bytes())
                elif parts == ["health"]:
                    self._reply(200, health() if health is not None else
                                {"ok": True, "status": "ok", "experiences": len(stores.index)})
                elif len(parts) == 2 and parts[0] == "analytics" and parts[1] in ANALYTICS:
                    ok, tenants = self._tenants(params)
                    if ok:
                        self._reply(200, {"rows": run_analytics(stores, parts[1], params,
                                                                tenants)})
                elif parts == ["snapshots", "digest"] and behavior is not None:
                    if self._guard("reader") is None:
                        return
                    with behavior.lock:
                        digests = dict(behavior.digests)
                    self._reply(200, {"digests": digests})
                elif parts == ["snapshots"] and behavior is not None:
                    ok, tenants = self._tenants(params)
                    if not ok:
                        return
                    scope = (scope_of(params["tenant"], params["agent"])
                             if "tenant" in params and "agent" in params else None)
                    with behavior.lock:
                        rows = snapshot_rows(behavior.log, scope, tenants)
                        active = {name: behavior.log.active(name) for name in behavior.log.scopes
                                  if _of(name, tenants)}
                    self._reply(200, {"events": rows, "active": active})
                elif parts == ["experiences"]:
                    ok, tenants = self._tenants(params)
                    if not ok:
                        return
                    found = stores.library.scroll(tenant=params.get("tenant"),
                                                  agent=params.get("agent"))
                    self._reply(200, {"experiences": [
                        to_json(e.experience) for e in found
                        if tenants is None or e.experience.tenant in tenants]})
                else:
                    self._reply(404, {"error": f"no such endpoint: {url.path}"})
            except (KeyError, ValueError) as error:
                self._reply(HTTPStatus.BAD_REQUEST, {"error": f"bad request: {error}"})

        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            parts = [p for p in urlparse(self.path).path.split("/") if p]
            if parts == ["v1", "traces"] and otlp is not None:
                if self._guard_ingest():
                    from kaizen.integrations.otlp_http import handle_traces

                    handle_traces(self, otlp, settings.otlp_max_body_bytes)
                return
            if len(parts) == 2 and parts[0] == "snapshots" and behavior is not None:
                who = self._guard("operator")
                if who is not None:
                    self._snapshot_action(parts[1], who)
                return
            if parts == ["forget"]:
                self._forget()
                return
            if parts != ["recall"]:
                self._reply(404, {"error": "no such endpoint"})
                return
            if self._guard("recall") is None:
                return
            try:
                body = self.read_json()
                who = self._guard("recall", str(body["tenant"]))
                if who is None:
                    return
                user, refused = auth.recall_user(who, body.get("user"))
                if refused is not None:
                    self._reply(refused.status, {"error": refused.reason})
                    return
                self._reply(200, recall_from_index(stores.index, {**body, "user": user}))
            except (KeyError, ValueError, TypeError) as error:
                self._reply(HTTPStatus.BAD_REQUEST, {"error": f"bad request: {error}"})

        def _forget(self) -> None:
            """POST /forget {"tenant", "user"}: operator of that tenant (kaizen/forget.py)."""
            from kaizen.service.forget import forget

            if self._guard("operator") is None:
                return
            try:
                body = self.read_json()  # the body limit and a clear 400/413, like every route
                who = self._guard("operator", str(body["tenant"]))
                if who is None:
                    return
                receipt = forget(settings, stores, str(body["tenant"]), str(body["user"]),
                                 actor=who.identity)
                self._reply(200, to_json(receipt))
            except (KeyError, ValueError, TypeError) as error:
                self._reply(HTTPStatus.BAD_REQUEST, {"error": f"bad request: {error}"})

        def _snapshot_action(self, action: str, who: auth.Principal) -> None:
            assert behavior is not None
            try:
                body = self.read_json()
                if self._guard("operator", str(body["tenant"])) is None:
                    return
                # the actor is who the token says, never a body field
                request = Request(action, body["tenant"], body["agent"], body.get("snapshot_id"),
                                  body.get("to_time_ms"), body.get("to_offset"),
                                  who.identity, body.get("reason"))
                with behavior.lock:
                    events = events_for(behavior.log, request)
                behavior.publish(events)
                self._reply(200, {"events": [e.event_id for e in events]})
            except (KeyError, ValueError, TypeError) as error:
                self._reply(HTTPStatus.BAD_REQUEST, {"error": str(error)})

    return LimitedHTTPServer((host, port), Handler, bounds)
