"""The events of an agent's topic in batches, taken straight off the channel's queue.

faust's `Stream.take_events` passes every event through the stream's per-event machinery before
it reaches the batch: a task switch (`sleep(0)`), the sensors, a buffer processor and the passive
drainer's task, about a sixth of what faust alone spends on an event, in a py-spy profile of
`bench/process.py`. The processor steps fold whole batches and ack each event themselves once its
batch is stored (`processors/app.py`), so they need none of it: `batches` takes the events the
conductor has put in the channel's queue, as many as are there up to `max_records`, and waits at
most `within` seconds for a batch to fill once its first event is in.

What the stream does for an event and this reader still does:
- an event of an earlier consumer generation (read before the last rebalance), or one that
  arrives while flow control is suspended (a rebalance under way), is acked and skipped: its
  partition is read again from the committed offset by whoever owns it now;
- the consumer tracks the event's message as unacked (`Consumer.track_message`), so that a
  rebalance or a stop waits until its batch is stored (`stream_wait_empty`);
- an error thrown into the channel is raised here, but for `StopAsyncIteration` (the channel
  closing as the worker stops), which ends the batches as it ends a stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import faust


async def batches(app: faust.App, stream: faust.Stream, max_records: int, within: float
                  ) -> AsyncIterator[list[faust.EventT]]:
    """Batches of the stream's events, in the order the conductor delivered them."""
    channel = aiter(stream.channel)  # subscribes the topic, as iterating the stream would
    assert isinstance(channel, faust.ChannelT)
    queue = channel.queue
    loop = asyncio.get_running_loop()
    while True:
        try:
            events = [await queue.get()]
        except StopAsyncIteration:  # the channel is closing (the worker stops), as for a stream
            return
        deadline = loop.time() + within
        while len(events) < max_records:
            if queue.qsize():
                events.append(queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                # a `get` cut by the timeout takes nothing off the queue (asyncio.Queue)
                async with asyncio.timeout(remaining):
                    events.append(await queue.get())
            except TimeoutError:
                break
            except StopAsyncIteration:  # closing: what was taken is read again after a restart
                return
        current = _current(app, events)
        if current:
            yield current


def _current(app: faust.App, events: list[faust.EventT]) -> list[faust.EventT]:
    """The events of the consumer's current generation, tracked from now on; the others are
    acked and dropped, as `Stream` drops them. Nothing awaits in here, so the flow and the
    generation cannot change in the middle: they are read once for the batch."""
    if not app.flow_control.is_active():
        stale, current = events, []
    else:
        generation = app.consumer_generation_id
        current = [event for event in events if event.message.generation_id == generation]
        stale = [event for event in events if event.message.generation_id != generation]
    for event in stale:
        event.ack()
    acking, consumer = app.topics.acking_topics, app.consumer
    for event in current:
        message = event.message
        if not message.tracked and message.topic in acking:
            message.tracked = True
            consumer.track_message(message)
    return current
