"""Issue 13: a three-broker KRaft cluster (replication 3, min.insync.replicas 2) loses one broker
to kill -9 while an agent is emitting. Nothing is lost or duplicated on the episodes topic, every
episode stays in order, and the processors, started with that broker still dead, learn lessons.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from contextlib import ExitStack
from pathlib import Path

from kaizen.importers.react_log import parse_react_log
from kaizen.importers.run import import_episodes
from kaizen.infra.cluster import KafkaCluster
from kaizen.schemas import model
from kaizen.streams.admin import admin_client, create_topics
from kaizen.streams.latest import latest_experiences
from kaizen.streams.topics import Topics
from tests.integration.conftest import _jar_cache
from tests.integration.kafka_helpers import consume_all, decode_all, make_recorder
from tests.integration.workers import start_worker, stop_worker, wait_until_stable, worker_env

_NEXT_TO_PROJECT = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SHARED = _NEXT_TO_PROJECT if _NEXT_TO_PROJECT.exists() else Path("/work/shared/data")
BASE_LOG = SHARED / "reflexion" / "hotpotqa_react" / "base_100q_5trials.txt"


def _free_ports(count: int) -> list[int]:
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


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

    recorder = make_recorder(cluster.bootstrap, topics, tmp_path / "spool")
    victim = cluster.nodes[1]
    killed = threading.Event()

    def kill_midway() -> None:
        while recorder.stats.delivered < 1500 and not killed.is_set():
            recorder.flush(0.2)
        os.kill(int(victim.status()["pid"]), signal.SIGKILL)
        killed.set()

    killer = threading.Thread(target=kill_midway, daemon=True)
    killer.start()
    summary = import_episodes(parse_react_log(BASE_LOG), recorder, base_time_ms=1_700_000_000_000,
                              progress=False)
    killer.join(120)
    assert killed.is_set() and not victim.status()["running"]
    assert recorder.flush(120) == 0
    recorder.close()
    emitted = recorder.stats.emitted
    assert emitted > 3000 and summary and recorder.stats.failed == 0

    alive = ",".join(n.bootstrap for n in cluster.nodes if n is not victim)
    events = decode_all(consume_all(alive, topics.episodes, emitted, timeout=120))
    ids = [e.event_id for e in events if isinstance(e, model.EpisodeEvent)]
    assert len(ids) == emitted and len(set(ids)) == emitted  # none lost, none doubled
    seqs: dict[str, list[int]] = {}
    for event in events:
        assert isinstance(event, model.EpisodeEvent)
        seqs.setdefault(event.episode_id, []).append(event.seq)
    assert all(seq == list(range(len(seq))) for seq in seqs.values())  # each episode in order

    env = worker_env(alive, prefix, tmp_path / "home")
    worker = start_worker(env, tmp_path / "process.log")
    try:
        learned = wait_until_stable(lambda: len(latest_experiences(alive, topics.experiences)),
                                    settle=8.0, timeout=240.0)
    finally:
        stop_worker(worker)
    assert learned > 0
