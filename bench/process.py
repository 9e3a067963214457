"""Processor throughput and recovery-to-experience latency, on a real broker.

Prints, from one run on one machine (so the ratio is meaningful on a noisy box):
- the raw consume rate of the episodes topic (confluent-kafka, no decoding), the rate of one faust
  worker that takes the same events and does nothing (faust's own ceiling), and the rate of one
  processor worker over the same topic, with the ratios;
- the latency from a recovery being emitted by a Recorder to its experience appearing on
  `kaizen.experiences` (p50 / p99), with the worker caught up.

Run: `python bench/process.py [--events 60000]` after `make setup`. Starts its own broker in a temp
dir unless KAIZEN_KAFKA_BOOTSTRAP is set.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from bench.common import broker, percentile
from kaizen.schemas import model
from kaizen.schemas.codec import Codec
from kaizen.streams.admin import create_topics
from kaizen.streams.recorder import Recorder
from kaizen.streams.topics import Topics


def _record_fleet(recorder: Recorder, events: int) -> None:
    """Episodes of 8 events: a renamed-argument failure and its recovery in half of them."""
    for i in range(events // 8):
        t = 1_700_000_000_000 + i * 20
        with recorder.episode(f"check order {i}", user=f"u{i % 50}", occurred_at=t) as ep:
            ep.llm_call("model-x", input_tokens=100, output_tokens=20, occurred_at=t + 1)
            if i % 2:
                ep.tool_call("orders.get", {"order": i}, occurred_at=t + 2)
                ep.tool_result("orders.get", ok=False, error="400 unknown field 'order'",
                               occurred_at=t + 3)
            else:
                ep.tool_call("search", {"q": f"order {i}"}, occurred_at=t + 2)
                ep.tool_result("search", ok=True, occurred_at=t + 3)
            ep.tool_call("orders.get", {"order_id": i}, occurred_at=t + 4)
            ep.tool_result("orders.get", ok=True, occurred_at=t + 5)
            ep.feedback(rating=1.0, occurred_at=t + 6)
            ep.end(success=True, occurred_at=t + 7)


def _end_offsets(consumer: Consumer, topic: str) -> dict[int, int]:
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in parts}


def raw_consume_rate(bootstrap: str, topic: str, total: int) -> float:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"raw-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    seen, start = 0, None
    while seen < total:
        batch = consumer.consume(1000, timeout=1.0)
        if batch and start is None:
            start = time.perf_counter()
        seen += sum(1 for m in batch if m.error() is None)
    elapsed = time.perf_counter() - (start or time.perf_counter())
    consumer.close()
    return seen / elapsed


def _committed(bootstrap: str, group: str, topic: str, partitions: list[int]) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    offsets = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
    consumer.close()
    return sum(max(tp.offset, 0) for tp in offsets)


def processor_rate(bootstrap: str, prefix: str, home: Path, total: int,
                   baseline: bool = False) -> tuple[float, Any]:
    """Events/s of one worker over the episodes topic, from its committed offsets; `baseline`
    runs faust alone (`kaizen process --faust-baseline`: takes the events, does nothing)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIZEN_")}
    env.update(KAIZEN_KAFKA_BOOTSTRAP=bootstrap, KAIZEN_TOPIC_PREFIX=prefix, KAIZEN_HOME=str(home))
    command = [sys.executable, "-m", "kaizen.cli", "process"]
    worker = subprocess.Popen([*command, "--faust-baseline"] if baseline else command, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    topic = Topics(prefix).episodes
    group = f"{prefix}-processors" + ("-baseline" if baseline else "")
    partitions = list(range(3))
    first_progress: tuple[float, int] | None = None
    done = 0
    while done < total:
        time.sleep(0.5)
        done = _committed(bootstrap, group, topic, partitions)
        if done and first_progress is None:
            first_progress = (time.perf_counter(), done)
        print(f"\r  processed {done:,}/{total:,}", end="", file=sys.stderr)
    print(file=sys.stderr)
    started_at, started_done = first_progress or (time.perf_counter(), 0)
    return (done - started_done) / max(time.perf_counter() - started_at, 1e-9), worker


def wait_downstream_idle(bootstrap: str, topics: Topics, quiet_s: float = 3.0) -> float:
    """Seconds until the learning outputs stop growing: the curation and pattern steps run behind
    episode assembly, so this is when the whole pipeline has caught up."""
    started, probe = time.perf_counter(), Consumer({"bootstrap.servers": bootstrap,
                                                     "group.id": "probe-idle"})
    last, since = -1, time.perf_counter()
    while time.perf_counter() - since < quiet_s:
        ends = sum(sum(_end_offsets(probe, t).values())
                   for t in (topics.signals, topics.patterns, topics.experiences))
        if ends != last:
            last, since = ends, time.perf_counter()
        time.sleep(0.5)
    probe.close()
    return since - started


def recovery_latency(bootstrap: str, topics: Topics, spool: Path, samples: int) -> list[float]:
    """Emit recoveries one by one; time until an experience version cites each episode."""
    sent: dict[str, float] = {}
    arrived: dict[str, float] = {}
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"lat-{uuid.uuid4().hex}",
                         "auto.offset.reset": "latest"})
    consumer.subscribe([topics.experiences])
    consumer.consume(1, timeout=3.0)
    codec, stop = Codec(), threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for message in consumer.consume(100, timeout=0.2):
                event = codec.decode(message.value() or b"")
                if isinstance(event, model.Experience):
                    for evidence in event.evidence:
                        if evidence.episode_id in sent and evidence.episode_id not in arrived:
                            arrived[evidence.episode_id] = time.perf_counter()

    watcher = threading.Thread(target=watch)
    watcher.start()
    with Recorder("bench-bot", "bench", bootstrap=bootstrap, topic=topics.episodes,
                  spool_dir=spool / "latency") as recorder:
        for i in range(samples):
            now = recorder.now_ms() + 10_000_000  # later than the backlog in event time
            with recorder.episode(f"live order {i}", user=f"u{i % 5}", occurred_at=now) as ep:
                ep.tool_call("orders.get", {"order": i}, occurred_at=now + 1)
                ep.tool_result("orders.get", ok=False, error="400 unknown field 'order'",
                               occurred_at=now + 2)
                ep.tool_call("orders.get", {"order_id": i}, occurred_at=now + 3)
                sent[ep.episode_id] = time.perf_counter()
                ep.tool_result("orders.get", ok=True, occurred_at=now + 4)
                ep.end(success=True, occurred_at=now + 5)
            recorder.flush(5)
            time.sleep(0.05)
        deadline = time.monotonic() + 30
        while len(arrived) < samples and time.monotonic() < deadline:
            time.sleep(0.2)
    stop.set()
    watcher.join()
    consumer.close()
    return sorted(arrived[e] - sent[e] for e in arrived)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--latency-samples", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kaizen-bench-") as tmp:
        home = Path(tmp)
        with broker(home) as bootstrap:
            prefix = f"bench{uuid.uuid4().hex[:6]}"
            create_topics(bootstrap, prefix, 3)
            topics = Topics(prefix)
            with Recorder("bench-bot", "bench", bootstrap=bootstrap, topic=topics.episodes,
                          spool_dir=home / "spool" / "load") as recorder:
                _record_fleet(recorder, args.events)
                recorder.flush(120)
            probe = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe"})
            total = sum(_end_offsets(probe, topics.episodes).values())
            probe.close()
            raw = raw_consume_rate(bootstrap, topics.episodes, total)
            faust_alone, baseline = processor_rate(bootstrap, prefix, home / "baseline", total,
                                                   baseline=True)
            baseline.terminate()
            baseline.wait(30)
            started = time.perf_counter()
            rate, worker = processor_rate(bootstrap, prefix, home / "worker", total)
            assembled = time.perf_counter() - started
            lag = wait_downstream_idle(bootstrap, topics)
            pipeline = total / (assembled + lag)
            latencies = recovery_latency(bootstrap, topics, home / "spool", args.latency_samples)
            worker.terminate()
            worker.wait(30)
    print(f"episode events            {total:,}")
    print(f"raw consume (confluent)   {raw:,.0f} events/s")
    print(f"faust alone, one worker   {faust_alone:,.0f} events/s  (takes the events, does "
          f"nothing: {faust_alone / raw:.1%} of raw consume)")
    print(f"processors, one worker    {rate:,.0f} events/s assembled  ({rate / faust_alone:.0%} "
          f"of faust alone, {rate / raw:.1%} of raw consume); {pipeline:,.0f} events/s until "
          "every output was written")
    print("target                    >= 20,000 events/s per worker")
    if latencies:
        p50 = statistics.median(latencies)
        p99 = percentile(latencies, 0.99)
        print(f"recovery -> experience    p50 {p50 * 1000:.0f} ms  p99 {p99 * 1000:.0f} ms "
              f"({len(latencies)}/{args.latency_samples} arrived; target p99 < 1 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
