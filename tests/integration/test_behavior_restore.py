"""A restarted service gets its behavior state back from the log: the live monitor's evidence,
the per-lesson effects (quarantine) and the lessons a monitor rollback blamed."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from kaizen.processors.learning import snapshots
from kaizen.processors.learning.snapshots import Candidate, scope_of
from kaizen.readmodel.embedding import HashingEmbedder
from kaizen.readmodel.index import RecallIndex
from kaizen.schemas import model
from kaizen.service.gate import Behavior
from kaizen.service.host import restore_behavior
from kaizen.settings import load_settings
from kaizen.streams.publish import publish_events
from kaizen.streams.snapshot_log import SnapshotTail, publish
from kaizen.streams.topics import Topics
from tests.integration.kafka_helpers import make_topics

TENANT, AGENT = "acme", "support-bot"
NOW = 1_800_000_000_000


def _candidate(members: dict[str, str], added: tuple[str, ...]) -> Candidate:
    return Candidate(members=members, added=added, removed=(), changed=(), tools=frozenset(),
                     lessons=())


def _activate_a_then_b(bootstrap: str, topic: str) -> tuple[str, str]:
    """A = {lesson-a}; B = A + {lesson-b}, activated over A."""
    a = _candidate({"lesson-a": "ha"}, ("lesson-a",))
    b = _candidate({"lesson-a": "ha", "lesson-b": "hb"}, ("lesson-b",))
    a_id, b_id = a.snapshot_id(TENANT, AGENT), b.snapshot_id(TENANT, AGENT)
    publish(bootstrap, topic, [
        snapshots.proposed_event(TENANT, AGENT, a, parent_id=None, occurred_at=NOW),
        snapshots.activated_event(TENANT, AGENT, a_id, replaced=None, occurred_at=NOW),
        snapshots.proposed_event(TENANT, AGENT, b, parent_id=a_id, occurred_at=NOW + 1),
        snapshots.activated_event(TENANT, AGENT, b_id, replaced=a_id, occurred_at=NOW + 1),
    ])
    return a_id, b_id


def _outcome(i: int, snapshot_id: str, outcome: str, recalled: list[str]) -> model.Signal:
    return model.Signal(str(uuid.uuid5(uuid.NAMESPACE_URL, f"restore-{i}")), NOW + i, TENANT,
                        AGENT, f"ep-{i}", "outcome", snapshot_id=snapshot_id, outcome=outcome,
                        recalled_ids=recalled)


def _fresh_behavior(bootstrap: str, topics: Topics) -> tuple[Behavior, SnapshotTail,
                                                             list[model.SnapshotEvent]]:
    published: list[model.SnapshotEvent] = []
    behavior = Behavior(RecallIndex(HashingEmbedder()), published.extend)
    tail = SnapshotTail(bootstrap, topics.snapshots, behavior.on_snapshot_event).start()
    return behavior, tail, published


def test_a_restart_restores_the_monitor_and_the_lesson_effects(
    kafka_broker: Any, unique_topic_prefix: str, tmp_path: Path
) -> None:
    bootstrap = kafka_broker.bootstrap
    topics = make_topics(bootstrap, unique_topic_prefix)
    a_id, b_id = _activate_a_then_b(bootstrap, topics.snapshots)
    # under A everything worked; under B, with lesson-b recalled, everything failed
    signals = [_outcome(i, a_id, "success", ["lesson-a"]) for i in range(35)]
    signals += [_outcome(100 + i, b_id, "failure", ["lesson-b"]) for i in range(35)]
    publish_events(bootstrap, topics.signals, [(s.episode_id.encode(), s) for s in signals])

    settings = load_settings(kafka_bootstrap=bootstrap, topic_prefix=unique_topic_prefix,
                             home=tmp_path, behavior_replay_hours=24 * 365 * 30)
    behavior, tail, published = _fresh_behavior(bootstrap, topics)
    try:
        assert restore_behavior(settings, behavior, tail) == len(signals)
    finally:
        tail.stop()
    assert "lesson-b" in behavior.quarantined() and "lesson-a" not in behavior.quarantined()
    rollbacks = [e for e in published if e.action == "rolled_back"]
    assert [(e.snapshot_id, e.parent_id, e.actor) for e in rollbacks] == [(a_id, b_id, "monitor")]


def test_lessons_blamed_by_a_monitor_rollback_are_read_back_from_the_log(
    kafka_broker: Any, unique_topic_prefix: str
) -> None:
    bootstrap = kafka_broker.bootstrap
    topics = make_topics(bootstrap, unique_topic_prefix)
    a_id, b_id = _activate_a_then_b(bootstrap, topics.snapshots)
    publish(bootstrap, topics.snapshots, [
        snapshots.rolled_back_event(TENANT, AGENT, a_id, replaced=b_id, occurred_at=NOW + 5,
                                    actor="alice", reason="by hand"),
        snapshots.activated_event(TENANT, AGENT, b_id, replaced=a_id, occurred_at=NOW + 6),
    ])
    behavior, tail, _ = _fresh_behavior(bootstrap, topics)
    try:
        assert tail.wait_caught_up(30)
        assert behavior.blamed == set()  # a human's rollback blames nobody
        publish(bootstrap, topics.snapshots, [snapshots.rolled_back_event(
            TENANT, AGENT, a_id, replaced=b_id, occurred_at=NOW + 7, actor="monitor",
            reason="regression")])
        restarted, restarted_tail, _ = _fresh_behavior(bootstrap, topics)
        try:
            assert restarted_tail.wait_caught_up(30)
            assert restarted.blamed == {"lesson-b"}
            assert restarted.log.active(scope_of(TENANT, AGENT)) == a_id
        finally:
            restarted_tail.stop()
    finally:
        tail.stop()
