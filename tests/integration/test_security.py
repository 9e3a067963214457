"""`kaizen serve` with API tokens, on the real broker and embedded stores: 401 without a token,
403 for another tenant or a missing role, no CSRF, an actor that cannot be forged; and two scopes
whose names collided under the old `tenant/agent` key keep separate timelines and recall; a
token bound to a user cannot recall as another user."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from uuid import uuid4

import pytest

from kaizen.cli import main as kaizen_main
from kaizen.processors.learning.snapshots import scope_of
from kaizen.streams.recorder import Recorder
from tests.integration.kafka_helpers import make_topics
from tests.integration.test_dashboard import _chromium, _Dom
from tests.integration.test_service import _free_port
from tests.integration.test_snapshots import _teach, _wait_for
from tests.integration.workers import environ, start_worker, stop_worker, worker_env

READER = "reader-acme-3f9a1c2e7b"
OPERATOR = "operator-all-8d2e4b6a1f"
OTHER = "reader-globex-55aa77cc99"
APP_ALICE = "recall-alice-7e3d91b2c4"  # bound to user alice: her own app
TOKENS = {
    APP_ALICE: {"identity": "app-alice", "roles": ["recall"], "tenants": ["acme"],
                "user": "alice"},
    READER: {"identity": "rita", "roles": ["reader"], "tenants": ["acme"]},
    OPERATOR: {"identity": "otto", "roles": ["operator"], "tenants": "*"},
    OTHER: {"identity": "gil", "roles": ["reader"], "tenants": ["globex"]},
}
A = ("c/x", "y")  # tenant, agent: these two scopes shared the key "c/x/y"
B = ("c", "x/y")


@dataclass
class Served:
    port: int
    recorders: dict[tuple[str, str], Recorder]
    env: dict[str, str]

    def call(self, method: str, path: str, body: Any = None, token: str | None = OPERATOR,
             **headers: str) -> tuple[int, Any]:
        data = None if body is None else (body if isinstance(body, bytes)
                                          else json.dumps(body).encode())
        sent = {"Content-Type": "application/json", **headers} if data is not None else headers
        if token:
            sent["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data, sent,
                                         method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw[:1] in (b"{", b"[") else raw
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def state(self, tenant: str, agent: str) -> dict[str, Any]:
        status, body = self.call("GET", "/snapshots?" + urlencode({"tenant": tenant,
                                                                    "agent": agent}))
        assert status == 200, body
        return dict(body)

    def active(self, tenant: str, agent: str) -> str | None:
        return self.state(tenant, agent)["active"].get(scope_of(tenant, agent))

    def recalled(self, tenant: str, agent: str) -> set[str]:
        body = {"task": "do the task", "agent": agent, "tenant": tenant, "k": 10}
        status, answer = self.call("POST", "/recall", body)
        assert status == 200, answer
        return {x["tool"] for x in answer["lessons"]}


def _up(served: Served) -> bool:
    try:
        return served.call("GET", "/health", token=None)[0] == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def served(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One service requiring tokens even on loopback, and Recorders of acme, globex, A and B."""
    tmp, prefix = tmp_path_factory.mktemp("security"), f"s{uuid4().hex[:10]}"
    topics = make_topics(kafka_broker.bootstrap, prefix)
    port = _free_port()
    env = worker_env(kafka_broker.bootstrap, prefix, tmp / "home", KAIZEN_HTTP_PORT=str(port),
                     KAIZEN_GATE_SECONDS="1", KAIZEN_API_TOKENS=json.dumps(TOKENS),
                     KAIZEN_API_REQUIRE_TOKENS="true")
    service = start_worker(env, tmp / "serve.log", command="serve")
    scopes = [("acme", "support-bot"), ("globex", "support-bot"), A, B]
    recorders = {s: Recorder(s[1], s[0], bootstrap=kafka_broker.bootstrap,
                             topic=topics.episodes, spool_dir=tmp / "spool" / f"r{i}")
                 for i, s in enumerate(scopes)}
    try:
        served = Served(port, recorders, env)
        _wait_for(lambda: _up(served))
        yield served
    finally:
        for recorder in recorders.values():
            recorder.close()
        stop_worker(service)
        assert "operator-all" not in (tmp / "serve.log").read_text()  # tokens are never logged


def test_tokens_roles_tenants_and_csrf(served: Served) -> None:
    _teach(served.recorders["acme", "support-bot"], "orders.get", "order", "order_id", 4, "acme")
    _teach(served.recorders["globex", "support-bot"], "crm.find", "name", "full_name", 4, "glx")
    _wait_for(lambda: served.active("acme", "support-bot")
              and served.active("globex", "support-bot"), timeout=400)  # processors' cold start

    # no token -> 401, on every read and action; the dashboard page itself is public
    unauthenticated: list[tuple[str, str, Any]] = [
        ("GET", "/experiences", None), ("GET", "/analytics/failures", None),
        ("GET", "/snapshots", None), ("POST", "/recall", {}), ("POST", "/snapshots/rollback", {})]
    for method, path, sent in unauthenticated:
        assert served.call(method, path, sent, token=None)[0] == 401, path
    assert served.call("GET", "/", token=None)[0] == 200
    assert served.call("GET", "/experiences", token="not-a-token-of-ours-123")[0] == 401

    # a reader of acme reads acme only: 403 for globex, and unfiltered reads hold acme alone
    assert served.call("GET", "/experiences?tenant=globex", token=READER)[0] == 403
    status, body = served.call("GET", "/experiences", token=READER)
    assert status == 200 and {x["tenant"] for x in body["experiences"]} == {"acme"}
    status, body = served.call("GET", "/analytics/failures?by=tenant", token=READER)
    assert status == 200 and [r["key"] for r in body["rows"]] == ["acme"]
    status, body = served.call("GET", "/snapshots", token=READER)
    assert status == 200 and set(body["active"]) == {"acme/support-bot"}
    assert {e["scope"] for e in body["events"]} == {"acme/support-bot"}
    recall = {"task": "t", "agent": "support-bot", "tenant": "globex"}
    assert served.call("POST", "/recall", recall, token=READER)[0] == 403
    assert served.call("POST", "/recall", recall, token=OTHER)[0] == 200
    assert served.call("GET", "/experiences", token=OPERATOR)[0] == 200  # operators read

    # a reader cannot approve, reject or roll back
    first = served.active("acme", "support-bot")
    action = {"tenant": "acme", "agent": "support-bot", "snapshot_id": first}
    for name in ("approve", "reject", "activate", "rollback"):
        assert served.call("POST", f"/snapshots/{name}", action, token=READER)[0] == 403

    # no CSRF: text/plain, a cross-origin page and a cross-site fetch are refused
    assert served.call("POST", "/snapshots/reject", json.dumps(action).encode(),
                       **{"Content-Type": "text/plain"})[0] == 415
    assert served.call("POST", "/snapshots/reject", action,
                       Origin="http://evil.example")[0] == 403
    assert served.call("POST", "/snapshots/reject", action, **{"Sec-Fetch-Site": "cross-site"}
                       )[0] == 403
    assert served.call("POST", "/recall", json.dumps(recall).encode(), token=OTHER,
                       **{"Content-Type": "text/plain"})[0] == 415

    # the actor is the token's identity, whatever the body says
    _teach(served.recorders["acme", "support-bot"], "orders.list", "page", "page_no", 4, "acme2")
    _wait_for(lambda: served.active("acme", "support-bot") not in (None, first))
    second = served.active("acme", "support-bot")
    forged = {**action, "actor": "mallory", "reason": "forged?"}
    status, body = served.call("POST", "/snapshots/rollback", forged,
                               Origin=f"http://127.0.0.1:{served.port}")
    assert status == 200, body
    _wait_for(lambda: served.active("acme", "support-bot") == first)
    rollbacks = [e for e in served.state("acme", "support-bot")["events"]
                 if e["action"] == "rolled_back"]
    assert [(e["actor"], e["reason"]) for e in rollbacks] == [("otto", "forged?")]

    # the CLI sends KAIZEN_API_TOKEN: a reader is refused, an operator acts as itself
    scope = ["--tenant", "acme", "--agent", "support-bot", "--actor", "mallory"]
    err = io.StringIO()
    with environ({**served.env, "KAIZEN_API_TOKEN": READER}), contextlib.redirect_stderr(err):
        assert kaizen_main(["snapshots", "rollback", "--to", str(second), *scope]) == 2
    assert "HTTP 403" in err.getvalue() and READER not in err.getvalue()
    with environ({**served.env, "KAIZEN_API_TOKEN": OPERATOR}):
        assert kaizen_main(["snapshots", "rollback", "--to", str(second), *scope]) == 0
    _wait_for(lambda: served.active("acme", "support-bot") == second)
    last = [e for e in served.state("acme", "support-bot")["events"]
            if e["action"] == "rolled_back"][-1]
    assert last["actor"] == "otto"


def test_scopes_that_shared_a_key_keep_their_own_timeline_and_recall(served: Served) -> None:
    """Tenant c/x + agent y and tenant c + agent x/y were one snapshot timeline ("c/x/y"):
    rolling A back to its first snapshot then picked B's snapshot and emptied A's recall."""
    _teach(served.recorders[A], "orders.get", "order", "order_id", 4, "a1")
    a1 = _wait_for(lambda: served.active(*A), timeout=400)  # the processors' cold start
    _teach(served.recorders[B], "billing.get", "bill", "bill_id", 4, "b1")
    b1 = _wait_for(lambda: served.active(*B))
    _teach(served.recorders[A], "orders.list", "page", "page_no", 4, "a2")
    _wait_for(lambda: served.active(*A) not in (None, a1))
    assert served.recalled(*A) == {"orders.get", "orders.list"}
    a2_at = [e["offset"] for e in served.state(*A)["events"] if e["action"] == "activated"][-1]

    status, body = served.call("POST", "/snapshots/rollback",
                               {"tenant": A[0], "agent": A[1], "to_offset": a2_at})
    assert status == 200, body
    _wait_for(lambda: served.active(*A) == a1)
    assert served.recalled(*A) == {"orders.get"}
    assert served.active(*B) == b1 and served.recalled(*B) == {"billing.get"}
    assert {e["scope"] for e in served.state(*A)["events"]} == {"c%2Fx/y"}


def _dashboard(port: int, fragment: str, profile: Path) -> _Dom:
    """The dashboard's DOM as headless Chromium leaves it after its first refreshes."""
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--virtual-time-budget=8000", "--dump-dom",
               f"http://127.0.0.1:{port}/{fragment}"]
    done = subprocess.run(command, capture_output=True, timeout=120, check=False)  # noqa: S603
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    dom = _Dom()
    dom.feed(done.stdout.decode())
    return dom


def test_the_dashboard_asks_for_a_token_and_shows_only_its_tenants(served: Served,
                                                                   tmp_path: Path) -> None:
    _wait_for(lambda: served.active("acme", "support-bot"), timeout=400)
    anonymous = _dashboard(served.port, "", tmp_path / "p1")
    assert anonymous.by_id("status")["attrs"]["data-state"] == "login"
    assert "hidden" not in anonymous.by_id("login")["attrs"]
    assert not anonymous.having("data-experience-id")  # nothing leaked before signing in

    signed_in = _dashboard(served.port, f"#token={READER}", tmp_path / "p2")
    assert signed_in.by_id("status")["attrs"]["data-state"] == "ok"
    assert "hidden" in signed_in.by_id("login")["attrs"]
    rows = [e for e in signed_in.elements if e["tag"] == "tr" and "data-experience-id" in
            e["attrs"]]
    tenants = {signed_in.elements[signed_in.elements.index(r) + 1]["text"].split("/")[0]
               for r in rows}
    assert rows and tenants == {"acme"}
    status, body = served.call("GET", "/experiences", token=READER)
    assert len(rows) == len(body["experiences"])


def _prefer(recorder: Recorder, user: str, words: str) -> None:
    """Two episodes in which `user` corrects the agent: their own preference lesson."""
    for i in range(2):
        with recorder.episode(f"{user} asks question {i}", user=user,
                              episode_id=f"pref-{user}-{i}") as ep:
            ep.feedback(rating=-1.0, correction=f"always call me {words}")
            ep.end(success=True)
    assert recorder.flush(30) == 0


def test_a_user_bound_token_cannot_recall_as_another_user(served: Served) -> None:
    recorder = served.recorders["acme", "support-bot"]
    _prefer(recorder, "alice", "Captain Alice")
    _prefer(recorder, "bob", "Bob the Builder")

    def preferences(token: str, **user: str) -> tuple[int, str]:
        body = {"task": "answer the question", "agent": "support-bot", "tenant": "acme",
                "k": 10, **user}
        status, answer = served.call("POST", "/recall", body, token=token)
        if status != 200:
            return status, ""
        return status, " ".join(x["guidance"] for x in answer["lessons"]
                                if x["kind"] == "preference")

    # a tenant-level token (an agent's back end) names the user it serves
    _wait_for(lambda: "Captain Alice" in preferences(READER, user="alice")[1]
              and "Bob the Builder" in preferences(READER, user="bob")[1], timeout=400)
    # alice's own app: her preferences, asked for her or for nobody in particular ...
    for named in ({}, {"user": "alice"}):
        status, found = preferences(APP_ALICE, **named)
        assert status == 200 and "Captain Alice" in found and "Bob" not in found, named
    # ... and never bob's, nor the tenant's data, nor another tenant
    assert preferences(APP_ALICE, user="bob")[0] == 403
    assert served.call("GET", "/experiences", token=APP_ALICE)[0] == 403
    assert served.call("GET", "/analytics/failures", token=APP_ALICE)[0] == 403
    status, _ = served.call("POST", "/recall", {"task": "t", "agent": "support-bot",
                                                 "tenant": "globex"}, token=APP_ALICE)
    assert status == 403
