"""`kaizen rebuild --to-offset N`: the stores as they were when the snapshot log held N events.

Replays the snapshot log up to offset N (exclusive) and every other topic up to the time of the
last snapshot event included, into FRESH stores (embedded ClickHouse and Qdrant under a new dir),
and prints the behavior digest, which equals the digest the live service had at that offset
(`GET /snapshots/digest`). The log is the source of truth; the stores are views of it.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

from kaizen.settings import Settings
from kaizen.snapshot_actions import behavior_digest
from processors.learning import snapshots
from processors.learning.signatures import error_signature
from processors.learning.snapshots import SnapshotLog
from schemas import model
from sinks.clickhouse import ClickHouseSink
from sinks.library_sink import LibrarySink
from sinks.qdrant_library import ExperienceLibrary
from sinks.recall_index import RecallIndex
from streams.replay import Bounds, TopicReader
from streams.topics import Topics


@dataclass(frozen=True)
class RebuildReport:
    to_offset: int
    as_of_ms: int
    events: int
    seconds: float
    digest: str
    active: dict[str, str]

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def _snapshot_log(settings: Settings, to_offset: int) -> tuple[SnapshotLog, int]:
    state, last_ms = SnapshotLog(), 0
    topic = Topics(settings.topic_prefix).snapshots
    for record in TopicReader(settings.bootstrap, topic, Bounds(to_offset=to_offset)).records():
        if isinstance(record.event, model.SnapshotEvent):
            state = snapshots.apply(state, record.event, record.offset)
            last_ms = max(last_ms, record.timestamp_ms)
    return state, last_ms


def rebuild(settings: Settings, to_offset: int, target: Path) -> RebuildReport:
    started = time.perf_counter()
    state, as_of_ms = _snapshot_log(settings, to_offset)
    target.mkdir(parents=True, exist_ok=True)
    (target / "clickhouse").mkdir(exist_ok=True)
    clickhouse = ClickHouseSink(f"chdb://{(target / 'clickhouse').resolve()}",
                                signature_of=error_signature, max_batch=20_000)
    clickhouse.setup()
    library = ExperienceLibrary.open(path=target / "qdrant")
    library_sink = LibrarySink(library, RecallIndex(library.embedder))
    topics = Topics(settings.topic_prefix)
    events = 0
    try:
        for topic in (topics.episodes, topics.signals, topics.patterns, topics.experiences,
                      topics.snapshots):
            bounds = (Bounds(to_offset=to_offset) if topic == topics.snapshots
                      else Bounds(to_time_ms=as_of_ms + 1))
            for record in TopicReader(settings.bootstrap, topic, bounds).records():
                if record.event is None:
                    continue
                position = (record.topic, record.partition, record.offset)
                clickhouse.add(record.event, position)
                library_sink.add(record.event, position)
                events += 1
                if clickhouse.due():
                    clickhouse.flush()
        clickhouse.flush()
        library_sink.flush()
    finally:
        clickhouse.close()
        library.close()
    active = state.as_of_offset(to_offset)
    return RebuildReport(to_offset, as_of_ms, events, time.perf_counter() - started,
                         behavior_digest(state, to_offset), active)


def run(args: argparse.Namespace, settings: Settings) -> int:
    target = Path(args.into) if args.into else settings.home / f"rebuild-{args.to_offset}"
    report = rebuild(settings, args.to_offset, target)
    print(f"rebuilt {report.events:,} events into {target} in {report.seconds:.1f}s "
          f"({report.rate:,.0f} events/s)")
    for scope, sid in sorted(report.active.items()):
        print(f"active {scope}: {sid}")
    print(f"digest {report.digest}")
    return 0


def add_parser(sub: object) -> None:
    parser = sub.add_parser(  # type: ignore[attr-defined]
        "rebuild", help="rebuild fresh stores from the log up to a snapshot-log offset")
    parser.add_argument("--to-offset", type=int, required=True,
                        help="snapshot-log offset (exclusive): the behavior as of offset N")
    parser.add_argument("--into", help="target dir (default: <home>/rebuild-N)")
    parser.set_defaults(handler=lambda a, s: run(a, s))
