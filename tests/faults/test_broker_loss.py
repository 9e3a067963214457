"""Issue 13: a three-broker KRaft cluster (replication 3, min.insync.replicas 2) loses one broker
to kill -9 while an agent is emitting. Nothing is lost or duplicated on the episodes topic, every
episode stays in order, and the processors, started with that broker still dead, learn lessons.
The processors' own topics (table changelogs, the re-keyed internal topics) have 3 replicas too,
so their state outlives the broker: a first worker creates them before the kill.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from kaizen.infra.cluster import KafkaCluster
from kaizen.infra.kafka import KafkaLauncher
from kaizen.processors.config import (
    CURATION_TABLE,
    CURATION_TOPIC,
    EPISODES_TABLE,
    PATTERNS_TABLE,
    TOOL_RESULTS_TOPIC,
)
from kaizen.schemas import model
from kaizen.streams.admin import admin_client, create_topics
from kaizen.streams.latest import latest_experiences
from kaizen.streams.recorder import Recorder
from kaizen.streams.topics import Topics
from tests.faults.serving import record_recovery
from tests.integration.conftest import _jar_cache
from tests.integration.kafka_helpers import consume_all, decode_all, make_recorder
from tests.integration.waiting import wait_for
from tests.integration.workers import start_worker, stop_worker, worker_env

EPISODES = 600  # 6 events each (start, two calls, two results, end): 3,600 events


def _free_ports(count: int) -> list[int]:
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


@pytest.mark.timeout(900)  # minutes on a loaded 2-core machine
def test_killing_one_of_three_brokers_under_load_loses_and_duplicates_nothing(
    tmp_path: Path, unique_topic_prefix: str
) -> None:
    ports = _free_ports(6)
    cluster = KafkaCluster(tmp_path / "cluster", 3, cache_dir=_jar_cache(),
                           node_ports=tuple(zip(ports[::2], ports[1::2], strict=True)))
    print(cluster.up())
    try:
        _run_under_broker_loss(cluster, unique_topic_prefix, tmp_path)
    finally:
        cluster.down()


def _run_under_broker_loss(cluster: KafkaCluster, prefix: str, tmp_path: Path) -> None:
    create_topics(cluster.bootstrap, prefix, 3, replication=3)
    topics = Topics(prefix)
    described = admin_client(cluster.bootstrap).list_topics(topics.episodes, timeout=10)
    assert all(len(p.replicas) == 3 for p in described.topics[topics.episodes].partitions.values())

    _assert_processor_topics_replicated(cluster.bootstrap, prefix, tmp_path)

    recorder = make_recorder(cluster.bootstrap, topics, tmp_path / "spool")
    victim = cluster.nodes[1]
    killed = threading.Event()
    try:
        _emit_killing_midway(recorder, victim, killed)
        assert killed.is_set()
        # kill -9 is not death yet: the emit loop (it only queues) may end before the broker
        # process is reaped and its port closed
        wait_for("the killed broker gone", lambda: not victim.status()["running"], timeout=60)
        assert recorder.flush(120) == 0
    finally:
        recorder.close()  # also when an assertion failed: no producer left retrying a dead cluster
    emitted = recorder.stats.emitted
    assert emitted == 6 * EPISODES and recorder.stats.failed == 0

    alive = ",".join(n.bootstrap for n in cluster.nodes if n.bootstrap != victim.bootstrap)
    events = decode_all(consume_all(alive, topics.episodes, emitted, timeout=120))
    ids = [e.event_id for e in events if isinstance(e, model.EpisodeEvent)]
    assert len(ids) == emitted and len(set(ids)) == emitted  # none lost, none doubled
    seqs: dict[str, list[int]] = {}
    for event in events:
        assert isinstance(event, model.EpisodeEvent)
        seqs.setdefault(event.episode_id, []).append(event.seq)
    assert all(seq == list(range(len(seq))) for seq in seqs.values())  # each episode in order

    env = worker_env(alive, prefix, tmp_path / "home", KAIZEN_KAFKA_REPLICATION="3")
    worker = start_worker(env, tmp_path / "process.log")
    try:
        learned = wait_for("a lesson learned with one broker dead",
                           lambda: latest_experiences(alive, topics.experiences), timeout=240)
    finally:
        stop_worker(worker)
    assert any("invoice_no" in str(lesson) for lesson in learned)


def _processor_topics(prefix: str) -> list[str]:
    """The topics the processors create: a changelog per table, the re-keyed inputs, and faust's
    leader topic."""
    app_id = f"{prefix}-processors"
    return [*(f"{app_id}-{table}-changelog" for table in (EPISODES_TABLE, PATTERNS_TABLE,
                                                         CURATION_TABLE)),
            f"{prefix}.{TOOL_RESULTS_TOPIC}", f"{prefix}.{CURATION_TOPIC}",
            f"{app_id}-__assignor-__leader"]


def _assert_processor_topics_replicated(bootstrap: str, prefix: str, tmp_path: Path) -> None:
    """Start a worker on the whole cluster, wait until it has created its topics, stop it, and
    check each has 3 replicas per partition (before the fix: 1, so a lost broker lost state)."""
    names = _processor_topics(prefix)
    admin = admin_client(bootstrap)
    env = worker_env(bootstrap, prefix, tmp_path / "home", KAIZEN_KAFKA_REPLICATION="3")
    worker = start_worker(env, tmp_path / "process-first.log")
    try:
        found = wait_for("the processors' topics", lambda: _all_listed(admin, names),
                         timeout=240)
    finally:
        stop_worker(worker)
    replicas = {n: sorted({len(p.replicas) for p in found[n].partitions.values()})
                for n in names}
    assert replicas == {n: [3] for n in names}, replicas


def _all_listed(admin: AdminClient, names: list[str]) -> dict[str, Any]:
    """The broker's topic metadata once every one of `names` is there with its partitions."""
    listed = admin.list_topics(timeout=10).topics
    return listed if all(n in listed and listed[n].partitions for n in names) else {}


def _emit_killing_midway(recorder: Recorder, victim: KafkaLauncher,
                         killed: threading.Event) -> None:
    """Record `EPISODES` recoveries (a renamed argument, then the new name) while a thread
    kill -9s `victim` once 1,500 events are delivered; the thread gives up with the emitting."""
    done = threading.Event()

    def kill_midway() -> None:
        while recorder.stats.delivered < 1500 and not done.is_set():
            recorder.flush(0.2)
        if not done.is_set():
            os.kill(int(victim.status()["pid"]), signal.SIGKILL)
            killed.set()

    killer = threading.Thread(target=kill_midway, daemon=True)
    killer.start()
    try:
        for i in range(EPISODES):
            record_recovery(recorder, i, f"u{i % 40}", f"loss-{i}")
            if i == EPISODES // 2:
                recorder.flush(30)  # let the killer see 1,500 delivered before the end
    finally:
        killer.join(60)
        done.set()
