"""Processor throughput and recovery-to-experience latency, on a real broker.

Prints, from one run on one machine (so the ratio is meaningful on a noisy box):
- the raw consume rate of the episodes topic (confluent-kafka, no decoding), the rate of one
  stock faust worker that takes the same events in batches (`take_events`) and does nothing
  (the ceiling of a plain faust app), and the rate of one processor worker over the same topic;
- the rate until every output is written (signals, patterns, experiences), as a ratio to stock
  faust alone (`outputs_to_faust_ratio`, target >= 0.7); every rate is timed from the first
  progress, so worker start-up counts in none of them;
- faust alone through the processors' own fetch loop and batch reader (`processors/fetching.py`,
  `processors/batches.py`), doing nothing, and the processors' rate as a ratio to it
  (`outputs_to_lean_faust_ratio`): the share of a worker's time the folds leave, since the
  processors no longer pay stock faust's cost per message;
- two workers on a copy of the same topic (same partitions): their combined rate until every
  output is written, next to one worker's (`two_workers_to_one_ratio`);
- the latency from a recovery being emitted by a Recorder to its experience appearing on
  `kaizen.experiences`, and to its lesson being recallable from the service's recall index
  (through the sink runner), p50 / p99, with the worker caught up (target p99 < 1 s).

Run: `python bench/process.py [--events 60000] [--json PATH]` after `make setup`. Starts its own
broker in a temp dir unless KAIZEN_KAFKA_BOOTSTRAP is set.
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
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: bench importable

from bench.common import broker, percentile, write_json
from bench.learning_latency import recovery_to_recallable, timed_recovery
from kaizen.schemas import model
from kaizen.schemas.codec import Codec
from kaizen.streams.admin import create_topics
from kaizen.streams.clients import producer_config
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


@dataclass
class Run:
    """One measured run of worker processes over the episodes topic."""

    rate: float  # episode events/s assembled (committed input offsets), from the first progress
    workers: list[subprocess.Popen[bytes]]
    started_at: float  # when the first progress was seen
    started_done: int  # events committed by then

    def stop(self) -> None:
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            worker.wait(30)


def processor_rate(bootstrap: str, prefix: str, home: Path, total: int,
                   baseline: str | None = None, workers: int = 1) -> Run:
    """Events/s of `workers` workers over the episodes topic, from their committed offsets;
    `baseline` ("stock" or "lean") runs faust alone (`kaizen process --faust-baseline`: takes
    the events, does nothing). The clock starts at the first progress, so start-up is left out
    of every rate."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIZEN_")}
    env.update(KAIZEN_KAFKA_BOOTSTRAP=bootstrap, KAIZEN_TOPIC_PREFIX=prefix)
    command = [sys.executable, "-m", "kaizen.cli", "process"]
    procs = [subprocess.Popen([*command, "--faust-baseline", baseline] if baseline else command,
                              env={**env, "KAIZEN_HOME": str(home / f"w{n}")},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for n in range(workers)]
    topic = Topics(prefix).episodes
    group = f"{prefix}-processors" + {None: "", "stock": "-baseline",
                                      "lean": "-baseline-lean"}[baseline]
    partitions = list(range(3))
    first_progress: tuple[float, int] | None = None
    done = 0
    while done < total:
        time.sleep(0.2)
        done = _committed(bootstrap, group, topic, partitions)
        if done and first_progress is None:
            first_progress = (time.perf_counter(), done)
        if sys.stderr.isatty():
            print(f"\r  processed {done:,}/{total:,}", end="", file=sys.stderr)
    print(file=sys.stderr)
    started_at, started_done = first_progress or (time.perf_counter(), 0)
    rate = (done - started_done) / max(time.perf_counter() - started_at, 1e-9)
    return Run(rate, procs, started_at, started_done)


def wait_downstream_idle(bootstrap: str, topics: Topics, quiet_s: float = 3.0) -> float:
    """When the learning outputs stopped growing (perf_counter): the curation and pattern steps
    run behind episode assembly, so this is when the whole pipeline has caught up."""
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe-idle"})
    last, since = -1, time.perf_counter()
    while time.perf_counter() - since < quiet_s:
        ends = sum(sum(_end_offsets(probe, t).values())
                   for t in (topics.signals, topics.patterns, topics.experiences))
        if ends != last:
            last, since = ends, time.perf_counter()
        time.sleep(0.2)
    probe.close()
    return since


def outputs_rate(bootstrap: str, prefix: str, home: Path, total: int, workers: int = 1
                 ) -> tuple[float, Run]:
    """Events/s until every output is written: from the first progress to the last output."""
    run = processor_rate(bootstrap, prefix, home, total, workers=workers)
    last_output = wait_downstream_idle(bootstrap, Topics(prefix))
    return (total - run.started_done) / max(last_output - run.started_at, 1e-9), run


def copy_topic(bootstrap: str, source: str, target: str, total: int) -> None:
    """The same records, keys and partitions in another deployment's episodes topic."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"copy-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([source])
    producer = Producer(producer_config(bootstrap, **{"linger.ms": 20}))
    copied = 0
    while copied < total:
        for message in consumer.consume(1000, timeout=1.0):
            if message.error() is None:
                producer.produce(target, message.value(), message.key(),
                                 partition=message.partition() or 0)
                copied += 1
        producer.poll(0)
    producer.flush(120)
    consumer.close()


def recovery_latency(bootstrap: str, topics: Topics, spool: Path, samples: int) -> list[float]:
    """Emit recoveries of new lessons one by one; time until an experience cites each."""
    sent: dict[str, float] = {}
    arrived: dict[str, float] = {}
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"lat-{uuid.uuid4().hex}",
                         "auto.offset.reset": "latest"})
    consumer.subscribe([topics.experiences])
    deadline = time.monotonic() + 60
    while not consumer.assignment() and time.monotonic() < deadline:  # joined: then "latest"
        consumer.consume(1, timeout=0.5)
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
            timed_recovery(recorder, f"experience-{i}", sent)
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
    parser.add_argument("--latency-samples", type=int, default=50)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kaizen-bench-") as tmp:
        home = Path(tmp)
        with broker(home) as bootstrap:
            figures = measure(bootstrap, home, args.events, args.latency_samples)
    report(figures)
    if args.json:
        write_json(args.json, figures)
    return 0


def measure(bootstrap: str, home: Path, events: int, samples: int) -> dict[str, float]:
    prefix, twin = f"bench{uuid.uuid4().hex[:6]}", f"twin{uuid.uuid4().hex[:6]}"
    for name in (prefix, twin):
        create_topics(bootstrap, name, 3)
    topics = Topics(prefix)
    with Recorder("bench-bot", "bench", bootstrap=bootstrap, topic=topics.episodes,
                  spool_dir=home / "spool" / "load") as recorder:
        _record_fleet(recorder, events)
        recorder.flush(120)
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe"})
    total = sum(_end_offsets(probe, topics.episodes).values())
    probe.close()
    copy_topic(bootstrap, topics.episodes, Topics(twin).episodes, total)
    raw = raw_consume_rate(bootstrap, topics.episodes, total)
    baseline = processor_rate(bootstrap, prefix, home / "baseline", total, baseline="stock")
    baseline.stop()
    lean = processor_rate(bootstrap, prefix, home / "lean", total, baseline="lean")
    lean.stop()
    two, pair = outputs_rate(bootstrap, twin, home / "pair", total, workers=2)
    pair.stop()
    pipeline, run = outputs_rate(bootstrap, prefix, home / "worker", total)
    latencies = recovery_latency(bootstrap, topics, home / "spool", samples)
    recallable = recovery_to_recallable(bootstrap, prefix, home, samples)
    run.stop()
    figures = {"episode_events": float(total), "raw_consume_events_per_s": raw,
               "faust_alone_events_per_s": baseline.rate, "assembled_events_per_s": run.rate,
               "lean_faust_alone_events_per_s": lean.rate,
               "outputs_events_per_s": pipeline, "outputs_to_faust_ratio": pipeline / baseline.rate,
               "outputs_to_lean_faust_ratio": pipeline / lean.rate,
               "two_workers_outputs_events_per_s": two, "two_workers_to_one_ratio": two / pipeline}
    for name, values in (("recovery_to_experience", latencies),
                         ("recovery_to_recallable", recallable)):
        if values:
            figures[f"{name}_p50_ms"] = statistics.median(values) * 1000
            figures[f"{name}_p99_ms"] = percentile(values, 0.99) * 1000
        figures[f"{name}_arrived"] = float(len(values))
    figures["latency_samples"] = float(samples)
    return figures


def report(f: dict[str, float]) -> None:
    faust, raw = f["faust_alone_events_per_s"], f["raw_consume_events_per_s"]
    print(f"episode events            {f['episode_events']:,.0f}")
    print(f"raw consume (confluent)   {raw:,.0f} events/s")
    print(f"faust alone, one worker   {faust:,.0f} events/s  (takes the events, does "
          f"nothing: {faust / raw:.1%} of raw consume)")
    print(f"faust alone, lean path    {f['lean_faust_alone_events_per_s']:,.0f} events/s  "
          "(the processors' own fetch loop and batch reader, doing nothing)")
    print(f"processors, one worker    {f['outputs_events_per_s']:,.0f} events/s until every "
          f"output was written: {f['outputs_to_faust_ratio']:.2f}x faust alone (target >= 0.7), "
          f"{f['outputs_to_lean_faust_ratio']:.2f}x the lean path alone")
    print(f"processors, two workers   {f['two_workers_outputs_events_per_s']:,.0f} events/s "
          f"until every output was written: {f['two_workers_to_one_ratio']:.2f}x one worker")
    for name, label in (("recovery_to_experience", "recovery -> experience  "),
                        ("recovery_to_recallable", "recovery -> recallable  ")):
        if f"{name}_p99_ms" in f:
            print(f"{label}  p50 {f[f'{name}_p50_ms']:.0f} ms  p99 {f[f'{name}_p99_ms']:.0f} ms "
                  f"({f[f'{name}_arrived']:.0f}/{f['latency_samples']:.0f} arrived; "
                  "target p99 < 1 s)")


if __name__ == "__main__":
    sys.exit(main())
