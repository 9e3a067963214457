"""The dashboard of `kaizen serve`, rendered by a real headless Chromium: the numbers the page shows
equal the JSON API's, and the snapshot buttons point at the right snapshots.

Chromium is driven with `--dump-dom` (no Python browser bindings): the DOM after the page's scripts
ran for a few seconds of virtual time is parsed with html.parser. Without Chromium the test fails
(`make system-deps` / infra/install-system-deps.sh installs it); it never skips.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from kaizen.streams.recorder import Recorder
from tests.integration.kafka_helpers import make_topics
from tests.integration.test_service import _free_port, _get, _post
from tests.integration.test_snapshots import _state, _teach
from tests.integration.waiting import wait_for, wait_for_pipeline
from tests.integration.workers import start_worker, stop_worker, worker_env

SCOPE = "acme/support-bot"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class _Dom(HTMLParser):
    """Every element's attributes and direct text, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[dict[str, Any]] = []
        self._open: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = {"tag": tag, "attrs": {k: v or "" for k, v in attrs}, "text": ""}
        self.elements.append(node)
        if tag not in ("input", "br", "meta", "circle", "line", "polyline"):
            self._open.append(node)

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()["tag"] == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1]["text"] += data

    def by_id(self, ident: str) -> dict[str, Any]:
        found = [e for e in self.elements if e["attrs"].get("id") == ident]
        assert len(found) == 1, f"expected one #{ident}, found {len(found)}"
        return found[0]

    def having(self, attr: str) -> list[dict[str, Any]]:
        return [e for e in self.elements if attr in e["attrs"]]


def _chromium() -> str:
    for name in CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    raise AssertionError("Chromium is needed for the dashboard test and was not found on PATH "
                         f"(looked for {', '.join(CHROMIUM_NAMES)}). Install it with "
                         "`sudo apt-get install -y chromium` or run infra/install-system-deps.sh.")


def _render(port: int, profile: Path) -> _Dom:
    """The page's DOM after its first refreshes, as Chromium leaves it."""
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=8000",
               "--dump-dom", f"http://127.0.0.1:{port}/"]
    done = subprocess.run(command, capture_output=True, timeout=120, check=False)  # noqa: S603
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    html = done.stdout.decode()
    (profile.parent / "dashboard-dom.html").write_text(html)  # kept for diagnosing a failure
    dom = _Dom()
    dom.feed(html)
    assert dom.by_id("status")["attrs"].get("data-state") == "ok", dom.by_id("status")["text"]
    return dom


def _failure_cells(dom: _Dom) -> dict[str, dict[str, str]]:
    """{signature: {metric: data-value}} from the failures table."""
    body = dom.by_id("failures-body")
    start = dom.elements.index(body)
    cells: dict[str, dict[str, str]] = defaultdict(dict)
    for node in dom.elements[start:]:
        if node["attrs"].get("id") == "experiences-body":
            break
        if node["tag"] == "td" and "data-metric" in node["attrs"]:
            a = node["attrs"]
            cells[f"{a['data-key']}"][a["data-metric"]] = a["data-value"]
    return dict(cells)


def _expected_buttons(state: dict[str, Any]) -> tuple[set[str], set[str]]:
    """Snapshots awaiting a human, and snapshots once in force but not now (rollback targets)."""
    events = state["events"]
    decided = {e["snapshot_id"] for e in events
               if e["action"] in ("approved", "rejected", "activated", "rolled_back")}
    waiting = {e["snapshot_id"] for e in events
               if e["verdict"] == "await_approval"} - decided
    was_active = {e["snapshot_id"] for e in events if e["action"] in ("activated", "rolled_back")}
    return waiting, was_active - set(state["active"].values())


def _wait(what: str, predicate: Callable[[], Any], port: int, timeout: float = 120.0) -> Any:
    """`wait_for`, and on a timeout say which step stalled, with the snapshot log."""
    try:
        return wait_for(what, predicate, timeout)
    except AssertionError as error:
        events = [(e["offset"], e["snapshot_id"][:8], e["action"], e["verdict"], e["reason"])
                  for e in _state(port)["events"]]
        raise AssertionError(f"{error}; snapshot log: {events}") from None


def _record_plain_failures(recorder: Recorder, episodes: int) -> None:
    """Failures no lesson comes from (no recovery): a second signature for the table."""
    for i in range(episodes):
        with recorder.episode(f"search docs {i}", user=f"u{i % 2}", episode_id=f"s-{i}") as ep:
            ep.tool_call("docs.search", {"q": i})
            ep.tool_result("docs.search", ok=i % 3 == 0, error=None if i % 3 == 0 else
                           "timeout after 30s")
            ep.end(success=i % 3 == 0)
    assert recorder.flush(30) == 0


def test_the_dashboard_shows_the_apis_numbers_and_snapshot_buttons(
    kafka_broker: Any, unique_topic_prefix: str, tmp_path: Path
) -> None:
    _chromium()  # fail fast, before the broker work, when the browser is missing
    bootstrap = kafka_broker.bootstrap
    topics = make_topics(bootstrap, unique_topic_prefix)
    port = _free_port()
    env = worker_env(bootstrap, unique_topic_prefix, tmp_path / "home", KAIZEN_HTTP_PORT=str(port),
                     KAIZEN_GATE_SECONDS="1",
                     KAIZEN_HIGH_RISK_TOOLS="payments.charge,payments.refund")
    service = start_worker(env, tmp_path / "serve.log", command="serve")
    recorder = Recorder("support-bot", "acme", bootstrap=bootstrap, topic=topics.episodes,
                        spool_dir=tmp_path / "spool")
    state = partial(_state, port)
    try:
        _wait("the API", lambda: _get(port, "/health"), port)
        _record_plain_failures(recorder, 9)
        _teach(recorder, "orders.get", "order", "order_id", 4, "orders")  # activates by itself
        first = _wait("a first activation", lambda: state()["active"].get(SCOPE), port)
        _teach(recorder, "payments.charge", "amount", "amount_cents", 4, "pay")  # waits
        charge = _wait("a snapshot awaiting approval", lambda: _expected_buttons(state())[0], port)
        _post(port, "/snapshots/approve", {"tenant": "acme", "agent": "support-bot",
                                           "snapshot_id": min(charge), "actor": "test"})
        _wait("the approved snapshot", lambda: state()["active"].get(SCOPE) == min(charge), port)
        _teach(recorder, "payments.refund", "id", "refund_id", 4, "refund")  # waits too
        _wait("a second snapshot awaiting approval", lambda: _expected_buttons(state())[0], port)

        def api() -> tuple[Any, ...]:
            return (_get(port, "/analytics/failures?by=signature"), _get(port, "/experiences"),
                    state())

        wait_for_pipeline(kafka_broker.bootstrap, unique_topic_prefix)
        failures, library, snapshots = api()
        assert failures["rows"] and library["experiences"]
        dom = _render(port, tmp_path / "chromium-profile")
        assert api() == (failures, library, snapshots)  # nothing moved while the page rendered
    finally:
        recorder.close()
        stop_worker(service)

    # the failure analytics, cell by cell, and the totals
    shown = _failure_cells(dom)
    rows = failures["rows"]
    assert len(rows) >= 2 and set(shown) == {r["key"] for r in rows}
    for row in rows:
        cell = shown[row["key"]]
        assert (int(cell["calls"]), int(cell["failures"])) == (row["calls"], row["failures"])
        assert abs(float(cell["rate"]) - row["rate"]) < 1e-9
    total_failures = sum(r["failures"] for r in rows)
    assert dom.by_id("total-failures")["attrs"]["data-value"] == str(total_failures)
    assert dom.by_id("total-failures")["text"].strip() == str(total_failures)
    assert dom.by_id("total-experiences")["text"].strip() == str(len(library["experiences"]))
    shown_ids = {e["attrs"]["data-experience-id"] for e in dom.having("data-experience-id")}
    assert shown_ids == {x["experience_id"] for x in library["experiences"]}

    # the learning curve is drawn for the agent found in the data
    curve = dom.by_id("curve-svg")
    assert curve["attrs"]["data-agent"] == "support-bot" and int(curve["attrs"]["data-points"]) > 0

    # approve / reject on the waiting snapshot, rollback on the ones once in force
    waiting, targets = _expected_buttons(snapshots)
    assert waiting and first in targets
    buttons: dict[str, set[str]] = defaultdict(set)
    for node in dom.elements:
        if node["tag"] == "button" and "data-snapshot-id" in node["attrs"]:
            buttons[node["attrs"]["data-action"]].add(node["attrs"]["data-snapshot-id"])
            assert (node["attrs"]["data-tenant"], node["attrs"]["data-agent"]) == (
                "acme", "support-bot")
    assert buttons == {"approve": waiting, "reject": waiting, "rollback": targets}
