"""The faust app: three agents over the pure folds, with versioned tables backed by changelogs.

    kaizen.episodes --assemble--> kaizen.signals, curation-v1 (by curation key),
                                  tool-results-v1 (by agent)
    tool-results-v1 --aggregate--> kaizen.patterns
    curation-v1     --curate-----> kaizen.experiences
    bad records of any input ----> kaizen.deadletter

This is the only module that imports faust. Processing is at-least-once: after a crash, records
since the last commit are read again, and the folds recognise them (event ids, seq), so state
and outputs come out the same as in an uninterrupted run. A bug in a fold is not caught: the
agent crashes loudly rather than skipping records.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import faust
import structlog

from processors.config import (
    CURATION_TABLE,
    CURATION_TOPIC,
    EPISODES_TABLE,
    PATTERNS_TABLE,
    TOOL_RESULTS_TOPIC,
    ProcessorConfig,
)
from processors.routing import Outgoing, Record, Result, Router

log = structlog.get_logger(__name__)


def _record(event: faust.EventT) -> Record:
    message = event.message
    return Record(message.topic, message.partition, message.offset, message.key,
                  message.value or b"", int((message.timestamp or 0) * 1000))


class Processors:
    """Builds the faust app for one config; `app.main()` / `app.worker` runs it."""

    def __init__(self, config: ProcessorConfig) -> None:
        self.config = config
        self.router = Router(config)
        self.app = faust.App(
            config.app_id,
            broker=f"kafka://{config.bootstrap}",
            store="memory://",
            datadir=str(config.data_dir),
            key_serializer="json",  # tables: str keys, dict states
            value_serializer="json",
            topic_partitions=config.partitions,
            topic_replication_factor=1,
            web_enabled=False,
            processing_guarantee="at_least_once",
            broker_commit_interval=1.0,
            table_standby_replicas=0,
        )
        self._outputs: dict[str, faust.TopicT] = {}
        self._watermarks: dict[int, int] = {}
        self._last_scan: dict[int, int] = {}
        # per partition: episode id -> (last event time, closed); rebuilt from the table after a
        # (re)start, so the idle scan never has to decode every stored episode
        self._activity: dict[int, dict[str, tuple[int, bool]]] = {}
        self._build()

    def _topic(self, name: str, internal: bool = False) -> faust.TopicT:
        if name not in self._outputs:
            self._outputs[name] = self.app.topic(
                name, key_type=bytes, value_type=bytes, key_serializer="raw",
                value_serializer="raw", partitions=self.config.partitions, internal=internal,
            )
        return self._outputs[name]

    async def _send(self, outgoing: list[Outgoing]) -> None:
        for item in outgoing:
            await self._topic(item.topic).send(key=item.key, value=item.value)

    def _build(self) -> None:
        topics, cfg = self.router.topics, self.config
        episodes_in = self._topic(topics.episodes)
        tool_results = self._topic(cfg.internal(TOOL_RESULTS_TOPIC), internal=True)
        curation_in = self._topic(cfg.internal(CURATION_TOPIC), internal=True)
        self.episodes = self.app.Table(EPISODES_TABLE, default=None, partitions=cfg.partitions)
        self.patterns = self.app.Table(PATTERNS_TABLE, default=None, partitions=cfg.partitions)
        self.curation = self.app.Table(CURATION_TABLE, default=None, partitions=cfg.partitions)
        self.app.agent(episodes_in, name="assemble-v1")(self._assemble)
        self.app.agent(tool_results, name="aggregate-v1")(self._aggregate)
        self.app.agent(curation_in, name="curate-v1")(self._curate)

    async def _assemble(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for event in stream.events():
            record = _record(event)
            decoded = self.router.decode_episode_event(record, "assemble")
            if isinstance(decoded, Outgoing):
                await self._send([decoded])
                continue
            result = self.router.assemble(self.episodes.get(decoded.episode_id), record, decoded)
            self._store(self.episodes, decoded.episode_id, result)
            self._note_activity(record.partition, decoded.episode_id, result)
            await self._send(result.outgoing)
            await self._close_idle(record.partition, decoded.occurred_at)
            yield None

    async def _close_idle(self, partition: int, occurred_at: int) -> None:
        """Advance the partition's watermark (event time) and, now and then, close idle episodes
        of this partition. Event time, not the wall clock, so replays close the same episodes."""
        watermark = max(self._watermarks.get(partition, 0), occurred_at)
        self._watermarks[partition] = watermark
        if watermark - self._last_scan.get(partition, 0) < self.config.idle_scan_ms:
            return
        self._last_scan[partition] = watermark
        activity = self._partition_activity(partition)
        cfg = self.config
        due = [episode_id for episode_id, (last, closed) in activity.items()
               if last <= watermark - (cfg.linger_ms if closed else cfg.idle_ms)]
        for episode_id in due:
            state = self.episodes.get(episode_id)
            if state is None:
                activity.pop(episode_id, None)
                continue
            result = self.router.close_idle(state, watermark)
            if result.state != state:
                self._store(self.episodes, episode_id, result)
            self._note_activity(partition, episode_id, result)
            await self._send(result.outgoing)

    def _partition_activity(self, partition: int) -> dict[str, tuple[int, bool]]:
        if partition not in self._activity:
            self._activity[partition] = {
                episode_id: (state["episode"]["last_event_at"], state["episode"]["closed"])
                for episode_id, state in self.episodes.items()
                if state is not None and state.get("partition") == partition
            }
        return self._activity[partition]

    def _note_activity(self, partition: int, episode_id: str, result: Result) -> None:
        activity = self._partition_activity(partition)
        if result.state is None:
            activity.pop(episode_id, None)
        else:
            episode = result.state["episode"]
            activity[episode_id] = (episode["last_event_at"], episode["closed"])

    async def _aggregate(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for event in stream.events():
            record = _record(event)
            decoded = self.router.decode_episode_event(record, "aggregate")
            if isinstance(decoded, Outgoing):
                await self._send([decoded])
                continue
            result = self.router.aggregate(self.patterns.get(decoded.agent), decoded)
            self._store(self.patterns, decoded.agent, result)
            await self._send(result.outgoing)
            yield None

    async def _curate(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for event in stream.events():
            record = _record(event)
            decoded = self.router.decode_signal(record, "curate")
            if isinstance(decoded, Outgoing):
                await self._send([decoded])
                continue
            key = (record.key or b"").decode()
            result = self.router.curate(self.curation.get(key), decoded)
            self._store(self.curation, key, result)
            await self._send(result.outgoing)
            yield None

    @staticmethod
    def _store(table: Any, key: str, result: Result) -> None:
        if result.state is None:
            table.pop(key, None)
        else:
            table[key] = result.state


def create_app(config: ProcessorConfig) -> faust.App:
    return Processors(config).app


def run_worker(config: ProcessorConfig, loglevel: str = "warn") -> None:
    """Run one worker until SIGTERM / SIGINT; faust handles rebalancing and recovery."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    worker = faust.Worker(create_app(config), loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
