"""Behavior snapshots end to end on the real broker: the gate, approval, rollback by id / time /
offset, Recorders following activations, and the live monitor rolling back a harmful lesson."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kaizen.cli import main as kaizen_main
from kaizen.streams.recorder import Recorder
from tests.integration.kafka_helpers import make_topics
from tests.integration.test_service import _free_port, _get, _post
from tests.integration.waiting import wait_for
from tests.integration.workers import environ, start_worker, stop_worker, worker_env

SCOPE = "acme/support-bot"


def _cli(env: dict[str, str], *args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), environ(env):
        assert kaizen_main(list(args)) == 0
    return out.getvalue()


@contextlib.contextmanager
def _serving(kafka_broker: Any, prefix: str, tmp_path: Path, follow: bool = True,
             **settings: str) -> Iterator[tuple[int, dict[str, str], Recorder]]:
    """`kaizen serve` on a fresh prefix, and a Recorder of acme/support-bot (following the
    snapshot log unless `follow` is off); both stopped at the end."""
    topics = make_topics(kafka_broker.bootstrap, prefix)
    port = _free_port()
    env = worker_env(kafka_broker.bootstrap, prefix, tmp_path / "home", KAIZEN_HTTP_PORT=str(port),
                     KAIZEN_GATE_SECONDS="1", **settings)
    service = start_worker(env, tmp_path / "serve.log", command="serve")
    recorder = Recorder("support-bot", "acme", bootstrap=kafka_broker.bootstrap,
                        topic=topics.episodes, spool_dir=tmp_path / "spool" / "r",
                        follow_snapshots=topics.snapshots if follow else None)
    try:
        _wait_for(lambda: _get(port, "/health"))
        yield port, env, recorder
    finally:
        recorder.close()
        stop_worker(service)


def _teach(recorder: Recorder, tool: str, wrong: str, right: str, episodes: int,
           prefix: str, fail_after: bool = False) -> None:
    """Episodes whose `tool` call fails with argument `wrong` and works with `right`."""
    for i in range(episodes):
        with recorder.episode(f"{prefix} task {i}", user=f"u{i % 3}",
                              episode_id=f"{prefix}-{i}") as ep:
            ep.tool_call(tool, {wrong: i})
            ep.tool_result(tool, ok=False, error=f"400 unknown field '{wrong}'")
            ep.tool_call(tool, {right: i})
            ep.tool_result(tool, ok=True)
            ep.end(success=not fail_after)
    assert recorder.flush(30) == 0


def _state(port: int) -> dict[str, Any]:
    return _get(port, "/snapshots?tenant=acme&agent=support-bot") or {"events": [], "active": {}}


def _activations(port: int) -> list[dict[str, Any]]:
    return [e for e in _state(port)["events"] if e["action"] in ("activated", "rolled_back")]


def _recalled_tools(port: int) -> set[str]:
    body = {"task": "do the task", "agent": "support-bot", "tenant": "acme", "k": 10}
    return {x["tool"] for x in _post(port, "/recall", body)["lessons"]}


def _wait_for(predicate: Any, timeout: float = 120.0) -> Any:
    return wait_for("the snapshot state", predicate, timeout)


def test_gate_approval_rollback_and_monitor(kafka_broker: Any, unique_topic_prefix: str,
                                            tmp_path: Path) -> None:
    with _serving(kafka_broker, unique_topic_prefix, tmp_path, KAIZEN_MAX_AUTO_CHANGE="1",
                  KAIZEN_HIGH_RISK_TOOLS="payments.charge") as (port, env, recorder):
        # 1. a good lesson passes the gate and activates by itself
        _teach(recorder, "orders.get", "order", "order_id", 4, "orders")
        first = _wait_for(lambda: _activations(port))[0]
        assert first["action"] == "activated" and first["actor"] == "policy"
        assert _recalled_tools(port) == {"orders.get"}
        # ... and Recorders stamp events with it
        _wait_for(lambda: recorder.snapshot_id == first["snapshot_id"], timeout=5)

        # 2. a lesson about a high-risk tool waits for a human; `approve` activates it
        _teach(recorder, "payments.charge", "amount", "amount_cents", 4, "pay")
        waiting = _wait_for(lambda: [e for e in _state(port)["events"]
                                     if e["action"] == "proposed" and e["verdict"] ==
                                     "await_approval"])[0]
        assert len(_activations(port)) == 1
        _cli(env, "snapshots", "approve", waiting["snapshot_id"], "--tenant", "acme",
             "--agent", "support-bot", "--actor", "alice")
        _wait_for(lambda: _state(port)["active"].get(SCOPE) == waiting["snapshot_id"])
        assert _recalled_tools(port) == {"orders.get", "payments.charge"}

        # 3. rollback by id, by time and by offset each give the expected active set
        _cli(env, "snapshots", "rollback", "--to", first["snapshot_id"], "--tenant", "acme",
             "--agent", "support-bot")
        _wait_for(lambda: _state(port)["active"].get(SCOPE) == first["snapshot_id"])
        assert _recalled_tools(port) == {"orders.get"}
        _wait_for(lambda: recorder.snapshot_id == first["snapshot_id"], timeout=5)
        approved_at = [e for e in _activations(port) if e["snapshot_id"] ==
                       waiting["snapshot_id"]][0]
        _cli(env, "snapshots", "rollback", "--to-offset", str(approved_at["offset"] + 1),
             "--tenant", "acme", "--agent", "support-bot")
        _wait_for(lambda: _state(port)["active"].get(SCOPE) == waiting["snapshot_id"])
        # a time after the first activation and before the approval selects the first snapshot
        assert approved_at["occurred_at"] > first["occurred_at"] + 1
        between = first["occurred_at"] + 1
        iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(between // 1000))
        _cli(env, "snapshots", "rollback", "--to-time", f"{iso}.{between % 1000:03d}",
             "--tenant", "acme", "--agent", "support-bot")
        _wait_for(lambda: _state(port)["active"].get(SCOPE) == first["snapshot_id"])

        # 4. rebuilding fresh stores from the log up to an offset gives the live digest there
        live = {int(k): v for k, v in _get(port, "/snapshots/digest")["digests"].items()}
        for offset in (first["offset"] + 1, max(live)):
            printed = _cli(env, "rebuild", "--to-offset", str(offset),
                           "--into", str(tmp_path / f"rebuild-{offset}"))
            assert f"digest {live[offset]}" in printed
        assert len(set(live.values())) > 1  # the behavior did change along the log


def test_a_lesson_that_breaks_past_successes_is_rejected_with_its_edge_cases(
    kafka_broker: Any, unique_topic_prefix: str, tmp_path: Path
) -> None:
    with _serving(kafka_broker, unique_topic_prefix, tmp_path,
                  follow=False) as (port, env, recorder):
        _teach(recorder, "orders.get", "order", "order_id", 4, "good")
        first = _wait_for(lambda: _activations(port))[0]["snapshot_id"]
        # a lesson saying the opposite: it would rewrite the calls that worked above
        _teach(recorder, "orders.get", "order_id", "id", 3, "contrary")
        rejected = _wait_for(lambda: [e for e in _state(port)["events"]
                                      if e["action"] == "rejected"])[0]
        assert rejected["actor"] == "policy"
        assert rejected["edge_cases"] and all(e.startswith("good-") for e in
                                               rejected["edge_cases"])
        assert _state(port)["active"][SCOPE] == first


def test_the_live_monitor_rolls_back_a_lesson_that_hurts(kafka_broker: Any,
                                                          unique_topic_prefix: str,
                                                          tmp_path: Path) -> None:
    with _serving(kafka_broker, unique_topic_prefix, tmp_path) as (port, env, recorder):
        _teach(recorder, "orders.get", "order", "order_id", 3, "good")
        parent = _wait_for(lambda: _activations(port))[0]["snapshot_id"]
        _wait_for(lambda: recorder.snapshot_id == parent, timeout=5)
        for i in range(40):  # the parent's live record: successes
            with recorder.episode(f"ok {i}", episode_id=f"ok-{i}") as ep:
                ep.end(success=True)
        # a lesson that passes the gate (it fixes its own failures) ...
        _teach(recorder, "crm.lookup", "mail", "email", 3, "harm")
        harmful = _wait_for(lambda: [e for e in _activations(port)
                                     if e["snapshot_id"] != parent])[0]["snapshot_id"]
        _wait_for(lambda: recorder.snapshot_id == harmful, timeout=5)
        assert "crm.lookup" in _recalled_tools(port)
        for i in range(40):  # ... but episodes under it fail
            with recorder.episode(f"bad {i}", episode_id=f"bad-{i}") as ep:
                ep.end(success=i % 4 == 0)
        assert recorder.flush(30) == 0
        rollback = _wait_for(lambda: [e for e in _activations(port)
                                      if e["action"] == "rolled_back"])[0]
        assert rollback["snapshot_id"] == parent and rollback["actor"] == "monitor"
        _wait_for(lambda: _state(port)["active"].get(SCOPE) == parent)
        assert "crm.lookup" not in _recalled_tools(port)



def test_a_lesson_whose_recalls_keep_failing_is_quarantined_and_dropped(
    kafka_broker: Any, unique_topic_prefix: str, tmp_path: Path
) -> None:
    with _serving(kafka_broker, unique_topic_prefix, tmp_path,
                  follow=False) as (port, env, recorder):
        _teach(recorder, "orders.get", "order", "order_id", 3, "good")
        _teach(recorder, "crm.lookup", "mail", "email", 3, "crm")
        _wait_for(lambda: _recalled_tools(port) == {"orders.get", "crm.lookup"})
        body = {"task": "crm task", "agent": "support-bot", "tenant": "acme", "k": 10}
        crm = [x["experience_id"] for x in _post(port, "/recall", body)["lessons"]
               if x["tool"] == "crm.lookup"]
        for i in range(6):  # episodes that were shown the crm lesson and failed
            with recorder.episode(f"crm use {i}", episode_id=f"use-{i}") as ep:
                ep.recall(crm, "crm task")
                ep.end(success=False)
        assert recorder.flush(30) == 0
        _wait_for(lambda: _recalled_tools(port) == {"orders.get"})
        last = _activations(port)[-1]
        assert last["action"] == "activated" and last["actor"] == "policy"


def test_a_rejected_lesson_is_not_recalled_before_any_activation(
    kafka_broker: Any, unique_topic_prefix: str, tmp_path: Path
) -> None:
    """Issue 10 item 6: before any activation recall serves the proposed lessons minus those a
    rejection blamed. `orders.get` is high-risk here, so nothing activates without a human."""
    with _serving(kafka_broker, unique_topic_prefix, tmp_path, follow=False,
                  KAIZEN_HIGH_RISK_TOOLS="orders.get") as (port, _env, recorder):
        _teach(recorder, "orders.get", "order", "order_id", 4, "good")
        _teach(recorder, "orders.get", "order_id", "id", 3, "contrary")  # undoes what worked
        rejected = _wait_for(lambda: [e for e in _state(port)["events"]
                                      if e["action"] == "rejected"])[0]
        blamed = rejected["reason"].split("blamed lesson(s): ", 1)[1].split(", ")

        def recalled() -> list[str]:
            body = {"task": "good task 9", "agent": "support-bot", "tenant": "acme", "k": 10}
            return [x["experience_id"] for x in _post(port, "/recall", body)["lessons"]]

        assert _wait_for(recalled)  # the lesson nobody blamed, proposed, is served
        assert not set(blamed) & set(recalled())
        assert _activations(port) == []  # all before any activation
