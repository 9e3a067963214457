"""Recovery emitted -> lesson recallable: through the processors, the service's sinks and the
recall index (not only to the experiences topic). Used by `bench/process.py`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from kaizen.client.embedded import open_library
from kaizen.readmodel.index import IndexEntry, RecallIndex
from kaizen.schemas import model
from kaizen.service.host import SinkRunner
from kaizen.service.stores import Stores, open_clickhouse
from kaizen.settings import load_settings
from kaizen.streams.recorder import Recorder
from kaizen.streams.topics import Topics


class StampedIndex(RecallIndex):
    """The service's recall index, noting when each episode's lesson became recallable."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.recallable_at: dict[str, float] = {}
        self.watching: set[str] = set()

    def load(self, entries: Iterable[IndexEntry | model.Experience]) -> None:
        entries = list(entries)
        super().load(entries)
        now = time.perf_counter()
        for entry in entries:
            lesson = entry.experience if isinstance(entry, IndexEntry) else entry
            if lesson.experience_id not in self.active_ids(lesson.tenant, lesson.agent):
                continue
            for evidence in lesson.evidence:
                if evidence.episode_id in self.watching:
                    self.recallable_at.setdefault(evidence.episode_id, now)


def _caught_up(bootstrap: str, group: str, topics: list[str], timeout: float = 600.0) -> None:
    """Until the sink runner's committed offsets reach the end of every topic it reads (a fact:
    it has written the backlog), or `timeout`."""
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        parts = [TopicPartition(t, p) for t in topics
                 for p in probe.list_topics(t, timeout=10).topics[t].partitions]
        ends = [probe.get_watermark_offsets(tp, timeout=10)[1] for tp in parts]
        done = [max(tp.offset, 0) for tp in probe.committed(parts, timeout=10)]
        if all(d >= e for d, e in zip(done, ends, strict=True)):
            break
        time.sleep(0.5)
    probe.close()


def timed_recovery(recorder: Recorder, lesson: str, sent: dict[str, float],
                   watch: Callable[[str], None] = lambda episode_id: None) -> str:
    """Two recoveries that make a new lesson (a tool of its own, two tasks: `min_support` and
    `min_tasks` are 2), the second timed from its successful result: an existing lesson's support
    is a sketch that a further episode often leaves unchanged, so it would get no new version.
    Returns the timed episode's id; `sent` holds when its recovery was emitted."""
    tool = f"orders.get.{lesson}"
    for attempt in ("first", "timed"):
        now = recorder.now_ms() + 20_000_000  # later than the backlog in event time
        with recorder.episode(f"{lesson} order ({attempt})", user="u1", occurred_at=now,
                              task_id=f"{lesson}-{attempt}") as ep:
            watch(ep.episode_id)
            ep.tool_call(tool, {"order": 1}, occurred_at=now + 1)
            ep.tool_result(tool, ok=False, error="400 unknown field 'order'", occurred_at=now + 2)
            ep.tool_call(tool, {"order_id": 1}, occurred_at=now + 3)
            if attempt == "timed":
                sent[ep.episode_id] = time.perf_counter()
            ep.tool_result(tool, ok=True, occurred_at=now + 4)
            ep.end(success=True, occurred_at=now + 5)
        recorder.flush(5)
    return ep.episode_id


def recovery_to_recallable(bootstrap: str, prefix: str, home: Path, samples: int
                           ) -> list[float]:
    """Start the service's sink runner (it reads the backlog first), then emit recoveries one by
    one and time each until the recall index holds a lesson citing its episode."""
    settings = load_settings(kafka_bootstrap=bootstrap, topic_prefix=prefix, home=home / "svc")
    library = open_library(settings)
    index = StampedIndex(library.embedder)
    stores = Stores(open_clickhouse(settings), library, index)
    runner = SinkRunner(settings, stores)
    thread = threading.Thread(target=runner.run, name="bench-sinks", daemon=True)
    thread.start()
    topics = Topics(prefix)
    _caught_up(bootstrap, f"{prefix}-sinks-v1", [topics.episodes, topics.signals, topics.patterns,
                                                 topics.experiences, topics.snapshots])
    sent: dict[str, float] = {}
    with Recorder("bench-bot", "bench", bootstrap=bootstrap, topic=topics.episodes,
                  spool_dir=home / "spool" / "recallable") as recorder:
        for i in range(samples):
            episode_id = timed_recovery(recorder, f"recallable-{i}", sent, index.watching.add)
            deadline = time.monotonic() + 30
            while episode_id not in index.recallable_at and time.monotonic() < deadline:
                time.sleep(0.005)
    runner.stop.set()
    thread.join(30)
    stores.close()
    return sorted(index.recallable_at[e] - sent[e] for e in sent if e in index.recallable_at)
