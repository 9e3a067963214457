"""Rollback reach and rebuild rate, on a real broker.

Prints, from one run:
- the time from a rollback event being written to (a) a Recorder following the snapshot log and
  (b) the recall index of a behavior manager (the service's code path) switching to the new
  active snapshot, p50 / p99 over repeated rollbacks after one warm-up round, and the part of it
  the broker took to acknowledge the write (target p99 < 100 ms);
- the rate of `kaizen rebuild` (fresh ClickHouse + Qdrant from the log) in events/s over a log of
  episode events plus the signals and pattern updates the processors would have written for them,
  next to the raw read rate and the per-record decode rate of the episodes topic (target >= 100k
  events/s).

Run: `python bench/rollback.py [--rollbacks 200] [--events 200000] [--json PATH]` after
`make setup`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: bench importable

from bench.common import broker, percentile, write_json
from kaizen.logs import configure_logging
from kaizen.processors.learning import snapshots
from kaizen.processors.learning.snapshots import Candidate
from kaizen.readmodel.embedding import HashingEmbedder
from kaizen.readmodel.index import RecallIndex
from kaizen.schemas import model
from kaizen.schemas.codec import Codec
from kaizen.service.gate import Behavior
from kaizen.service.rebuild import RebuildReport, rebuild
from kaizen.settings import load_settings
from kaizen.streams.admin import create_topics
from kaizen.streams.clients import producer_config
from kaizen.streams.recorder import Recorder
from kaizen.streams.replay import Bounds, TopicReader
from kaizen.streams.snapshot_log import SnapshotTail, publish
from kaizen.streams.topics import Topics

TENANT, AGENT = "bench", "bench-bot"


def _two_snapshots(bootstrap: str, topic: str) -> tuple[str, str]:
    """Propose and activate A then B, each with one member."""
    ids = []
    now = int(time.time() * 1000)
    active: str | None = None
    for name in ("a", "b"):
        candidate = Candidate(members={f"lesson-{name}": f"hash-{name}"},
                              added=(f"lesson-{name}",), removed=(), changed=(),
                              tools=frozenset(), lessons=())
        sid = candidate.snapshot_id(TENANT, AGENT)
        publish(bootstrap, topic, [
            snapshots.proposed_event(TENANT, AGENT, candidate, parent_id=active, occurred_at=now),
            snapshots.activated_event(TENANT, AGENT, sid, replaced=active, occurred_at=now),
        ])
        ids.append(sid)
        active = sid
    return ids[0], ids[1]


def rollback_reach(bootstrap: str, topics: Topics, spool: Path, rounds: int
                   ) -> tuple[list[float], list[float], list[float]]:
    a, b = _two_snapshots(bootstrap, topics.snapshots)
    recorder = Recorder(AGENT, TENANT, bootstrap=bootstrap, topic=topics.episodes,
                        spool_dir=spool / "r", follow_snapshots=topics.snapshots)
    index = RecallIndex(HashingEmbedder())
    behavior = Behavior(index, lambda events: None)
    seen = threading.Event()
    target = [""]

    def on_event(offset: int, event: model.SnapshotEvent) -> None:
        behavior.on_snapshot_event(offset, event)
        if behavior.log.active(snapshots.scope_of(TENANT, AGENT)) == target[0]:
            seen.set()

    tail = SnapshotTail(bootstrap, topics.snapshots, on_event).start()
    tail.wait_caught_up(30)
    producer = Producer(producer_config(bootstrap, **{"linger.ms": 0}))  # the CLI's
    to_recorder, to_index, acked = [], [], []
    active = b
    # round 0 warms up and is not counted: a producer's first send fetches metadata and its
    # idempotence id (on a broker just started, ~1 s of "coordinator load in progress"); with
    # 50 rounds p99 is the slowest one, so that one round was the "552 ms p99" of issue 14
    for i in range(rounds + 1):
        goal = a if active == b else b
        target[0] = goal
        seen.clear()
        started = time.perf_counter()
        publish(bootstrap, topics.snapshots, [snapshots.rolled_back_event(
            TENANT, AGENT, goal, replaced=active, occurred_at=int(time.time() * 1000) + i,
            actor="bench", reason="bench")], producer=producer)
        acked.append(time.perf_counter() - started)
        seen.wait(5)
        to_index.append(time.perf_counter() - started)
        while recorder.snapshot_id != goal and time.perf_counter() - started < 5:
            time.sleep(0.001)
        to_recorder.append(time.perf_counter() - started)
        active = goal
        if i == 0:
            to_recorder, to_index, acked = [], [], []
    tail.stop()
    recorder.close()
    return sorted(to_recorder), sorted(to_index), sorted(acked)


def _learned(bootstrap: str, topics: Topics, episodes: int) -> None:
    """What the processors would have written for those episodes: an outcome and a rating per
    episode, a failure, a recovery with its patch and a pattern update per failed one."""
    codec, producer = Codec(), Producer(producer_config(bootstrap, **{"linger.ms": 20}))
    patch = model.ToolCallPatch("orders.get", [model.ArgumentChange("rename", "id", "order_id")])
    for i in range(episodes):
        t, ep = 1_700_000_000_000 + i, f"episode-{i}"
        kinds = ["outcome", "rating"] + (["failure", "recovery"] if i % 3 == 0 else [])
        for k, kind in enumerate(kinds):
            signal = model.Signal(
                str(uuid.uuid5(uuid.NAMESPACE_URL, f"{ep}/{kind}")), t, TENANT, AGENT, ep, kind,
                tool="orders.get", signature="orders.get: <n> upstream",
                patch=patch if kind == "recovery" else None,
                outcome="success" if kind == "outcome" else None,
                rating=1.0 if kind == "rating" else None, source_partition=0, source_offset=k)
            producer.produce(topics.signals, codec.encode(signal), ep.encode())
        if i % 3 == 0:
            pattern = model.Pattern(str(uuid.uuid5(uuid.NAMESPACE_URL, f"{ep}/pattern")), t,
                                    TENANT, AGENT, "orders.get", "orders.get: <n> upstream",
                                    t - t % 60_000, 60, i // 3 + 1, 1, 1, 1, i + 1, 0.3, 0.3,
                                    1_700_000_000_000, t, "steady")
            producer.produce(topics.patterns, codec.encode(pattern), AGENT.encode())
        producer.poll(0)
    producer.flush(120)


def rebuild_rate(bootstrap: str, prefix: str, home: Path, events: int
                 ) -> tuple[RebuildReport, float, float]:
    topics = Topics(prefix)
    with Recorder(AGENT, TENANT, bootstrap=bootstrap, topic=topics.episodes,
                  spool_dir=home / "spool" / "load") as recorder:
        for i in range(events // 5):
            t = 1_700_000_000_000 + i
            with recorder.episode(f"task {i}", user=f"u{i % 20}", occurred_at=t) as ep:
                ep.tool_call("orders.get", {"id": i}, occurred_at=t)
                failed = i % 3 == 0
                ep.tool_result("orders.get", ok=not failed,
                               error="500 upstream" if failed else None, occurred_at=t)
                ep.feedback(rating=1.0, occurred_at=t)
                ep.end(success=True, occurred_at=t)
        recorder.flush(120)
    _learned(bootstrap, topics, events // 5)
    # one more snapshot event after the episodes, so "as of the end of the log" covers them all
    _two_snapshots(bootstrap, topics.snapshots)
    started = time.perf_counter()
    decoded = sum(1 for _ in TopicReader(bootstrap, topics.episodes, Bounds()).records())
    decode_rate = decoded / (time.perf_counter() - started)
    started = time.perf_counter()
    read = sum(len(b) for b in TopicReader(bootstrap, topics.episodes, Bounds()).raw_batches())
    read_rate = read / (time.perf_counter() - started)
    settings = load_settings(kafka_bootstrap=bootstrap, topic_prefix=prefix, home=home / "svc")
    end = TopicReader(bootstrap, topics.snapshots, Bounds()).total
    report = rebuild(settings, end, home / "rebuilt")
    return report, decode_rate, read_rate


def main() -> int:
    parser = argparse.ArgumentParser(description="rollback reach and rebuild rate")
    parser.add_argument("--rollbacks", type=int, default=200)
    parser.add_argument("--events", type=int, default=200_000, help="episode events in the log")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    configure_logging("console", "warning")
    with tempfile.TemporaryDirectory(prefix="kaizen-bench-") as tmp, broker(Path(tmp)) as boot:
        prefix = f"rb{int(time.time())}"
        create_topics(boot, prefix, 3)
        to_recorder, to_index, acked = rollback_reach(boot, Topics(prefix), Path(tmp),
                                                      args.rollbacks)
        report, decode_rate, read_rate = rebuild_rate(boot, prefix, Path(tmp), args.events)
    for name, values in (("recorder", to_recorder), ("recall index", to_index),
                         ("broker ack", acked)):
        print(f"rollback -> {name:<13} p50 {statistics.median(values) * 1000:6.1f} ms  "
              f"p99 {percentile(values, 0.99) * 1000:6.1f} ms  (target < 100 ms)")
    print(f"rebuild                    {report.rate:,.0f} events/s over {report.events:,} events "
          f"(target >= 100,000), plus {report.setup_seconds:.1f} s creating the stores")
    speedup = report.rate / decode_rate
    print(f"  episodes topic, same run: raw read {read_rate:,.0f} events/s; read + per-record "
          f"Python decode {decode_rate:,.0f} events/s (rebuild: {speedup:.1f}x that)")
    if args.json:
        both = to_recorder  # taken after the index saw it: the time until both had switched
        write_json(args.json, {
            "rollback_p50_ms": statistics.median(both) * 1000,
            "rollback_p99_ms": percentile(both, 0.99) * 1000,
            "rollback_recorder_p99_ms": percentile(to_recorder, 0.99) * 1000,
            "rollback_index_p99_ms": percentile(to_index, 0.99) * 1000,
            "rollback_ack_p99_ms": percentile(acked, 0.99) * 1000,
            "rebuild_events_per_s": report.rate, "rebuild_to_decode_ratio": speedup})
    return 0


if __name__ == "__main__":
    sys.exit(main())
