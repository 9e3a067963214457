"""The real pipeline for one backtest, on a fresh topic prefix and data dir, driven step by step.

The same parts as `kaizen serve`, wired the same way (`kaizen.service.host`): the stream processors
(a `kaizen process` child), the sink runner (ClickHouse, Qdrant, recall index), the behavior
manager (snapshot log, gate, monitor) and recall as the HTTP API serves it (`recall_from_index`).
Two differences make a replay exact and repeatable: the gate runs when the backtest says (after
the pipeline has drained), not on a timer, and every wait is for a fact: consumer-group lag at the
end offsets (`streams.lag`), the snapshot tail at the log's end.

If no broker answers at the configured bootstrap and the settings use the local launcher, the
broker is started here (in the settings' home, on its ports) and stopped at `close()`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kaizen.client.recorder import Recorder
from kaizen.errors import KaizenError
from kaizen.infra.cluster import KafkaCluster
from kaizen.infra.kafka import KafkaLauncher
from kaizen.readmodel.index import recall_from_index
from kaizen.schemas import model
from kaizen.service import stack
from kaizen.service.host import SinkRunner, Stores, make_behavior, pipeline_groups
from kaizen.service.snapshot_actions import Request, events_for
from kaizen.settings import Settings
from kaizen.streams.admin import create_topics
from kaizen.streams.lag import Lag, LagProbe, broker_answers, wait_drained
from kaizen.streams.snapshot_log import SnapshotTail
from kaizen.streams.topics import Topics

DRAIN_TIMEOUT_S = 600.0  # one window's work; far above what it takes, a stuck stage fails loudly


class PipelineError(KaizenError, RuntimeError):
    """The pipeline could not start, or a stage stopped making progress."""


class Pipeline:
    """Start with `Pipeline.start(settings)`, then `feed` / `drain` / `gate` / `recall`, `close`."""

    def __init__(self, settings: Settings, launcher: KafkaLauncher | KafkaCluster | None) -> None:
        self.settings, self.launcher = settings, launcher
        self.topics = Topics(settings.topic_prefix)
        self.recorders: dict[tuple[str, str], Recorder] = {}
        self.probe = LagProbe(settings.bootstrap)
        self.stores: Stores | None = None
        self.child: subprocess.Popen[bytes] | None = None
        self.tail: SnapshotTail | None = None
        self.runner: SinkRunner | None = None
        self.thread: threading.Thread | None = None

    @classmethod
    def start(cls, settings: Settings, run_id: str | None = None) -> Pipeline:
        """Broker (started if none answers), fresh topics and data dir, processors and sinks."""
        launcher = ensure_broker(settings)
        run_id = run_id or uuid.uuid4().hex[:10]
        fresh = settings.model_copy(update={
            "topic_prefix": f"{settings.topic_prefix}-bt-{run_id}",
            "home": settings.home / "backtest" / run_id,
            "kafka_bootstrap": settings.bootstrap,
        })
        pipeline = cls(fresh, launcher)
        try:
            pipeline._start()
        except BaseException:
            pipeline.close()
            raise
        return pipeline

    def _start(self) -> None:
        settings = self.settings
        settings.home.mkdir(parents=True, exist_ok=True)
        create_topics(settings.bootstrap, settings.topic_prefix, settings.topic_partitions)
        self.child = _start_processors(settings)
        self.stores = Stores.open(settings)
        behavior = make_behavior(settings, self.stores)
        self.behavior = behavior
        self.tail = SnapshotTail(settings.bootstrap, self.topics.snapshots,
                                 behavior.on_snapshot_event).start()
        self.runner = SinkRunner(settings, self.stores, behavior)
        self.thread = threading.Thread(target=self.runner.run, name="backtest-sinks", daemon=True)
        self.thread.start()

    # --- the steps --------------------------------------------------------------------------

    def recorder(self, tenant: str, agent: str) -> Recorder:
        """One Recorder per scope; events carry no snapshot (the logged runs had none)."""
        key = (tenant, agent)
        if key not in self.recorders:
            self.recorders[key] = Recorder(agent, tenant, settings=self.settings,
                                           follow_snapshots=False)
        return self.recorders[key]

    def drain(self) -> None:
        """Wait until every recorder delivered, and processors and sinks read all there is."""
        for recorder in self.recorders.values():
            if recorder.flush(DRAIN_TIMEOUT_S):
                raise PipelineError("episode events were not delivered to the broker")
        self._check_child()
        lags = wait_drained(self.probe, self._groups(), timeout=DRAIN_TIMEOUT_S)
        if lags:
            raise PipelineError(f"the pipeline did not drain within {DRAIN_TIMEOUT_S:.0f} s: "
                                + _describe(lags))

    def gate(self, approve: bool = False) -> list[model.SnapshotEvent]:
        """Run the gate once over what was learnt, and wait until the behavior has applied the
        snapshot events it published (the recall index then serves the new behavior). With
        `approve`, a candidate the policy leaves for a human is approved at once, as the CLI's
        `snapshots approve` would (actor `backtest --approve`)."""
        events = self.behavior.gate()
        if events:
            self._wait_tail()
        waiting = [e for e in events if e.action == "proposed" and e.verdict == "await_approval"]
        if approve and waiting:
            with self.behavior.lock:  # the log has the proposals now: approve them in order
                approvals = [x for e in waiting for x in events_for(self.behavior.log, Request(
                    "approve", e.tenant, e.agent, e.snapshot_id, actor="backtest --approve",
                    reason="approved by the backtest (--approve)"))]
            self.behavior.publish(approvals)
            self._wait_tail()
            events += approvals
        return events

    def recall(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        """What `POST /recall` would answer for `body`."""
        assert self.stores is not None
        return list(recall_from_index(self.stores.index, body)["lessons"])

    def experiences(self, tenant: str, agent: str) -> list[model.Experience]:
        """Every lesson of a scope the index knows (active or not), latest versions."""
        assert self.stores is not None
        return self.stores.index.experiences(tenant, agent)

    def active_ids(self, tenant: str, agent: str) -> set[str]:
        assert self.stores is not None
        return self.stores.index.active_ids(tenant, agent)

    def dead_letters(self) -> int:
        return sum(self.probe.end_offsets([self.topics.deadletter]).values())

    # --- internals --------------------------------------------------------------------------

    def _groups(self) -> dict[str, list[str]]:
        return pipeline_groups(self.settings)

    def _wait_tail(self) -> None:
        assert self.tail is not None
        end = sum(self.probe.end_offsets([self.topics.snapshots]).values())
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        waiter = threading.Event()
        while self.tail.position < end:
            if time.monotonic() > deadline:
                raise PipelineError("the snapshot tail did not reach the log's end")
            waiter.wait(0.01)

    def _check_child(self) -> None:
        if self.child is not None and self.child.poll() is not None:
            raise PipelineError(f"the processors exited (code {self.child.returncode}); see "
                                f"{self.settings.home / 'processors.log'}")

    def close(self) -> None:
        """Stop everything this pipeline started, the broker last (only if it started it)."""
        for recorder in self.recorders.values():
            recorder.close()
        if self.runner is not None and self.thread is not None:
            self.runner.stop.set()
            self.thread.join(60)
        if self.tail is not None:
            self.tail.stop()
        if self.child is not None:
            _stop(self.child)
        if self.stores is not None:
            self.stores.close()
        self.probe.close()
        # drop the clients now: librdkafka keeps dialling a stopped broker until they are freed
        self.recorders, self.runner, self.thread, self.tail = {}, None, None, None
        if self.launcher is not None:
            self.launcher.down()


def ensure_broker(settings: Settings) -> KafkaLauncher | KafkaCluster | None:
    """The launcher of a broker started for this backtest, or None if one already answered."""
    if broker_answers(settings.bootstrap):
        return None
    if not settings.uses_local_kafka:
        raise PipelineError(f"no Kafka answers at {settings.bootstrap} (KAIZEN_KAFKA_BOOTSTRAP)")
    launcher = stack.launcher(settings)
    print(f"backtest: starting the local broker at {settings.bootstrap} "
          f"({launcher.up()}); it is stopped at the end", file=sys.stderr)
    return launcher


def _start_processors(settings: Settings) -> subprocess.Popen[bytes]:
    """`kaizen process` on the backtest's prefix and home (faust wants its own process)."""
    env = dict(os.environ)
    env.update(KAIZEN_HOME=str(settings.home), KAIZEN_TOPIC_PREFIX=settings.topic_prefix,
               KAIZEN_KAFKA_BOOTSTRAP=settings.bootstrap, KAIZEN_LOG_FORMAT="json",
               KAIZEN_MIN_SUPPORT=str(settings.min_support), KAIZEN_LOG_LEVEL="warning",
               KAIZEN_TOPIC_PARTITIONS=str(settings.topic_partitions),
               KAIZEN_EPISODE_IDLE_SECONDS=str(settings.episode_idle_seconds))
    log = Path(settings.home) / "processors.log"
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "kaizen.cli", "process"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10)


def _describe(lags: Sequence[Lag]) -> str:
    parts: Iterable[str] = (f"{lag.group} behind by {lag.total:,} on "
                            f"{', '.join(sorted({t for t, _ in lag.behind}))}" for lag in lags)
    return "; ".join(parts)
