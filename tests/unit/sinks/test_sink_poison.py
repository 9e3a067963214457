"""A batch whose flush keeps failing is written an event at a time: the events the store
refuses are handed over (to be dead-lettered) and the rest is written; a store that refuses
everything still fails the flush, keeping the batch."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from kaizen.sinks.base import Position, Sink


class PickySink(Sink[str]):
    """Refuses any batch holding a refused event, like a store rejecting one bad row."""

    def __init__(self, refused: set[str]) -> None:
        super().__init__(max_batch=100)
        self.refused, self.written = refused, list[str]()

    def setup(self) -> None:
        pass

    def write(self, batch: Sequence[str]) -> None:
        if self.refused & set(batch):
            raise ValueError(f"refused: {sorted(self.refused & set(batch))}")
        self.written += list(batch)


def test_one_bad_event_is_handed_over_and_the_rest_written() -> None:
    sink = PickySink({"bad"})
    for offset, event in enumerate(["a", "bad", "c"]):
        sink.add(event, ("t", 0, offset))
    with pytest.raises(ValueError):
        sink.flush()
    poisoned: list[tuple[str, Position]] = []
    offsets = sink.flush_isolating(lambda event, position, error: poisoned.append((event,
                                                                                   position)))
    assert offsets == {("t", 0): 3} and sink.written == ["a", "c"]
    assert poisoned == [("bad", ("t", 0, 1))] and sink.pending() == 0


def test_a_store_refusing_everything_still_fails_and_keeps_the_batch() -> None:
    sink = PickySink({"a", "b"})
    sink.add("a", ("t", 0, 0))
    sink.add("b", ("t", 0, 1))
    with pytest.raises(ValueError):
        sink.flush_isolating(lambda *args: None)
    assert sink.pending() == 2
