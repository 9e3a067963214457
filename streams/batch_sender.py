"""Batches of records sent and acknowledged through librdkafka: the processors' outputs.

The processors send their outputs here instead of through faust's producer.

faust's producer is aiokafka, in Python on the worker's one event-loop thread: every output
record cost more there than folding the event that made it (about a fifth of a worker's time in
a profile of `bench/process.py`). librdkafka builds and sends the requests on its own threads.

    sender = BatchSender(bootstrap, login)
    await sender.send(batch.outgoing)    # every record acknowledged (acks=all), or it raises
    batch.commit()                        # only then are the states stored

Records keep the order they are given in per partition (an idempotent producer). Keys go to the
partition faust's producer chose for them (`murmur2_random`: the Java client's murmur2, which
aiokafka's default partitioner also uses), so a worker of this version and one of an earlier
version agree on where a curation key or an agent's tool results live; a record that names its
partition (a table's changelog write) goes there.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from kaizen.errors import KaizenError
from kaizen.streams.clients import producer_config

SEND_TIMEOUT_S = 60.0  # a batch not acknowledged by then: the worker exits and reads it again


class OutputsRefused(KaizenError, RuntimeError):
    """The broker did not take a batch's records (a worker exits before acking the batch)."""


class Outgoing(Protocol):
    """A record to send (`processors.folding.Outgoing`, `processors.app.ChangelogWrite`); a
    value None is a tombstone."""

    @property
    def topic(self) -> str: ...

    @property
    def key(self) -> bytes: ...

    @property
    def value(self) -> bytes | None: ...


_ANY_PARTITION = -1  # librdkafka's RD_KAFKA_PARTITION_UA: the partitioner chooses


class BatchSender:
    """One producer per worker, shared by its steps (thread-safe). `login`: the SASL settings
    for librdkafka (`KafkaLogin.librdkafka()`), empty for an open broker."""

    def __init__(self, bootstrap: str, login: Mapping[str, Any] | None = None,
                 timeout_s: float = SEND_TIMEOUT_S) -> None:
        self._bootstrap, self._login, self._timeout_s = bootstrap, dict(login or {}), timeout_s
        self._closed = threading.Event()
        self._made: Producer | None = None  # made at the first send: an app built, never run,
        # (tests, `kaizen process --help`) starts no librdkafka threads

    @property
    def _producer(self) -> Producer:
        if self._made is None:
            self._made = Producer(producer_config(
                self._bootstrap, partitioner="murmur2_random", **{"linger.ms": 1},
                **self._login))
            threading.Thread(target=self._poll, name="kaizen-outputs", daemon=True).start()
        return self._made

    async def send(self, outgoing: Sequence[Outgoing]) -> None:
        """Send in order and wait until the broker has acknowledged every record."""
        await (await self.submit(outgoing))

    async def submit(self, outgoing: Sequence[Outgoing]) -> asyncio.Future[None]:
        """Queue the records in order; the future is done once the broker has acknowledged
        every one of them, and raises `OutputsRefused` if one failed or `timeout_s` ran out.
        Returns as soon as librdkafka holds them, so the caller can fold on meanwhile."""
        loop = asyncio.get_running_loop()
        acknowledged: asyncio.Future[None] = loop.create_future()
        if not outgoing:
            acknowledged.set_result(None)
            return acknowledged
        waiting = _Acknowledgements(loop, acknowledged, len(outgoing))
        producer = self._producer
        for item in outgoing:
            while True:
                try:
                    producer.produce(item.topic, item.value, item.key,
                                     getattr(item, "partition", _ANY_PARTITION),
                                     on_delivery=waiting.one)
                    break
                except BufferError:  # the local queue is full: the poller frees it
                    await asyncio.sleep(0.01)
                except KafkaException as error:  # refused at once (e.g. over the size limit)
                    raise OutputsRefused(f"a record for {item.topic} was refused: "
                                         f"{error.args[0].str()}") from error
        loop.call_later(self._timeout_s, waiting.time_out)
        return acknowledged

    def _poll(self) -> None:
        """Serve delivery reports on a thread of its own: the event loop never blocks."""
        producer = self._made
        while producer is not None and not self._closed.is_set():
            producer.poll(0.1)

    def close(self) -> None:
        """Stop the poller and the producer (a worker exits instead; tests and tools close)."""
        self._closed.set()
        self._made = None


class _Acknowledgements:
    """The delivery reports of one batch, from the poller thread to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, done: asyncio.Future[None],
                 expected: int) -> None:
        self._loop, self._done, self._left = loop, done, expected
        self._failures: list[KafkaError] = []
        self._expected = expected

    def one(self, error: KafkaError | None, message: Message) -> None:  # the poller thread
        if error is not None:
            self._failures.append(error)
        self._left -= 1
        if self._left == 0:
            self._loop.call_soon_threadsafe(self._settle)

    def time_out(self) -> None:
        if not self._done.done():
            self._done.set_exception(OutputsRefused(
                f"{self._left} of {self._expected} records not acknowledged in time"))

    def _settle(self) -> None:
        if self._done.done():
            return
        if self._failures:
            self._done.set_exception(OutputsRefused(
                f"the broker did not take {len(self._failures)} of {self._expected} records: "
                f"{self._failures[0].str()}"))
        else:
            self._done.set_result(None)
