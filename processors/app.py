"""The faust app: three agents over the pure folds, with versioned tables backed by changelogs.

    kaizen.episodes --assemble--> kaizen.signals, curation-v2 (by curation key),
                                  tool-results-v2 (by agent)
    tool-results-v2 --aggregate--> kaizen.patterns
    curation-v2     --curate-----> kaizen.experiences

(the internal topics carry bundles of records, `processors/bundles.py`)
    bad records of any input ----> kaizen.deadletter

This is the only module that imports faust; what each agent does with a batch of records is in
`processors/steps.py`. Processing is at-least-once: after a crash, records since the last commit
are read again, and the folds recognise them (event ids, seq), so state and outputs come out the
same as in an uninterrupted run. A record on which a fold raises is retried a bounded number of
times and then dead-lettered with its traceback (`processors/steps.py`); anything else that fails
(the broker refusing outputs or the tables' changelog writes, `streams/batch_sender.py`) exits
the worker before the batch is acked, and `serve` restarts it
with a backoff. A record that kills the process while it is folded (no exception at all) is
dead-lettered after `max_deaths` deaths (`processors/inflight.py`).

Test seam: with `KAIZEN_TEST_EXIT_ON=<text>` in its environment, a worker exits at once
(`os._exit(99)`, as a crash would) when it folds a record whose value contains that text. Only
the fault tests set it (`tests/faults/test_processor_death.py`): no record triggers a real crash.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

import faust
import structlog

from kaizen.processors.batches import batches
from kaizen.processors.config import (
    CURATION_TABLE,
    CURATION_TOPIC,
    EPISODES_TABLE,
    PATTERNS_TABLE,
    TOOL_RESULTS_TOPIC,
    ProcessorConfig,
)
from kaizen.processors.fetching import LeanApp
from kaizen.processors.folding import Record, RecordFolds
from kaizen.processors.inflight import DeathWatch, ProcessDied
from kaizen.processors.steps import (
    AssembleStep,
    Batch,
    aggregate_step,
    curate_step,
    unstored_writes,
)
from kaizen.streams.batch_sender import BatchSender
from kaizen.streams.topics import Topics

log = structlog.get_logger(__name__)
_EXIT_ON = os.environ.get("KAIZEN_TEST_EXIT_ON", "").encode() or None  # the test seam


class Step(Protocol):
    def process(self, table: Any, records: Sequence[Record], careful: bool = False,
                pending: Mapping[str, Any] | None = None) -> Batch: ...


@dataclass
class InFlight:
    """A folded batch whose outputs are on their way: `stored` is done once they were all
    acknowledged, its states written to the table and its events acked (in batch order)."""

    batch: Batch
    stored: asyncio.Future[None]


MAX_IN_FLIGHT = 8  # batches of one step folded but not stored; the next fold waits past it


class Flights:
    """One step's batches in flight, oldest first: the next fold reads their writes before the
    table's (`steps.unstored_writes`), since none of them may be stored yet."""

    def __init__(self) -> None:
        self._flights: deque[InFlight] = deque()

    @property
    def last(self) -> InFlight | None:
        return self._flights[-1] if self._flights else None

    async def pending(self) -> Mapping[str, Any] | None:
        """The unstored writes, once fewer than MAX_IN_FLIGHT batches are in flight."""
        while self._flights and (self._flights[0].stored.done()
                                 or len(self._flights) >= MAX_IN_FLIGHT):
            await self._flights.popleft().stored
        return unstored_writes([flight.batch for flight in self._flights])

    def add(self, flight: InFlight) -> None:
        self._flights.append(flight)

    async def all_stored(self) -> None:
        if self._flights:
            await self._flights[-1].stored  # stored in order: the last one is the last


@dataclass(frozen=True)
class ChangelogWrite:
    """A table write as faust would have sent it to the table's changelog (value None: the
    key was deleted), in the partition of the records its key comes from."""

    topic: str
    key: bytes
    value: bytes | None
    partition: int


class PartitionedTable(faust.Table):
    """A table whose writes name their changelog partition, and are sent with the outputs'
    producer (the `Store` of `processors/steps.py`).

    faust would send each write through its aiokafka producer, in Python on the event loop: a
    sixth of a worker's CPU in a profile of `bench/process.py`. A write here changes the
    table's data at once and is kept as the changelog record faust would have written (its
    serializers); `Processors._store` sends a batch's writes through the `BatchSender` and waits
    until the broker has them before the batch's events are acked. faust restores the table from
    that changelog as from its own, one partition at a time: a batch mixes partitions, so each
    write names the partition its key's records come from (a wrong one would lose the state)."""

    _unsent: list[ChangelogWrite] | None = None

    def partition_for_key(self, key: Any) -> int | None:
        raise RuntimeError(f"table {self.name}: a write through faust (`put` names the "
                           "partition and sends the changelog record itself)")

    def put(self, key: str, value: Any, partition: int) -> None:
        self.data[key] = value
        self._queue(key, self.changelog_topic.prepare_value(value, self.value_serializer)[0],
                    partition)

    def delete(self, key: str, partition: int) -> None:
        if key not in self.data:
            return
        del self.data[key]
        self._queue(key, None, partition)  # a tombstone, as faust writes for `del table[key]`

    def unsent(self) -> list[ChangelogWrite]:
        """The writes since the last call, in the order they were made."""
        writes, self._unsent = self._unsent or [], None
        return writes

    def _queue(self, key: str, value: bytes | None, partition: int) -> None:
        if self._unsent is None:
            self._unsent = []
        topic = self.changelog_topic
        self._unsent.append(ChangelogWrite(topic.get_topic_name(),
                                           topic.prepare_key(key, self.key_serializer)[0],
                                           value, partition))


def _record(event: faust.EventT) -> Record:
    message = event.message
    return Record(message.topic, message.partition, message.offset, message.key,
                  message.value or b"", int((message.timestamp or 0) * 1000))


def _credentials(config: ProcessorConfig) -> faust.SASLCredentials | None:
    """The worker's SASL login for faust (its consumers, producer and topic admin)."""
    login = config.login
    if login is None:
        return None
    context = ssl.create_default_context() if login.protocol == "SASL_SSL" else None
    return faust.SASLCredentials(username=login.username, password=login.password,
                                 mechanism=login.mechanism, ssl_context=context)


def _faust_app(app_id: str, config: ProcessorConfig, lean: bool = True) -> faust.App:
    """The faust app of a worker; `lean`: its consumer fetches without faust's race of tasks
    per message (`processors/fetching.py`)."""
    return (LeanApp if lean else faust.App)(
        app_id,
        broker=f"kafka://{config.bootstrap}",
        broker_credentials=_credentials(config),
        store="memory://",
        datadir=str(config.data_dir),
        key_serializer="json",  # tables: str keys, dict states
        value_serializer="json",
        topic_partitions=config.partitions,
        topic_replication_factor=config.replication,  # changelogs, internal topics
        web_enabled=False,
        processing_guarantee="at_least_once",
        broker_commit_interval=1.0,
        table_standby_replicas=0,
        Table=PartitionedTable,
    )


class Processors:
    """Builds the faust app for one config; `app.main()` / `app.worker` runs it."""

    def __init__(self, config: ProcessorConfig) -> None:
        self.config = config
        self.folds = RecordFolds(config)
        self.outputs = BatchSender(config.bootstrap,
                                   config.login.librdkafka() if config.login else None)
        self.app = _faust_app(config.app_id, config)
        self._topics: dict[str, faust.TopicT] = {}
        self._build()

    def _topic(self, name: str, internal: bool = False) -> faust.TopicT:
        if name not in self._topics:
            self._topics[name] = self.app.topic(
                name, key_type=bytes, value_type=bytes, key_serializer="raw",
                value_serializer="raw", partitions=self.config.partitions, internal=internal,
                config=self.config.topic_config if internal else None,
            )
        return self._topics[name]

    def _build(self) -> None:
        topics, cfg = self.folds.topics, self.config
        episodes_in = self._topic(topics.episodes)
        tool_results = self._topic(cfg.internal(TOOL_RESULTS_TOPIC), internal=True)
        curation_in = self._topic(cfg.internal(CURATION_TOPIC), internal=True)
        steps = (("assemble", episodes_in, EPISODES_TABLE, AssembleStep(self.folds)),
                 ("aggregate", tool_results, PATTERNS_TABLE, aggregate_step(self.folds)),
                 ("curate", curation_in, CURATION_TABLE, curate_step(self.folds)))
        self.tables: dict[str, Any] = {}
        for component, source, table_name, step in steps:
            table = self.app.Table(table_name, default=None, partitions=cfg.partitions,
                                   extra_topic_configs=cfg.topic_config)
            self.tables[table_name] = table
            watch = DeathWatch(cfg.data_dir, component, cfg.max_deaths)
            self.app.agent(source, name=f"{component}-v1")(self._agent(step, table, watch))

    def _agent(self, step: Step, table: Any, watch: DeathWatch
               ) -> Callable[[faust.StreamT[bytes]], AsyncIterator[None]]:
        async def run(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
            assert isinstance(stream, faust.Stream)
            flights = Flights()
            # each event is acked once its batch is stored (`_store`), not before
            async for events in batches(self.app, stream, self.config.batch_records,
                                        self.config.batch_seconds):
                pieces = watch.pieces([_record(event) for event in events])
                for n, records in enumerate(pieces):
                    try:
                        batch = await self._watched_fold(step, table, records, watch, flights)
                        delivery = await self.outputs.submit(batch.outgoing)
                    except Exception:
                        _exit_unacked(watch, len(events))
                    held = events if n == len(pieces) - 1 else []
                    flights.add(InFlight(batch, asyncio.ensure_future(
                        self._store(flights.last, delivery, batch, table, held, watch))))
                yield None
        return run

    async def _store(self, previous: InFlight | None, delivery: asyncio.Future[None],
                     batch: Batch, table: PartitionedTable, events: Sequence[faust.EventT],
                     watch: DeathWatch) -> None:
        """Once the batch before is stored and this batch's outputs are acknowledged: write its
        states and wait until their changelog records are acknowledged too, then release its
        events' offsets for commit. The next batch folds meanwhile."""
        try:
            if previous is not None:
                await previous.stored
            await delivery
            batch.commit()
            await self.outputs.send(table.unsent())
        except Exception:
            _exit_unacked(watch, len(events))
        for event in events:
            event.ack()

    async def _watched_fold(self, step: Step, table: Any, records: list[Record],
                            watch: DeathWatch, flights: Flights) -> Batch:
        """`_fold` with the records noted as in flight while it runs (`processors/inflight.py`);
        a record alone that was in flight at `max_deaths` deaths is dead-lettered instead."""
        deaths = watch.doomed(records)
        if deaths:
            log.error("a record killed the processors; dead-lettering it", step=watch.step,
                      deaths=deaths, partition=records[0].partition, offset=records[0].offset)
            batch = step.process(table, [])
            reason = watch.reason(deaths)
            batch.outgoing.append(self.folds.dead_letter(records[0], watch.step,
                                                         ProcessDied(reason), reason))
        else:
            watch.folding(records)
            if _EXIT_ON is not None and any(_EXIT_ON in r.value for r in records):
                os._exit(99)  # the documented test seam (module docstring)
            batch = await self._fold(step, table, records, flights)
        watch.folded(records)
        return batch

    @staticmethod
    async def _fold(step: Step, table: Any, records: list[Record], flights: Flights) -> Batch:
        """Fold a batch over the table and the batches still in flight; if it raises, fold it
        again carefully (`processors/steps.py`): the records that make a fold fail are
        dead-lettered with the traceback, the rest go on. The careful fold waits until the
        batches before are stored, since a failed fold resets what a step keeps in memory and
        rebuilds it from the table."""
        try:
            return step.process(table, records, pending=await flights.pending())
        except (Exception, RecursionError, MemoryError):
            log.warning("a fold raised; folding the batch record by record", exc_info=True,
                        step=type(step).__name__, records=len(records))
            await flights.all_stored()
            return step.process(table, records, careful=True)


def _exit_unacked(watch: DeathWatch, records: int) -> NoReturn:
    """Outputs the broker would not take, or a fold that raised even carefully outside any one
    record (the idle scan): exit at once, so that the batch is read again. faust would restart
    the agent past it."""
    log.exception("processor step failed; exiting before the batch is acked", step=watch.step,
                  records=records)
    os._exit(70)


def create_app(config: ProcessorConfig) -> faust.App:
    return Processors(config).app


def create_baseline_app(config: ProcessorConfig, lean: bool = False) -> faust.App:
    """faust alone: an agent that takes the episodes in batches and does nothing with them.

    Stock (the default): faust as it comes, through its own batch API (`Stream.take_events`),
    the ceiling of a plain faust app on this machine and topic, which `bench/process.py` prints
    next to the processors' rate. `lean`: through the processors' own path (the lean fetch loop
    of `processors/fetching.py` and the batch reader of `processors/batches.py`), so that the
    processors' rate over it is the share of a worker's time their folds leave."""
    app = _faust_app(f"{config.app_id}-baseline" + ("-lean" if lean else ""), config, lean=lean)
    topic = app.topic(Topics(config.prefix).episodes, key_type=bytes, value_type=bytes,
                      key_serializer="raw", value_serializer="raw")

    async def take_only(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        assert isinstance(stream, faust.Stream)
        if lean:
            async for events in batches(app, stream, config.batch_records,
                                        config.batch_seconds):
                for event in events:
                    event.ack()
                yield None
        else:
            async for _ in stream.take_events(config.batch_records,
                                              within=config.batch_seconds):
                yield None

    app.agent(topic, name="baseline")(take_only)
    return app


def run_worker(config: ProcessorConfig, loglevel: str = "warn", baseline: str | None = None
               ) -> None:
    """Run one worker until SIGTERM / SIGINT; faust handles rebalancing and recovery.
    `baseline`: "stock" or "lean" runs faust alone instead (`create_baseline_app`)."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    app = (create_app(config) if baseline is None
           else create_baseline_app(config, lean=baseline == "lean"))
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    # with a spinner faust lowers the root logger to DEBUG, and every hot-path debug call then
    # builds a log record (10-25% of the throughput); without it the level stays as asked
    worker.spinner = None
    worker.execute_from_commandline()
