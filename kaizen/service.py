"""`kaizen serve`: the one process that owns the embedded stores.

It runs the sinks (Kafka -> ClickHouse, Qdrant, recall index), optionally the stream processors
(as a child `kaizen process`), and an HTTP API on 127.0.0.1 for recall, analytics and experiences.
Embedded chdb and Qdrant local mode allow one process per data dir, so everything that needs the
stores in embedded mode goes through this process.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from kaizen.behavior import Behavior
from kaizen.processors.learning.evaluation import Evaluator
from kaizen.processors.learning.signatures import error_signature
from kaizen.processors.learning.snapshots import Policy
from kaizen.schemas import model
from kaizen.schemas.codec import Codec, DecodeError
from kaizen.settings import Settings
from kaizen.sinks.base import Sink
from kaizen.sinks.clickhouse import ClickHouseSink
from kaizen.sinks.library_sink import LibrarySink
from kaizen.sinks.qdrant_library import ExperienceLibrary
from kaizen.sinks.recall_index import RecallIndex
from kaizen.streams.admin import create_topics
from kaizen.streams.consumer import EventConsumer
from kaizen.streams.replay import Bounds, TopicReader
from kaizen.streams.snapshot_log import SnapshotTail, publish
from kaizen.streams.topics import Topics

log = structlog.get_logger(__name__)


def open_library(settings: Settings) -> ExperienceLibrary:
    if settings.qdrant_url:
        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return ExperienceLibrary.open(url=settings.qdrant_url, api_key=key)
    settings.home.mkdir(parents=True, exist_ok=True)
    return ExperienceLibrary.open(path=settings.qdrant_path)


def open_clickhouse(settings: Settings) -> ClickHouseSink:
    if not settings.clickhouse_url:
        (settings.home / "clickhouse").mkdir(parents=True, exist_ok=True)
    sink = ClickHouseSink(settings.clickhouse_dsn, signature_of=error_signature)
    sink.setup()
    return sink


@dataclass
class Stores:
    """The stores of one service; `lock` serializes use of the ClickHouse client across threads."""

    clickhouse: ClickHouseSink
    library: ExperienceLibrary
    index: RecallIndex
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, settings: Settings) -> Stores:
        library = open_library(settings)
        return cls(open_clickhouse(settings), library, RecallIndex(library.embedder,
                                                                 min_score=settings.recall_min_score))

    def close(self) -> None:
        self.clickhouse.close()
        self.library.close()


class SinkRunner:
    """Consumes every topic and feeds the sinks; commits only after a successful flush."""

    def __init__(self, settings: Settings, stores: Stores, behavior: Behavior | None = None
                 ) -> None:
        topics = Topics(settings.topic_prefix)
        self.consumer = EventConsumer(
            settings.bootstrap, f"{settings.topic_prefix}-sinks-v1",
            [topics.episodes, topics.signals, topics.patterns, topics.experiences,
             topics.snapshots], topics.deadletter, "sinks",
        )
        self.library_sink = LibrarySink(stores.library, stores.index)
        self.library_sink.setup()
        self.stores = stores
        self.sinks: list[Sink[Any]] = [stores.clickhouse, self.library_sink]
        self.stop = threading.Event()
        self.consumed = 0
        self.behavior = behavior

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.step()
        finally:
            self.flush()
            self.consumer.close()

    def step(self) -> None:
        for item in self.consumer.poll():
            for sink in self.sinks:
                sink.add(item.event, item.position)
            if self.behavior is not None and isinstance(item.event, model.Signal):
                self.behavior.on_signal(item.event)
            self.consumed += 1
        if any(sink.due() for sink in self.sinks):
            self.flush()

    def flush(self) -> None:
        """Flush every sink, then commit what all of them hold durably."""
        with self.stores.lock:
            results = [sink.flush() for sink in self.sinks]
        offsets: dict[tuple[str, int], int] = {}
        for result in results:
            offsets.update(result)
        self.consumer.commit(offsets)


def make_behavior(settings: Settings, stores: Stores, policy: Policy | None = None,
                  evaluators: Sequence[Evaluator] | None = None) -> Behavior:
    """The gate and monitor; `policy` / `evaluators` default to the settings' policy and the
    counterfactual evaluator (add e.g. a `ReplayEvaluator` around your agent, and require it)."""
    topic = Topics(settings.topic_prefix).snapshots
    tools = frozenset(t.strip() for t in settings.high_risk_tools.split(",") if t.strip())
    policy = policy or Policy(max_auto_change=settings.max_auto_change, high_risk_tools=tools)
    return Behavior(stores.index, lambda events: publish(settings.bootstrap, topic, events),
                    policy=policy, evaluators=evaluators)


def run_gate(behavior: Behavior, tail: SnapshotTail, every: float, stop: threading.Event) -> None:
    """Look for candidates every `every` seconds, once the snapshot log has been read."""
    tail.wait_caught_up(60)
    while not stop.wait(every):
        behavior.gate()


def restore_behavior(settings: Settings, behavior: Behavior, tail: SnapshotTail) -> int:
    """Replay the signals of the last `behavior_replay_hours` into the behavior manager, after
    the snapshot log: the monitor, the per-lesson effects and the edge cases live in memory, and
    the log has everything they saw. Both folds skip signals they have seen, so the overlap with
    what the sinks then deliver again changes nothing. Returns the number of signals replayed."""
    if not tail.wait_caught_up(60):
        log.warning("snapshot log not caught up after 60 s; restoring the behavior anyway")
    since = int((time.time() - settings.behavior_replay_hours * 3600) * 1000)
    reader = TopicReader(settings.bootstrap, Topics(settings.topic_prefix).signals,
                         Bounds(from_time_ms=since))
    log.info("restoring behavior from the signals log", signals=reader.total,
             hours=settings.behavior_replay_hours)
    codec, replayed = Codec(), 0
    for record in (r for batch in reader.raw_batches() for r in batch):
        try:
            event = codec.decode(record.value)
        except DecodeError:
            continue  # the sinks dead-letter it when they reach it
        if isinstance(event, model.Signal):
            behavior.on_signal(event)
            replayed += 1
    return replayed


def start_processors(settings: Settings) -> subprocess.Popen[bytes]:
    """The stream processors in a child process (faust wants its own event loop)."""
    return subprocess.Popen([sys.executable, "-m", "kaizen.cli", "process"])


def serve(settings: Settings, *, processors: bool = True, ready: threading.Event | None = None,
          stop: threading.Event | None = None, policy: Policy | None = None,
          evaluators: Sequence[Evaluator] | None = None) -> int:
    """Run until interrupted, terminated or `stop` is set. `policy` and `evaluators` plug into
    the gate. SIGTERM ends it like Ctrl-C, so the processors child is always stopped with it."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    from kaizen.http_api import make_server

    create_topics(settings.bootstrap, settings.topic_prefix, settings.topic_partitions)
    stores = Stores.open(settings)
    behavior = make_behavior(settings, stores, policy, evaluators)
    tail = SnapshotTail(settings.bootstrap, Topics(settings.topic_prefix).snapshots,
                        behavior.on_snapshot_event).start()
    restore_behavior(settings, behavior, tail)
    runner = SinkRunner(settings, stores, behavior)
    child = start_processors(settings) if processors else None
    server = make_server(settings.http_host, settings.http_port, stores, settings, behavior)
    gate_stop = threading.Event()
    threads = [threading.Thread(target=runner.run, name="kaizen-sinks", daemon=True),
               threading.Thread(target=server.serve_forever, name="kaizen-http", daemon=True),
               threading.Thread(target=run_gate, name="kaizen-gate", daemon=True,
                                args=(behavior, tail, settings.gate_seconds, gate_stop))]
    for thread in threads:
        thread.start()
    log.info("kaizen serving", http=f"http://{settings.http_host}:{server.server_port}",
             processors=bool(child), clickhouse=settings.clickhouse_url or "embedded",
             qdrant=settings.qdrant_url or "embedded")
    if ready is not None:
        ready.set()
    try:
        while not stop.is_set():
            time.sleep(0.2)
            if child is not None and child.poll() is not None:
                log.error("processors exited; restarting", code=child.returncode)
                child = start_processors(settings)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        gate_stop.set()
        tail.stop()
        runner.stop.set()
        threads[0].join(30)
        if child is not None:
            child.terminate()
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:  # a worker stuck on an unreachable broker
                child.kill()
                child.wait(10)
        stores.close()
    return 0

