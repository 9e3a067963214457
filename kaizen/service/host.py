"""`kaizen serve`: the one process that owns the embedded stores.

It runs the sinks (Kafka -> ClickHouse, Qdrant, recall index), optionally the stream processors
(as a child `kaizen process`), and an HTTP API on 127.0.0.1 for recall, analytics and experiences.
Embedded chdb and Qdrant local mode allow one process per data dir, so everything that needs the
stores in embedded mode goes through this process.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import structlog

from kaizen.processors.config import CURATION_TOPIC, TOOL_RESULTS_TOPIC
from kaizen.processors.learning.evaluation import Evaluator
from kaizen.processors.learning.snapshots import Policy
from kaizen.schemas import model
from kaizen.schemas.codec import DecodeError
from kaizen.schemas.dead_letters import failure_reason
from kaizen.service.gate import Behavior
from kaizen.service.stores import Stores
from kaizen.service.supervision import GroupWatch, Health, ProcessorsChild, Status, supervise
from kaizen.settings import Settings
from kaizen.sinks.base import Sink
from kaizen.sinks.library_sink import LibrarySink
from kaizen.streams.admin import create_topics
from kaizen.streams.consumer import Consumed, EventConsumer
from kaizen.streams.lag import LagProbe
from kaizen.streams.personal import codec_with_keys
from kaizen.streams.replay import Bounds, TopicReader
from kaizen.streams.snapshot_log import SnapshotTail, publish
from kaizen.streams.topics import Topics

log = structlog.get_logger(__name__)

FLUSH_ATTEMPTS = 3  # failed flushes of a batch before it is written an event at a time


class SinkRunner:
    """Consumes every topic and feeds the sinks; commits only after a successful flush."""

    def __init__(self, settings: Settings, stores: Stores, behavior: Behavior | None = None
                 ) -> None:
        topics = Topics(settings.topic_prefix)
        kinds = {topics.episodes: "episodes", topics.signals: "signals",
                 topics.patterns: "patterns", topics.experiences: "experiences",
                 topics.snapshots: "snapshots"}
        self.group = sinks_group(settings)
        self.topics = list(kinds)
        # the processors read the episodes first and write their dead letters (one per record)
        self.consumer = EventConsumer(settings.bootstrap, self.group, kinds, topics.deadletter,
                                      "sinks", limits=settings.limits,
                                      letters_by_others=[topics.episodes],
                                      codec=codec_with_keys(settings.personal_keys),
                                      client=settings.kafka_client)
        self.library_sink = LibrarySink(stores.library, stores.index)
        self.library_sink.setup()
        self.stores = stores
        self.sinks: list[Sink[Any]] = [stores.clickhouse, self.library_sink]
        self.stop = threading.Event()
        self.consumed = 0
        self._rejected_at_flush = 0
        self._failures: dict[str, int] = {}  # sink -> flushes failed in a row
        self.behavior = behavior

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.step()
        finally:
            self.close()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.consumer.close()

    def step(self) -> None:
        # short waits: a buffered batch is flushed when due (library: 0.1 s), not a poll later
        for item in self.consumer.poll(timeout=0.05):
            for sink in self.sinks:
                sink.add(item.event, item.position)
            if self.behavior is not None and isinstance(item.event, model.Signal):
                self._to_gate(item)
            self.consumed += 1
        if any(sink.due() for sink in self.sinks) or self._only_rejected():
            self.flush()

    def _to_gate(self, item: Consumed) -> None:
        """The gate's folds get the signal; one that raises on it (3 tries) is dead-lettered
        with the traceback, and the sinks go on: raising here would drop the rest of the
        polled batch from the sinks' buffers."""
        assert self.behavior is not None and isinstance(item.event, model.Signal)
        for attempt in range(3):
            try:
                self.behavior.on_signal(item.event)
                return
            except Exception as error:
                if attempt == 2:
                    log.exception("the gate cannot take a signal; dead-lettered",
                                  position=item.position)
                    self.consumer.reject(item, "gate", error, failure_reason("gate", 3, error))

    def _only_rejected(self) -> bool:
        """Rejected records alone since the last flush: commit past them too, or the lag
        would never reach zero (and they would be read again at every start)."""
        return self.consumer.rejected != self._rejected_at_flush \
            and not any(sink.pending() for sink in self.sinks)

    def flush(self) -> None:
        """Flush every sink, then commit what all of them hold durably, and past the records
        rejected meanwhile (everything polled before them is written now). A sink whose flush
        has failed `FLUSH_ATTEMPTS` times in a row writes its batch an event at a time, and
        the events it cannot write are dead-lettered with the traceback."""
        with self.stores.lock:
            results = [self._flush(sink) for sink in self.sinks]
        offsets = self.consumer.passed()
        self._rejected_at_flush = self.consumer.rejected
        for result in results:
            for key, offset in result.items():
                offsets[key] = max(offsets.get(key, 0), offset)
        self.consumer.commit(offsets)

    def _flush(self, sink: Sink[Any]) -> dict[tuple[str, int], int]:
        name = type(sink).__name__
        if self._failures.get(name, 0) < FLUSH_ATTEMPTS:
            try:
                result = sink.flush()
            except Exception:
                self._failures[name] = self._failures.get(name, 0) + 1
                raise
        else:
            result = sink.flush_isolating(partial(self._poisoned, name))
        self._failures[name] = 0
        return result

    def _poisoned(self, sink: str, event: model.Event, position: tuple[str, int, int],
                  error: Exception) -> None:
        log.error("a sink cannot write an event; dead-lettered", sink=sink, position=position)
        self.consumer.reject(Consumed(position, event), f"sinks/{sink}", error,
                             failure_reason(f"sinks/{sink}", FLUSH_ATTEMPTS, error))


def make_behavior(settings: Settings, stores: Stores, policy: Policy | None = None,
                  evaluators: Sequence[Evaluator] | None = None) -> Behavior:
    """The gate and monitor; `policy` / `evaluators` default to the settings' policy and the
    counterfactual evaluator (add e.g. a `ReplayEvaluator` around your agent, and require it)."""
    topic = Topics(settings.topic_prefix).snapshots
    tools = frozenset(t.strip() for t in settings.high_risk_tools.split(",") if t.strip())
    policy = policy or Policy(max_auto_change=settings.max_auto_change,
                              in_steps=settings.gate_in_steps, high_risk_tools=tools)
    client = settings.kafka_client
    return Behavior(stores.index,
                    lambda events: publish(settings.bootstrap, topic, events, client=client),
                    policy=policy, evaluators=evaluators)


def processors_env(settings: Settings) -> dict[str, str]:
    """What the processors child's environment changes: logged in as the processors' Kafka
    user when one is configured (with ACLs the service's user may not write what they
    derive, nor the processors the snapshot log)."""
    if not settings.kafka_processor_username:
        return {}
    password = settings.kafka_processor_password
    return {"KAIZEN_KAFKA_USERNAME": settings.kafka_processor_username,
            "KAIZEN_KAFKA_PASSWORD": password.get_secret_value() if password else ""}


def sinks_group(settings: Settings) -> str:
    return f"{settings.topic_prefix}-sinks-v1"


def run_gate(behavior: Behavior, tail: SnapshotTail, every: float, stop: threading.Event,
             status: Status | None = None) -> None:
    """Look for candidates every `every` seconds, once the snapshot log has been read; a gate
    run that raises is reported and retried with a backoff (`kaizen/service/supervision.py`)."""
    tail.wait_caught_up(60)

    def once() -> None:
        if not stop.wait(every):
            behavior.gate()

    supervise(status or Status("gate"), once, stop)


def restore_behavior(settings: Settings, behavior: Behavior, tail: SnapshotTail) -> int:
    """Replay the signals of the last `behavior_replay_hours` into the behavior manager, after
    the snapshot log: the monitor, the per-lesson effects and the edge cases live in memory, and
    the log has everything they saw. Both folds skip signals they have seen, so the overlap with
    what the sinks then deliver again changes nothing. Returns the number of signals replayed."""
    if not tail.wait_caught_up(60):
        log.warning("snapshot log not caught up after 60 s; restoring the behavior anyway")
    since = int((time.time() - settings.behavior_replay_hours * 3600) * 1000)
    reader = TopicReader(settings.bootstrap, Topics(settings.topic_prefix).signals,
                         Bounds(from_time_ms=since), client=settings.kafka_client)
    log.info("restoring behavior from the signals log", signals=reader.total,
             hours=settings.behavior_replay_hours)
    codec, replayed = codec_with_keys(settings.personal_keys), 0
    for record in (r for batch in reader.raw_batches() for r in batch):
        try:
            event = codec.decode(record.value)
        except DecodeError:
            continue  # the sinks dead-letter it when they reach it
        if isinstance(event, model.Signal):
            behavior.on_signal(event)
            replayed += 1
    return replayed


def processors_topics(settings: Settings) -> list[str]:
    """What the processors' group reads: the episodes and their own internal hops."""
    prefix = settings.topic_prefix
    return [Topics(prefix).episodes, f"{prefix}.{TOOL_RESULTS_TOPIC}", f"{prefix}.{CURATION_TOPIC}"]


def pipeline_groups(settings: Settings) -> dict[str, list[str]]:
    """The processors' and the sinks' consumer groups and the topics each reads. Both commit
    after their outputs are written, so once every group has committed the end of its topics
    (`streams.lag.wait_drained`), nothing is in flight."""
    topics = Topics(settings.topic_prefix)
    return {f"{settings.topic_prefix}-processors": processors_topics(settings),
            sinks_group(settings): [topics.episodes, topics.signals, topics.patterns,
                                    topics.experiences, topics.snapshots]}


def make_health(settings: Settings, runner: SinkRunner, probe: LagProbe) -> Health:
    """/health: the sinks' and processors' groups (the processors' internal topics included)."""
    groups = {"sinks": GroupWatch(runner.group, runner.topics),
              "processors": GroupWatch(f"{settings.topic_prefix}-processors",
                                       processors_topics(settings))}
    return Health(probe, groups, stall_seconds=settings.health_stall_seconds,
                  max_lag=settings.health_max_lag)


def serve(settings: Settings, *, processors: bool = True, ready: threading.Event | None = None,
          stop: threading.Event | None = None, policy: Policy | None = None,
          evaluators: Sequence[Evaluator] | None = None) -> int:
    """Run until interrupted, terminated or `stop` is set. `policy` and `evaluators` plug into
    the gate. SIGTERM ends it like Ctrl-C, so the processors child is always stopped with it."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    from kaizen.service.http_api import auth_policy, make_server

    auth_policy(settings)  # no tokens where they are required: refuse before starting anything
    create_topics(settings.bootstrap, settings.topic_prefix, settings.topic_partitions,
                  client=settings.kafka_client, replication=settings.topic_replication)
    stores = Stores.open(settings)
    behavior = make_behavior(settings, stores, policy, evaluators)
    tail = SnapshotTail(settings.bootstrap, Topics(settings.topic_prefix).snapshots,
                        behavior.on_snapshot_event, client=settings.kafka_client).start()
    restore_behavior(settings, behavior, tail)
    runner = SinkRunner(settings, stores, behavior)
    probe = LagProbe(settings.bootstrap, settings.kafka_client)
    health = make_health(settings, runner, probe)
    health.extra["experiences"] = lambda: len(stores.index)
    health.checks.append(lambda: [f"gate failing for {scope}: {why}"
                                  for scope, why in dict(behavior.failing).items()])
    child = ProcessorsChild(health.part("processors"),
                            env_overrides=processors_env(settings)) if processors else None
    if child is not None:
        child.start()
        health.extra["processors"] = lambda: {"pid": child.pid, **child.status.as_json()}
    from kaizen.integrations.otlp_ingest import OtlpReceiver

    otlp = OtlpReceiver.from_settings(settings).start()
    server = make_server(settings.http_host, settings.http_port, stores, settings, behavior,
                         health=health.report, otlp=otlp)
    gate_stop = threading.Event()
    threads = [threading.Thread(target=supervise, name="kaizen-sinks", daemon=True,
                                args=(health.part("sinks"), runner.step, runner.stop)),
               threading.Thread(target=server.serve_forever, name="kaizen-http", daemon=True),
               threading.Thread(target=run_gate, name="kaizen-gate", daemon=True,
                                args=(behavior, tail, settings.gate_seconds, gate_stop,
                                      health.part("gate")))]
    for thread in threads:
        thread.start()
    log.info("kaizen serving", http=f"http://{settings.http_host}:{server.server_port}",
             processors=bool(child), clickhouse=settings.clickhouse_url or "embedded",
             qdrant=settings.qdrant_url or "embedded")
    if ready is not None:
        ready.set()
    try:
        while not stop.wait(0.2):
            if child is not None:
                child.check()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        otlp.close()
        gate_stop.set()
        tail.stop()
        runner.stop.set()
        threads[0].join(30)
        runner.close()
        if child is not None:
            child.stop()
        probe.close()
        stores.close()
    return 0

