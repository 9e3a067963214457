"""`kaizen rebuild --to-offset N`: the stores as they were when the snapshot log held N events.

Replays the snapshot log up to offset N (exclusive) and every other topic up to the time of the
last snapshot event included, into FRESH stores (embedded ClickHouse and Qdrant under a new dir),
and prints the behavior digest, which equals the digest the live service had at that offset
(`GET /snapshots/digest`). The log is the source of truth; the stores are views of it.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import structlog
from tqdm import tqdm

from kaizen.processors.learning import snapshots
from kaizen.processors.learning.signatures import error_signature
from kaizen.processors.learning.snapshots import SnapshotLog
from kaizen.readmodel.index import RecallIndex
from kaizen.schemas import model
from kaizen.schemas.codec import SINGLE_OBJECT_HEADER_SIZE, DecodeError, single_object_header
from kaizen.schemas.container import container
from kaizen.service.snapshot_actions import behavior_digest
from kaizen.settings import Settings
from kaizen.sinks.clickhouse import ClickHouseSink
from kaizen.sinks.clickhouse_bulk import BulkLoadError, bulk_loaders
from kaizen.sinks.forget import forget_in_stores
from kaizen.sinks.library_sink import LibrarySink
from kaizen.sinks.qdrant_library import ExperienceLibrary
from kaizen.streams.personal import codec_with_keys
from kaizen.streams.replay import Bounds, RawRecord, TopicReader
from kaizen.streams.topics import Topics

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RebuildReport:
    to_offset: int
    as_of_ms: int
    events: int
    seconds: float
    digest: str
    active: dict[str, str]
    skipped: int = 0  # records no schema could decode (an audit with `kaizen replay` shows them)
    setup_seconds: float = 0.0  # creating the stores, before the first record is read

    @property
    def rate(self) -> float:
        """Events per second of replay, the stores' one-time creation excluded."""
        replay = self.seconds - self.setup_seconds
        return self.events / replay if replay > 0 else 0.0


def _snapshot_log(settings: Settings, to_offset: int) -> tuple[SnapshotLog, int]:
    state, last_ms = SnapshotLog(), 0
    topic = Topics(settings.topic_prefix).snapshots
    for record in TopicReader(settings.bootstrap, topic, Bounds(to_offset=to_offset),
                              client=settings.kafka_client).records():
        if isinstance(record.event, model.SnapshotEvent):
            state = snapshots.apply(state, record.event, record.offset)
            last_ms = max(last_ms, record.timestamp_ms)
    return state, last_ms


class _Stores:
    """The fresh stores of one rebuild. Episode events, signals and patterns in their current
    schema go in bulk (decoded by ClickHouse, `sinks/clickhouse_bulk.py`) on a background thread,
    so reading the log and loading it overlap; every other record is decoded here, one by one.
    The ClickHouse client is never used by both threads at once: the per-record path waits for
    the bulk load first."""

    BULK_RECORDS = 50_000

    def __init__(self, target: Path, keys_path: Path | None = None) -> None:
        (target / "clickhouse").mkdir(parents=True, exist_ok=True)
        self.clickhouse = ClickHouseSink(f"chdb://{(target / 'clickhouse').resolve()}",
                                         signature_of=error_signature, max_batch=20_000)
        self.clickhouse.setup()
        self.library = ExperienceLibrary.open(path=target / "qdrant")
        self.library_sink = LibrarySink(self.library, RecallIndex(self.library.embedder))
        # ClickHouse cannot open per-user ciphertext: with encryption every record goes one by one
        self.bulk = {single_object_header(loader.schema): loader
                     for loader in bulk_loaders(self.clickhouse.client, error_signature)
                     if keys_path is None}
        self.pending: dict[bytes, list[RawRecord]] = {header: [] for header in self.bulk}
        self.loading: tuple[list[RawRecord], Future[None]] | None = None
        self.loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bulk-load")
        self.codec, self.skipped = codec_with_keys(keys_path), 0

    def add(self, records: list[RawRecord]) -> None:
        for record in records:
            header = record.value[:SINGLE_OBJECT_HEADER_SIZE]
            pending = self.pending.get(header)
            if pending is None:
                self._add_one(record)
                continue
            pending.append(record)
            if len(pending) >= self.BULK_RECORDS:
                self._load_pending(header)

    def _add_one(self, record: RawRecord) -> None:
        try:
            event = self.codec.decode(record.value)
        except DecodeError:
            self.skipped += 1
            return
        position = (record.topic, record.partition, record.offset)
        self.clickhouse.add(event, position)
        self.library_sink.add(event, position)
        if self.clickhouse.due():
            self._wait_for_load()
            self.clickhouse.flush()

    def _load_pending(self, header: bytes) -> None:
        self._wait_for_load()
        pending, self.pending[header] = self.pending[header], []
        if pending:
            loader = self.bulk[header]
            block = container(loader.schema, [r.value[SINGLE_OBJECT_HEADER_SIZE:] for r in pending])
            self.loading = (pending, self.loader.submit(loader.load, block))

    def _wait_for_load(self) -> None:
        if self.loading is None:
            return
        records, future = self.loading
        self.loading = None
        try:
            future.result()
        except BulkLoadError as error:  # a corrupt body spoils the block: go record by record
            log.warning("bulk load failed; decoding one by one", records=len(records),
                        error=str(error))
            for record in records:
                self._add_one(record)

    def flush(self) -> None:
        for header in self.bulk:
            self._load_pending(header)
        self._wait_for_load()
        self.clickhouse.flush()
        self.library_sink.flush()

    def close(self) -> None:
        self.loader.shutdown(wait=True)
        self.clickhouse.close()
        self.library.close()


def rebuild(settings: Settings, to_offset: int, target: Path, progress: bool = False
            ) -> RebuildReport:
    started = time.perf_counter()
    state, as_of_ms = _snapshot_log(settings, to_offset)
    stores = _Stores(target, settings.personal_keys)
    setup_seconds = time.perf_counter() - started
    topics = Topics(settings.topic_prefix)
    events = 0
    try:
        for topic in (topics.episodes, topics.signals, topics.patterns, topics.experiences,
                      topics.snapshots):
            bounds = (Bounds(to_offset=to_offset) if topic == topics.snapshots
                      else Bounds(to_time_ms=as_of_ms + 1))
            reader = TopicReader(settings.bootstrap, topic, bounds, client=settings.kafka_client)
            with tqdm(total=reader.total, desc=topic, unit="rec", file=sys.stderr,
                      disable=not progress or reader.total < 50_000) as bar:
                for batch in reader.raw_batches():
                    stores.add(batch)
                    events += len(batch)
                    bar.update(len(batch))
        stores.flush()
        apply_receipts(settings, stores.clickhouse, stores.library)
    finally:
        stores.close()
    active = state.as_of_offset(to_offset)
    return RebuildReport(to_offset, as_of_ms, events - stores.skipped,
                         time.perf_counter() - started, behavior_digest(state, to_offset), active,
                         stores.skipped, setup_seconds)


def apply_receipts(settings: Settings, clickhouse: ClickHouseSink,
                   library: ExperienceLibrary) -> int:
    """Forget again every user the privacy topic says was forgotten, whatever the as-of time of
    the rebuild: a forgotten user never comes back from the log. Returns how many."""
    try:
        reader = TopicReader(settings.bootstrap, Topics(settings.topic_prefix).privacy, Bounds(),
                             client=settings.kafka_client)
    except ValueError:  # a deployment from before the privacy topic
        return 0
    receipts = [r.event for r in reader.records() if isinstance(r.event, model.ForgetReceipt)]
    for receipt in receipts:
        forget_in_stores(clickhouse.client, library, None, receipt.tenant, receipt.user)
    return len(receipts)
