"""What `Recorder.emit()` costs an agent, next to the floor of one event, on a real broker.

Prints, from one run (so the ratios mean something on a noisy machine), per path: p50 / p99 / max
of one call in microseconds and the rate of a loop of calls in events/s:
- `raw produce`: confluent-kafka `produce` of the same event's pre-encoded bytes (the ceiling);
- `floor`: what one event costs at least: a uuid4, fastavro encode of the same event, `produce`;
- `recorder`: `Recorder.emit()` of the same event with a fresh event id, broker up; its rate runs
  until the Recorder's sender thread has handed every event to the producer (or the spool);
- `episode api`: `ep.tool_call(...)` through an `Episode` handle (builds the event, then emits);
- `broker down`: `Recorder.emit()` while the broker is unreachable (the spool path);
- `queue full`: `Recorder.emit()` with a producer queue of 100 records (the refused records wait
  in the Recorder's in-memory backlog; past `MAX_BACKLOG_BYTES` they go to the spool).
Every path runs `--rounds` times, interleaved; the figures are the medians over the rounds.

Run: `python bench/emit.py [--events 50000] [--rounds 3] [--json PATH]` after `make setup`.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import fastavro
from confluent_kafka import Producer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: bench importable

from bench.common import broker, free_port, percentile, write_json
from kaizen.logs import configure_logging
from kaizen.schemas import model
from kaizen.schemas.catalog import latest
from kaizen.schemas.codec import Codec, _full_name, single_object_header
from kaizen.schemas.records import to_record
from kaizen.streams.admin import create_topics
from kaizen.streams.clients import producer_config
from kaizen.streams.recorder import Recorder
from kaizen.streams.topics import Topics

TENANT, AGENT = "bench", "bench-bot"


@dataclass
class PathFigures:
    """One path's figures from one round."""

    p50_us: float
    p99_us: float
    max_us: float
    rate: float


def _event(seq: int) -> model.EpisodeEvent:
    return model.EpisodeEvent(
        event_id=str(uuid.uuid4()), occurred_at=1_700_000_000_000 + seq, tenant=TENANT,
        agent=AGENT, episode_id="0f6b7c52-3c1e-4f7e-9a55-6b9d1f0e2a10", seq=seq,
        payload=model.ToolCall(f"call-{seq}", "orders.get", '{"order_id": 42}'), user="u1",
        snapshot_id="snapshot-0123456789abcdef")


def _measure(call: Callable[[int], None], events: int,
             hand_over: Callable[[], object] | None = None) -> PathFigures:
    """Per-call latencies from one timed loop, the rate from a second, untimed loop. A Recorder
    path's rate runs until every event is handed to the producer or the spool (`hand_over`):
    `emit()` only queues, and its sender thread encodes and produces meanwhile."""
    clock = time.perf_counter_ns
    samples: list[float] = []
    for i in range(events):
        started = clock()
        call(i)
        samples.append(clock() - started)
    if hand_over is not None:
        hand_over()
    started = clock()
    for i in range(events):
        call(events + i)
    if hand_over is not None:
        hand_over()
    rate = events / ((clock() - started) / 1e9)
    samples.sort()
    return PathFigures(percentile(samples, 0.5) / 1e3, percentile(samples, 0.99) / 1e3,
                       samples[-1] / 1e3, rate)


def _producing(producer: Producer, topic: str, key: bytes) -> Callable[[bytes], None]:
    """produce, serving delivery reports now and then as any long-running producer must."""
    count = [0]

    def produce(value: bytes) -> None:
        producer.produce(topic, value, key)
        count[0] += 1
        if count[0] % 1000 == 0:
            producer.poll(0)
    return produce


def _raw_and_floor(bootstrap: str, topic: str) -> tuple[Callable[[int], None],
                                                       Callable[[int], None], Producer]:
    producer = Producer(producer_config(bootstrap))
    key = _event(0).episode_id.encode()
    produce = _producing(producer, topic, key)
    encoded = Codec().encode(_event(0))
    version = latest("episode_event")
    header = single_object_header(version)
    record = to_record(_event(0), _full_name)

    def raw(i: int) -> None:
        produce(encoded)

    def floor(i: int) -> None:
        record["event_id"] = str(uuid.uuid4())
        body = io.BytesIO()
        body.write(header)
        fastavro.schemaless_writer(body, version.parsed, record)
        produce(body.getvalue())
    return raw, floor, producer


def _recorder_paths(recorder: Recorder) -> tuple[Callable[[int], None], Callable[[int], None]]:
    template = _event(0)
    episode = recorder.episode("bench task", user="u1", episode_id=template.episode_id,
                               occurred_at=template.occurred_at)

    def emit(i: int) -> None:
        recorder.emit(replace(template, event_id=str(uuid.uuid4()), seq=i))

    def episode_api(i: int) -> None:
        episode.tool_call("orders.get", {"order_id": i}, occurred_at=1_700_000_000_000)
    return emit, episode_api


def _wait_down(recorder: Recorder, timeout: float = 30.0) -> None:
    """Until the Recorder knows the broker is unreachable (its error callback said so)."""
    deadline = time.monotonic() + timeout
    recorder.emit(_event(0))  # something to send, so librdkafka connects and fails
    while not recorder._broker_down and time.monotonic() < deadline:  # noqa: SLF001
        recorder._producer.poll(0.05)  # noqa: SLF001
    if not recorder._broker_down:  # noqa: SLF001
        raise RuntimeError("the Recorder never noticed the broker was down")


def _settle(producer: Producer, *recorders: Recorder) -> None:
    """Deliver what the last path left, so the next path's loop does not pay for it: the queue
    full path leaves ~2 x events records in its spool, whose drain (a produce, a delivery callback
    and a SQLite delete each, on the pump thread) ran during the next round's raw, floor and
    recorder loops when only `up` was flushed between paths."""
    producer.flush(60)
    for recorder in recorders:
        if recorder.flush(300):
            raise RuntimeError("a Recorder did not deliver its records between two paths")


def run(bootstrap: str, home: Path, events: int, rounds: int) -> dict[str, list[PathFigures]]:
    topic = Topics(f"emit{uuid.uuid4().hex[:6]}").episodes
    create_topics(bootstrap, topic.rsplit(".", 1)[0], 3)
    raw, floor, producer = _raw_and_floor(bootstrap, topic)
    up = Recorder(AGENT, TENANT, bootstrap=bootstrap, topic=topic, spool_dir=home / "up")
    # log_level 2: librdkafka's connect-failure line (level 3) to stderr ~18 times a second for
    # the whole run; the Recorder learns the broker is down from its error callback, not the log
    down = Recorder(AGENT, TENANT, bootstrap=f"127.0.0.1:{free_port()}", topic=topic,
                    spool_dir=home / "down",
                    producer_overrides={"message.timeout.ms": 0, "log_level": 2})
    full = Recorder(AGENT, TENANT, bootstrap=bootstrap, topic=topic, spool_dir=home / "full",
                    producer_overrides={"queue.buffering.max.messages": 100})
    _wait_down(down)
    emit, episode_api = _recorder_paths(up)
    emit_down, _ = _recorder_paths(down)
    emit_full, _ = _recorder_paths(full)
    paths: dict[str, Callable[[int], None]] = {
        "raw produce": raw, "floor": floor, "recorder": emit, "episode api": episode_api,
        "broker down": emit_down, "queue full": emit_full}
    owners = {"recorder": up, "episode api": up, "broker down": down, "queue full": full}
    figures: dict[str, list[PathFigures]] = {name: [] for name in paths}
    for _ in range(rounds):
        for name, call in paths.items():
            owner = owners.get(name)
            # flush(0): send what is queued, wait for no acknowledgement
            figures[name].append(_measure(call, events, partial(owner.flush, 0) if owner else None))
            _settle(producer, up, full)
    for recorder in (up, full):
        recorder.close()
    down.close(timeout=0.5)
    return figures


def _median(values: list[PathFigures]) -> PathFigures:
    return PathFigures(*(statistics.median(getattr(v, f) for v in values)
                         for f in ("p50_us", "p99_us", "max_us", "rate")))


def report(figures: dict[str, list[PathFigures]]) -> dict[str, float]:
    med = {name: _median(values) for name, values in figures.items()}
    floor, raw = med["floor"].rate, med["raw produce"].rate
    print(f"{'path':<13} {'p50 us':>8} {'p99 us':>8} {'max us':>9} {'events/s':>11} "
          f"{'x floor':>8}")
    for name, f in med.items():
        print(f"{name:<13} {f.p50_us:8.1f} {f.p99_us:8.1f} {f.max_us:9.0f} {f.rate:11,.0f} "
              f"{f.rate / floor:8.2f}")
    print("targets: p99 < 50 us on every path; recorder >= 0.5x the floor's rate")
    names = {"recorder": "emit", "episode api": "emit_episode_api", "broker down": "emit_down",
             "queue full": "emit_queue_full", "floor": "floor", "raw produce": "raw_produce"}
    out: dict[str, float] = {}
    for path, stem in names.items():
        out.update({f"{stem}_p50_us": med[path].p50_us, f"{stem}_p99_us": med[path].p99_us,
                    f"{stem}_max_us": med[path].max_us, f"{stem}_events_per_s": med[path].rate})
    out["emit_p99_us"] = max(med[p].p99_us for p in ("recorder", "broker down", "queue full"))
    out["emit_up_p99_us"] = med["recorder"].p99_us
    out["emit_to_floor_ratio"] = med["recorder"].rate / floor
    out["emit_to_raw_ratio"] = med["recorder"].rate / raw
    out["emit_episode_api_to_floor_ratio"] = med["episode api"].rate / floor
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description="Recorder.emit() next to the floor of one event")
    parser.add_argument("--events", type=int, default=50_000, help="calls per path and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    configure_logging("console", "error")
    with tempfile.TemporaryDirectory(prefix="kaizen-bench-") as tmp, broker(Path(tmp)) as boot:
        figures = run(boot, Path(tmp), args.events, args.rounds)
    out = report(figures)
    print(f"emit p99 (worst of recorder, broker down, queue full) {out['emit_p99_us']:.1f} us; "
          f"recorder {out['emit_to_floor_ratio']:.2f}x the floor, "
          f"{out['emit_to_raw_ratio']:.2f}x raw produce")
    if args.json:
        write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
