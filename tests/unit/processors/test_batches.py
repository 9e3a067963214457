"""The batch reader over a faust channel queue (`processors/batches.py`), with a real faust app
and no broker: events are put in the channel's queue as faust's conductor puts them."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from faust.types.tuples import ConsumerMessage

from kaizen.processors.batches import batches

TOPIC = "kaizen.test-batches"


def _app() -> faust.App:
    app = faust.App("t-batches", broker="kafka://127.0.0.1:1")
    app.flow_control.resume()  # as after an assignment
    return app


def _event(app: faust.App, offset: int, generation: int | None = None) -> faust.EventT:
    generation = app.consumer_generation_id if generation is None else generation
    message = ConsumerMessage(TOPIC, 0, offset, 0.0, 0, [], b"k", b"v%d" % offset, None,
                              generation_id=generation)  # as the consumer makes them
    message.incref()  # as the conductor does for each channel it delivers to
    return faust.Event(app, b"k", b"v%d" % offset, {}, message)


class Reader:
    """`batches` over a new channel of `app`; `queue()` subscribes it, `next()` is a batch."""

    def __init__(self, app: faust.App, max_records: int, within: float) -> None:
        self.app = app
        topic = app.topic(TOPIC, key_type=bytes, value_type=bytes, key_serializer="raw",
                          value_serializer="raw")
        stream = app.stream(topic)
        assert isinstance(stream, faust.Stream)
        self.it = batches(app, stream, max_records, within)
        self._first: asyncio.Future[list[faust.EventT]] | None = None

    async def queue(self) -> asyncio.Queue[faust.EventT]:
        """The channel's queue, once the reader has subscribed it and waits on it."""
        self._first = asyncio.ensure_future(anext(self.it))
        await asyncio.sleep(0)
        conductor: Any = self.app.topics
        [channel] = [t for t in conductor if t.is_iterator]
        await conductor._update_indices()  # as the conductor does as it subscribes
        queue: asyncio.Queue[faust.EventT] = channel.queue
        return queue

    async def next(self) -> list[faust.EventT]:
        if self._first is not None:
            first, self._first = self._first, None
            return await first
        return await anext(self.it)


def _offsets(batch: list[faust.EventT]) -> list[int]:
    return [event.message.offset for event in batch]


def test_batches_hold_at_most_max_records_in_order_and_a_partial_one_comes_after_within(
) -> None:
    async def run() -> list[list[int]]:
        app = _app()
        reader = Reader(app, 3, 0.05)
        queue = await reader.queue()
        for offset in range(7):
            queue.put_nowait(_event(app, offset))
        return [_offsets(await reader.next()) for _ in range(3)]  # the last: 1 of 3, in time

    assert asyncio.run(run()) == [[0, 1, 2], [3, 4, 5], [6]]


def test_a_stale_event_is_acked_and_dropped_and_the_rest_are_tracked() -> None:
    async def run() -> tuple[list[int], int, bool]:
        app = _app()
        reader = Reader(app, 10, 0.01)
        queue = await reader.queue()
        stale = _event(app, 0, generation=app.consumer_generation_id - 1)
        queue.put_nowait(stale)
        queue.put_nowait(_event(app, 1))
        batch = await reader.next()
        tracked = set(app.consumer.unacked)
        return _offsets(batch), stale.message.refcount, tracked == {batch[0].message}

    assert asyncio.run(run()) == ([1], 0, True)


def test_the_batches_end_when_faust_closes_the_channel() -> None:
    async def run() -> tuple[list[int], list[list[int]]]:
        app = _app()
        reader = Reader(app, 10, 0.01)
        queue = await reader.queue()
        queue.put_nowait(_event(app, 0))
        first = _offsets(await reader.next())
        queue._throw(StopAsyncIteration())  # type: ignore[attr-defined]  # `Actor.cancel`
        rest = [_offsets(batch) async for batch in reader.it]
        return first, rest

    assert asyncio.run(run()) == ([0], [])
