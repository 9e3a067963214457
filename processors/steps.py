"""The three processor steps over batches of records, without faust.

    step = AssembleStep(folds)
    batch = step.process(table, records)   # fold every record in order
    send(batch.outgoing); wait until written
    batch.commit()                         # then write the touched states back, once each

    later = step.process(table, more, pending=unstored_writes([batch]))  # while it is sent

A batch reads each state it touches from the step's table once, folds the records into it as
objects, and writes it back once: writing a state serializes it whole into the table's changelog,
which, done for every record, cost about half a millisecond a record. Records are folded strictly
in order and the idle scan runs at the same points of the stream as it would record by record, so
the outputs do not depend on where the stream was cut into batches (a property test checks it).

Outputs go out before the states are written: after a crash in between, the batch is read again
and its outputs are sent again (the ids are deterministic and every consumer is idempotent),
whereas the other order could store a state whose outputs were never sent.

Pipelining. The next batches may be folded while earlier ones are still being sent: `pending`
is their states as they will write them (dumped when each fold ended), read before the table,
the newest first. A fold loads its own copies from them, so nothing it changes reaches an
earlier batch's writes; commits stay in batch order (`processors/app.py`).

Poison records. When a batch raises, it is folded again `careful`ly: before each record its
state is kept as dumped, a fold that raises is retried from that copy up to `attempts` times,
and then the record is dead-lettered with the traceback and its state left as it was, so one
record that trips a fold neither stops the partition nor crash-loops the worker. A fold is pure
and deterministic, so the careful pass gives the outputs the plain pass would have given for
every other record.
"""

from __future__ import annotations

import json
from collections import ChainMap
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Generic, Protocol, TypeVar

from kaizen.processors.folding import Outgoing, Record, RecordFolds
from kaizen.processors.learning.curation import CurationState
from kaizen.processors.learning.episodes import EpisodeState
from kaizen.processors.learning.patterns import PatternState
from kaizen.processors.sealing import StateSealer
from kaizen.schemas.dead_letters import failure_reason
from kaizen.schemas.model import EpisodeEvent, Signal
from kaizen.schemas.scope import scope_key

S = TypeVar("S")
E = TypeVar("E")
R = TypeVar("R")


def fold_carefully(cache: StateCache[S], key: str, attempts: int,
                   fold: Callable[[S | None], R]) -> R | BaseException:
    """`fold(state)` of `key`, retried from a copy of the state taken before the first try;
    the last error (with its traceback) after `attempts` failures, the state then unchanged.
    RecursionError and MemoryError are bad input here too (a deeply nested argument)."""
    saved = cache.snapshot(key)
    error: BaseException = RuntimeError("no attempt")
    for _ in range(max(1, attempts)):
        try:
            return fold(cache.get(key))
        except (Exception, RecursionError, MemoryError) as failure:
            error = failure
            cache.restore(key, saved)
    return error


class Store(Protocol):
    """A step's table. Writes name the partition of the records their key comes from: a batch
    mixes partitions, and each key's changelog entry must land in its own partition."""

    def get(self, key: str) -> Any: ...

    def items(self) -> Iterable[tuple[str, Any]]: ...

    def put(self, key: str, value: Any, partition: int) -> None: ...

    def delete(self, key: str, partition: int) -> None: ...


class DictStore(dict[str, Any]):
    """A `Store` in a plain dict (tests, tools)."""

    def put(self, key: str, value: Any, partition: int) -> None:
        self[key] = value

    def delete(self, key: str, partition: int) -> None:
        self.pop(key, None)


class StateCache(Generic[S]):
    """The states one batch touches: loaded from the store on first use, written back once."""

    def __init__(self, store: Store, load: Callable[[Any], S | None],
                 dump: Callable[[S], Any], pending: Mapping[str, Any] | None = None) -> None:
        self._store, self._load, self._dump = store, load, dump
        self._pending = pending or {}  # an earlier batch's writes, not yet in the store
        self._states: dict[str, S | None] = {}
        self._dirty: dict[str, int] = {}  # key -> partition, in the order first changed

    def get(self, key: str) -> S | None:
        if key not in self._states:
            stored = self._pending[key] if key in self._pending else self._store.get(key)
            self._states[key] = None if stored is None else self._load(stored)
        return self._states[key]

    def set(self, key: str, state: S | None, partition: int) -> None:
        """Keep a new state (None: delete the key) for `changes`."""
        self._states[key] = state
        self._dirty[key] = partition

    def snapshot(self, key: str) -> Any:
        """The state of `key` as stored (dumped), to undo a fold that raised part-way."""
        state = self.get(key)  # a deep copy: folds change states in place
        return None if state is None else json.loads(json.dumps(self._dump(state)))

    def restore(self, key: str, saved: Any) -> None:
        self._states[key] = None if saved is None else self._load(saved)

    def changes(self) -> dict[str, tuple[Any, int]]:
        """Every changed state as it is to be stored (dumped; None: delete the key) with its
        partition: the batch's writes, fixed now, whatever later folds do to the objects."""
        return {key: (None if (state := self._states[key]) is None else self._dump(state),
                      partition) for key, partition in self._dirty.items()}


@dataclass
class Batch:
    """What a batch produced: the records to send, then `commit()` to store the states."""

    outgoing: list[Outgoing]
    store: Store
    writes: dict[str, tuple[Any, int]]  # key -> (dumped state or None: delete, partition)

    @classmethod
    def of(cls, outgoing: list[Outgoing], cache: StateCache[Any], store: Store) -> Batch:
        return cls(outgoing, store, cache.changes())

    @cached_property
    def pending(self) -> dict[str, Any]:
        """The states this batch will store, for a fold that runs before `commit()`."""
        return {key: value for key, (value, _) in self.writes.items()}


    def commit(self) -> int:
        """Write every changed state to the store; returns how many."""
        for key, (value, partition) in self.writes.items():
            if value is None:
                self.store.delete(key, partition)
            else:
                self.store.put(key, value, partition)
        return len(self.writes)


def unstored_writes(batches: Sequence[Batch]) -> Mapping[str, Any] | None:
    """What the next fold reads before the table: the writes of the batches folded but not
    stored yet (oldest first), a later batch's state of a key over an earlier one's."""
    return ChainMap(*(batch.pending for batch in reversed(batches))) if batches else None


@dataclass
class StoredEpisode:
    """An episode's state and the partition it lives in (for the idle scan of that partition).
    Stored sealed under the episode's user's key when encryption is on (`processors/sealing.py`);
    a forgotten user's episode loads as None."""

    partition: int
    state: EpisodeState

    @staticmethod
    def loader(sealer: StateSealer) -> Callable[[dict[str, Any]], StoredEpisode | None]:
        def load(stored: dict[str, Any]) -> StoredEpisode | None:
            episode = sealer.open_episode(stored["episode"])
            if episode is None:
                return None
            return StoredEpisode(stored["partition"], EpisodeState.from_dict(episode))
        return load

    @staticmethod
    def dumper(sealer: StateSealer) -> Callable[[StoredEpisode], dict[str, Any]]:
        def dump(stored: StoredEpisode) -> dict[str, Any]:
            return {"partition": stored.partition,
                    "episode": sealer.seal_episode(stored.state.to_dict())}
        return dump


class AssembleStep:
    """Episode events -> signals and forwarded tool results; closes idle episodes by event time.

    Per partition it keeps a watermark (largest event time seen) and an activity index (table
    key = tenant/agent/episode id -> last event time, closed), rebuilt from the table after a
    (re)start, so the idle scan never has to decode every stored episode."""

    def __init__(self, folds: RecordFolds) -> None:
        self.folds, self.config = folds, folds.config
        self._load = StoredEpisode.loader(folds.sealer)
        self._dump = StoredEpisode.dumper(folds.sealer)
        self._watermarks: dict[int, int] = {}
        self._last_scan: dict[int, int] = {}
        self._activity: dict[int, dict[str, tuple[int, bool]]] = {}

    def process(self, table: Store, records: Sequence[Record], careful: bool = False,
                pending: Mapping[str, Any] | None = None) -> Batch:
        cache: StateCache[StoredEpisode] = StateCache(table, self._load, self._dump, pending)
        out: list[Outgoing] = []
        marks = dict(self._watermarks), dict(self._last_scan)
        try:
            for record in records:
                out += self._one(table, cache, record, careful)
        except BaseException:
            # the batch is folded again (carefully) or read again after a restart: the scan
            # points must be where they were, and the activity index is rebuilt from the table
            self._watermarks, self._last_scan = marks
            self._activity.clear()
            raise
        return Batch.of(self.folds.bundled(out), cache, table)

    def _one(self, table: Store, cache: StateCache[StoredEpisode], record: Record,
             careful: bool) -> list[Outgoing]:
        decoded = self.folds.decode_episode_event(record, "assemble")
        if isinstance(decoded, Outgoing):
            return [decoded]
        # episode ids are the agents' own: two tenants (or agents) may both have an "ep-1"
        key = scope_key(decoded.tenant, decoded.agent, decoded.episode_id)

        def fold(stored: StoredEpisode | None) -> tuple[EpisodeState, list[Outgoing]]:
            return self.folds.assemble(stored.state if stored else None, record, decoded)

        if careful:
            attempts = self.config.fold_attempts
            result = fold_carefully(cache, key, attempts, fold)
            if isinstance(result, BaseException):
                reason = failure_reason("assemble", attempts, result)
                return [self.folds.dead_letter(record, "assemble", result, reason)]
            state, sent = result
        else:
            state, sent = fold(cache.get(key))
        cache.set(key, StoredEpisode(record.partition, state), record.partition)
        self._note_activity(table, record.partition, key, state)
        return sent + self._close_idle(table, cache, record.partition, decoded.occurred_at)

    def _close_idle(self, table: Store, cache: StateCache[StoredEpisode], partition: int,
                    occurred_at: int) -> list[Outgoing]:
        """Advance the partition's watermark and, now and then, close its idle episodes. Event
        time, not the wall clock, so a replay closes the same episodes at the same point."""
        watermark = max(self._watermarks.get(partition, 0), occurred_at)
        self._watermarks[partition] = watermark
        if watermark - self._last_scan.get(partition, 0) < self.config.idle_scan_ms:
            return []
        self._last_scan[partition] = watermark
        activity = self._partition_activity(table, partition)
        cfg, out = self.config, []
        due = [episode_id for episode_id, (last, closed) in activity.items()
               if last <= watermark - (cfg.linger_ms if closed else cfg.idle_ms)]
        for episode_id in due:
            stored = cache.get(episode_id)
            if stored is None:  # gone, or its user forgotten: drop what the table still has
                activity.pop(episode_id, None)
                cache.set(episode_id, None, partition)
                continue
            state, sent = self.folds.close_idle(stored.state, watermark)
            if state is not stored.state:
                cache.set(episode_id, None if state is None else StoredEpisode(partition, state),
                          partition)
            self._note_activity(table, partition, episode_id, state)
            out += sent
        return out

    def _partition_activity(self, table: Store, partition: int) -> dict[str, tuple[int, bool]]:
        if partition not in self._activity:
            self._activity[partition] = {
                episode_id: (stored["episode"]["last_event_at"], stored["episode"]["closed"])
                for episode_id, stored in table.items()
                if stored is not None and stored.get("partition") == partition
            }
        return self._activity[partition]

    def _note_activity(self, table: Store, partition: int, episode_id: str,
                       state: EpisodeState | None) -> None:
        activity = self._partition_activity(table, partition)
        if state is None:
            activity.pop(episode_id, None)
        else:
            activity[episode_id] = (state.last_event_at, state.closed)


class KeyedStep(Generic[E, S]):
    """Bundles of records (`processors/bundles.py`) decoded into events, each folded into the
    state of its key (no idle scan)."""

    def __init__(self, component: str, folds: RecordFolds, decode: Callable[[Record], E | Outgoing],
                 key_of: Callable[[Record, E], str],
                 fold: Callable[[S | None, E], tuple[S, list[Outgoing]]],
                 load: Callable[[Any], S | None], dump: Callable[[S], Any]) -> None:
        self._component, self._folds = component, folds
        self._decode, self._key_of, self._fold = decode, key_of, fold
        self._load, self._dump = load, dump

    def process(self, table: Store, records: Sequence[Record], careful: bool = False,
                pending: Mapping[str, Any] | None = None) -> Batch:
        cache: StateCache[S] = StateCache(table, self._load, self._dump, pending)
        out: list[Outgoing] = []
        attempts = self._folds.config.fold_attempts
        for record in self._unbundled(records, out):
            decoded = self._decode(record)
            if isinstance(decoded, Outgoing):
                out.append(decoded)
                continue
            key = self._key_of(record, decoded)
            if not careful:
                state, sent = self._fold(cache.get(key), decoded)
            else:
                result = fold_carefully(cache, key, attempts, self._folding(decoded))
                if isinstance(result, BaseException):
                    reason = failure_reason(self._component, attempts, result)
                    out.append(self._folds.dead_letter(record, self._component, result, reason))
                    continue
                state, sent = result
            cache.set(key, state, record.partition)
            out += sent
        return Batch.of(out, cache, table)

    def _unbundled(self, records: Sequence[Record], out: list[Outgoing]) -> Iterator[Record]:
        """The records the bundles carry, in order; a bundle that is not one is dead-lettered
        into `out`."""
        for bundle in records:
            carried = self._folds.unbundle(bundle, self._component)
            if isinstance(carried, Outgoing):
                out.append(carried)
            else:
                yield from carried

    def _folding(self, event: E) -> Callable[[S | None], tuple[S, list[Outgoing]]]:
        return lambda state: self._fold(state, event)


def aggregate_step(folds: RecordFolds) -> KeyedStep[EpisodeEvent, PatternState]:
    """Forwarded tool results -> windowed patterns per agent."""
    return KeyedStep("aggregate", folds,
                     lambda record: folds.decode_episode_event(record, "aggregate", forwarded=True),
                     lambda record, event: event.agent, folds.aggregate,
                     PatternState.from_dict, PatternState.to_dict)


def curate_step(folds: RecordFolds) -> KeyedStep[Signal, CurationState]:
    """Signals re-keyed by curation key -> experiences."""
    sealer = folds.sealer
    return KeyedStep("curate", folds, lambda record: folds.decode_signal(record, "curate"),
                     lambda record, signal: (record.key or b"").decode(), folds.curate,
                     lambda stored: CurationState.from_dict(sealer.open_curation(stored)),
                     lambda state: sealer.seal_curation(state.to_dict()))
