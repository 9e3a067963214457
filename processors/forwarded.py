"""The events a worker forwarded to its own next steps, by the bytes it sent, so that the step
that reads them back decodes nothing.

The assemble step forwards every tool result (the episode event's own bytes) to the aggregate
step and every signal to curate (bytes it has just encoded) through the internal topics. The
steps that read them back mostly run in the same worker, a few batches later, and decoding them
again was a fifth of those steps' time. What `take` returns is what decoding the same bytes
with the same codec gives: a tool result decoded from those very bytes, and a signal from
which they were encoded (Avro writes every field of a signal exactly, a test checks
`decode(encode(signal)) == signal` for the folds' signals).

Only with the plain codec: under per-user keys (`streams/personal.py`) what a record decodes to
depends on the key store at the time it is read (a user forgotten in between), so those are
decoded again. A value the next step never reads here (its partition is another worker's, or
its bundle was dead-lettered) is dropped once `limit` newer ones wait, or once the values
waiting pass `limit_bytes` (records of up to `KAIZEN_MAX_RECORD_BYTES` each would otherwise let
the count alone hold gigabytes).
"""

from __future__ import annotations

from collections import OrderedDict

from kaizen.schemas.model import Event

LIMIT = 16_384  # events waiting: a few dozen batches of forwarded records
LIMIT_BYTES = 32 * 1024 * 1024  # their values' bytes (the decoded events take a few times more)


class Forwarded:
    """Decoded events by the exact bytes forwarded; each is taken once (a re-read decodes)."""

    def __init__(self, limit: int = LIMIT, limit_bytes: int = LIMIT_BYTES) -> None:
        self._limit, self._limit_bytes = limit, limit_bytes
        # ordered: the oldest goes first in O(1) (`next(iter(dict))` after many deletions from
        # its front walks over every deleted slot: a full memo made each keep O(limit))
        self._events: OrderedDict[bytes, Event] = OrderedDict()
        self._bytes = 0  # of the values waiting

    def keep(self, value: bytes, event: Event) -> None:
        events = self._events
        if value in events:  # the same bytes again (a duplicate event): counted once
            self._bytes -= len(value)
        events[value] = event
        self._bytes += len(value)
        while len(events) > self._limit or self._bytes > self._limit_bytes:
            oldest, _ = events.popitem(last=False)
            self._bytes -= len(oldest)

    def take(self, value: bytes) -> Event | None:
        event = self._events.pop(value, None)
        if event is not None:
            self._bytes -= len(value)
        return event

    def __len__(self) -> int:
        return len(self._events)
