"""The stream processors on the real broker: real data, crash recovery, dead letters."""

from __future__ import annotations

import contextlib
import io
import json
import random
import signal
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from kaizen.cli import main as kaizen_main
from kaizen.importers.react_log import parse_react_log
from kaizen.importers.run import import_episodes
from kaizen.processors.config import (
    CURATION_TABLE,
    CURATION_TOPIC,
    EPISODES_TABLE,
    PATTERNS_TABLE,
    TOOL_RESULTS_TOPIC,
)
from kaizen.schemas import model
from kaizen.schemas.scope import parse_scope_key
from kaizen.streams.latest import latest_experiences
from kaizen.streams.replay import Bounds, TopicReader
from kaizen.streams.topics import Topics
from tests.integration.kafka_helpers import make_recorder, make_topics
from tests.integration.waiting import group_members_with_partitions, wait_for, wait_for_pipeline
from tests.integration.workers import environ, start_worker, stop_worker, worker_env

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
BASE_LOG = SHARED / "reflexion" / "hotpotqa_react" / "base_100q_5trials.txt"


def _experience_view(bootstrap: str, topics: Topics) -> dict[str, tuple[Any, ...]]:
    return {
        x.experience_id: (x.version, x.support_episodes, x.support_users, x.status, x.guidance,
                          tuple(sorted((e.episode_id, e.offset) for e in x.evidence)))
        for x in latest_experiences(bootstrap, topics.experiences)
    }


def _pattern_view(bootstrap: str, topics: Topics) -> dict[tuple[str, str, int], tuple[Any, ...]]:
    newest: dict[tuple[str, str, int], tuple[Any, ...]] = {}
    for record in TopicReader(bootstrap, topics.patterns, Bounds()).records():
        p = record.event
        if isinstance(p, model.Pattern):
            key = (p.agent, p.signature, p.window_start)
            # tool_calls is left out: an update carries the calls seen when its failure was
            # folded, and the repartitioned stream interleaves episode partitions in no fixed order
            value = (p.failures, p.sessions, p.users, p.tenants)
            newest[key] = max(newest.get(key, value), value)
    return newest


def _is_quoted_search_lesson(x: model.Experience) -> bool:
    changes = x.patch.changes if x.patch else []
    return x.kind == "recovery" and any(
        c.op == "reformat" and c.rule == "strip_quotes" and c.argument == "query" for c in changes
    )


def test_real_react_logs_yield_the_quoted_search_lesson(
    kafka_broker: Any, unique_topic_prefix: str, tmp_path: Path
) -> None:
    topics = make_topics(kafka_broker.bootstrap, unique_topic_prefix)
    recorder = make_recorder(kafka_broker.bootstrap, topics, tmp_path)
    summary = import_episodes(parse_react_log(BASE_LOG), recorder, base_time_ms=1_700_000_000_000,
                              progress=False)
    assert recorder.flush(60) == 0
    recorder.close()
    assert summary.episodes > 300

    env = worker_env(kafka_broker.bootstrap, unique_topic_prefix, tmp_path / "home")
    worker = start_worker(env, tmp_path / "worker.log")
    try:
        wait_for_pipeline(kafka_broker.bootstrap, unique_topic_prefix, sinks=False)
        lessons = [x for x in latest_experiences(kafka_broker.bootstrap, topics.experiences)
                   if _is_quoted_search_lesson(x)]
        assert lessons and lessons[0].support_episodes >= 10
    finally:
        stop_worker(worker)
    lesson = max(lessons, key=lambda x: x.support_episodes)
    assert lesson.status == "proposed"
    # A version carries at most EVIDENCE_PER_VERSION entries: the lineage is the union over all
    # versions of the experience, and it covers exactly the lesson's support.
    versions = [r.event for r in TopicReader(kafka_broker.bootstrap, topics.experiences,
                                             Bounds()).records()
                if isinstance(r.event, model.Experience)
                and r.event.experience_id == lesson.experience_id]
    lineage = {e.episode_id for x in versions if x.version <= lesson.version for e in x.evidence}
    assert len(lineage) == lesson.support_episodes
    assert "quote" in lesson.guidance.lower()

    out = io.StringIO()
    with contextlib.redirect_stdout(out), environ(env):
        assert kaizen_main(["experiences", "list", "--limit", "0"]) == 0
    assert lesson.experience_id[:12] in out.getvalue()


def _misplaced_changelog_entries(bootstrap: str, prefix: str) -> dict[str, int]:
    """Per table, the changelog entries in another partition than their key's input records: a
    worker restoring a partition reads only that partition's changelog."""
    inputs = {EPISODES_TABLE: Topics(prefix).episodes,
              PATTERNS_TABLE: f"{prefix}.{TOOL_RESULTS_TOPIC}",
              CURATION_TABLE: f"{prefix}.{CURATION_TOPIC}"}
    misplaced = {}
    for table, source in inputs.items():
        where = {r.key: r.partition
                 for batch in TopicReader(bootstrap, source, Bounds()).raw_batches()
                 for r in batch}
        changelog = f"{prefix}-processors-{table}-changelog"
        entries = [r for batch in TopicReader(bootstrap, changelog, Bounds()).raw_batches()
                   for r in batch]
        assert entries, changelog
        # the episodes table keys an episode by tenant/agent/episode id, its input by the id
        input_key = ((lambda k: parse_scope_key(k)[-1]) if table == EPISODES_TABLE
                     else (lambda k: k))
        misplaced[table] = sum(where[input_key(json.loads(r.key or b"")).encode()]
                               != r.partition for r in entries)
    return misplaced


def _record_drifting_fleet(recorder: Any, episodes: int, seed: int) -> None:
    """Episodes that hit an API change (renamed argument) and recover, plus transient errors."""
    rng = random.Random(seed)
    for i in range(episodes):
        user = f"user{rng.randrange(6)}"
        with recorder.episode(f"check order {i} status", user=user, task_type="orders",
                              episode_id=f"ep-{i}", occurred_at=1_700_000_000_000 + i * 500) as ep:
            t = 1_700_000_000_000 + i * 500
            if rng.random() < 0.6:
                ep.tool_call("orders.get", {"order": i}, occurred_at=t + 1)
                ep.tool_result("orders.get", ok=False, error=f"400: unknown field 'order' ({i})",
                               occurred_at=t + 2)
            ep.tool_call("orders.get", {"order_id": i}, occurred_at=t + 3)
            ok = rng.random() < 0.9
            ep.tool_result("orders.get", ok=ok, error=None if ok else "503 Service Unavailable",
                           occurred_at=t + 4)
            ep.end(success=ok, occurred_at=t + 5)


def test_a_worker_killed_mid_stream_ends_with_the_same_learning_as_an_uninterrupted_one(
    kafka_broker: Any, tmp_path: Path
) -> None:
    """Also when a second worker joins mid-stream and then the first is killed: its partitions'
    states must come back from their own changelog partitions on the survivor."""
    bootstrap = kafka_broker.bootstrap
    views = []
    for run, kill in (("steady", ""), ("killed", "restart"), ("shared", "hand over")):
        prefix = f"t{random.getrandbits(40):x}{run}"
        topics = make_topics(bootstrap, prefix)
        recorder = make_recorder(bootstrap, topics, tmp_path / run)
        _record_drifting_fleet(recorder, 400, seed=11)
        assert recorder.flush(60) == 0
        recorder.close()
        garbage = Producer({"bootstrap.servers": bootstrap})
        garbage.produce(topics.episodes, b"not avro at all", b"junk", partition=0)
        garbage.flush(10)

        env = worker_env(bootstrap, prefix, tmp_path / run / "home")
        worker = start_worker(env, tmp_path / f"{run}.log")
        if kill:
            wait_for("some learning", lambda t=topics: _experience_view(bootstrap, t))
            if kill == "hand over":  # a second worker takes some partitions, then all of them
                second = start_worker(worker_env(bootstrap, prefix, tmp_path / run / "home2"),
                                      tmp_path / f"{run}-2.log")
                wait_for("both workers holding partitions",  # the group has rebalanced
                         lambda g=f"{prefix}-processors": group_members_with_partitions(
                             bootstrap, g) == 2)
                stop_worker(worker, signal.SIGKILL)
                worker = second
            else:
                stop_worker(worker, signal.SIGKILL)
                worker = start_worker(env, tmp_path / f"{run}.log")
        try:
            wait_for_pipeline(bootstrap, prefix, sinks=False)
            view = (_experience_view(bootstrap, topics), _pattern_view(bootstrap, topics))
            assert view[0] and view[1]
        finally:
            stop_worker(worker)
        # stopped by SIGTERM alone (`stop_worker` kills it after 30 s): a fetch loop or batch
        # reader that does not end when faust closes its channels hangs the worker's shutdown
        assert worker.returncode == 0, f"the worker did not stop on SIGTERM ({worker.returncode})"
        assert set(_misplaced_changelog_entries(bootstrap, prefix).values()) == {0}
        # a worker killed before committing reads the bad record again and writes the same dead
        # letter (its id is its position): consumers dedupe by event id, so count distinct ones
        letters = list({r.event.event_id: r.event for r in TopicReader(
            bootstrap, topics.deadletter, Bounds()).records()}.values())
        assert [(d.source_partition, d.error_type) for d in letters] == [(0, "DecodeError")]
        assert letters[0].value == b"not avro at all"
        views.append(view)
    for other in views[1:]:
        for steady, killed in zip(views[0], other, strict=True):
            differing = {k: (steady.get(k), killed.get(k)) for k in steady.keys() | killed.keys()
                         if steady.get(k) != killed.get(k)}
            assert differing == {}
    experiences = views[0][0]
    assert any(v[3] == "proposed" for v in experiences.values())
