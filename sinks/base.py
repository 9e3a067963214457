"""The sink interface: how events leave Kafka for a store, and when offsets may be committed.

Lifecycle (after quix-streams' `sinks/base/sink.py`):

    sink.setup()                      # once at start; idempotent (CREATE ... IF NOT EXISTS)
    for msg in consumer:
        sink.add(event, (msg.topic, msg.partition, msg.offset))
        if sink.due():
            offsets = sink.flush()    # raises -> do NOT commit; crash or retry flush()
            consumer.commit(offsets)  # {(topic, partition): next offset to read}
    sink.close()

The contract that makes this safe:
  * `add` only buffers. Nothing is written and nothing may be committed until `flush` returns.
  * `flush` writes the whole batch or raises. When it raises, the buffer is kept and the caller
    must not commit: either it calls `flush()` again or it crashes and the consumer re-reads from
    the last committed offset. Events may therefore be written twice, so every `write` must be
    idempotent (the ClickHouse tables deduplicate on event ids).
  * `flush` returns the offsets to commit, Kafka-style: the offset after the last one buffered,
    per (topic, partition).

Batching by size and age lives here; subclasses only implement `setup` and `write`. The clock is
injected (monotonic seconds) so the age rule can be tested without sleeping; it never feeds event
data, which keeps only event time (`occurred_at`).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Position = tuple[str, int, int]
"""Where an event came from: (topic, partition, offset)."""

Offsets = dict[tuple[str, int], int]
"""What to commit: (topic, partition) -> next offset to read."""

T = TypeVar("T")


class Sink(ABC, Generic[T]):
    """Buffers events and writes them in batches; see the module docstring for the contract."""

    def __init__(
        self,
        *,
        max_batch: int = 5000,
        max_age_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_batch < 1 or max_age_s < 0:
            raise ValueError("max_batch must be >= 1 and max_age_s >= 0")
        self.max_batch = max_batch
        self.max_age_s = max_age_s
        self._clock = clock
        self._buffer: list[T] = []
        self._positions: list[Position] = []
        self._offsets: Offsets = {}
        self._first_added: float | None = None

    @abstractmethod
    def setup(self) -> None:
        """Create what the sink writes to. Must be idempotent: it runs at every start."""

    @abstractmethod
    def write(self, batch: Sequence[T]) -> None:
        """Write one batch, all or nothing as far as the caller is concerned; raise on failure.

        Must be idempotent: after a failed flush or a crash the same events come again.
        """

    def close(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Release resources. Does not flush: unflushed events are uncommitted, so re-read."""

    def add(self, event: T, position: Position) -> None:
        """Buffer one event and remember its source position for the next commit."""
        topic, partition, offset = position
        if self._first_added is None:
            self._first_added = self._clock()
        self._buffer.append(event)
        self._positions.append(position)
        key = (topic, partition)
        self._offsets[key] = max(self._offsets.get(key, 0), offset + 1)

    def due(self) -> bool:
        """True when the batch is full or its oldest event has waited `max_age_s`."""
        if not self._buffer:
            return False
        if len(self._buffer) >= self.max_batch:
            return True
        assert self._first_added is not None
        return self._clock() - self._first_added >= self.max_age_s

    def pending(self) -> int:
        """How many events are buffered and not yet written."""
        return len(self._buffer)

    def flush(self) -> Offsets:
        """Write the buffer; return the offsets that are now safe to commit.

        If `write` raises, the exception propagates, the buffer and offsets are kept, and the
        caller must not commit (see module docstring).
        """
        if not self._buffer:
            return {}
        self.write(self._buffer)
        return self._written()

    def flush_isolating(self, on_poison: Callable[[T, Position, Exception], None]) -> Offsets:
        """Write the buffer an event at a time, handing each event its write raises on to
        `on_poison` (which must keep it: a dead letter) and going on with the rest. For a
        batch whose `flush` keeps failing: one bad event must not stop the sink for good.
        Still raises (keeping the buffer) when every event fails: that is the store, not the
        events (a bad event alone in its batch is isolated once later events join it)."""
        failed: list[tuple[T, Position, Exception]] = []
        for event, position in zip(self._buffer, self._positions, strict=True):
            try:
                self.write([event])
            except Exception as error:
                failed.append((event, position, error))
        if failed and len(failed) == len(self._buffer):
            raise failed[-1][2]
        for event, position, failure in failed:
            on_poison(event, position, failure)
        return self._written()

    def _written(self) -> Offsets:
        offsets = self._offsets
        self._buffer, self._positions, self._offsets, self._first_added = [], [], {}, None
        return offsets
