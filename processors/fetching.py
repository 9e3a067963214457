"""faust's fetch loop, without a race of four tasks for every message.

faust's consumer hands each fetched message to the conductor through `Service.wait_first(
callback(message), suspend_flow.wait())`: four futures (the callback, the suspend event, the
consumer's stopped and crashed events), an `asyncio.wait` and three cancellations per message, so
that a rebalance suspending the flow does not wait for a callback blocked on a full stream buffer.
That race was a third of what a stock faust worker spends on a message doing nothing else
(py-spy of `bench/process.py`), more than the folds of a message cost. Together with the
stream's own per-event path (`processors/batches.py`) it was two thirds: faust alone takes
about 12k events/s here stock, 33k/s through these two (`kaizen process --faust-baseline lean`).

`LeanConsumer` runs the same loop but awaits the callback directly while the flow is not
suspended, and keeps faust's race for the messages that arrive while it is. A callback blocked
when a rebalance starts is cancelled with the fetcher (faust stops the fetcher on every
revocation), and the conductor then drops the message as faust does; the stream reader skips
whatever of an earlier generation still gets through (`processors/batches.py`). The loop is
otherwise faust 0.15's `Consumer._drain_messages`, line for line; a unit test compares the two
sources, so a faust upgrade that changes it fails there rather than in production.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import cast

import faust
from faust.transport import by_url
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TransportT
from mode import Service, ServiceT


class LeanConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer, with the fetch loop described in the module doc."""

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set

        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        flag_consumer_fetching = CONSUMER_FETCHING
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        suspended = self.suspend_flow.is_set  # kaizen

        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(flag_consumer_fetching)
                ait = cast(AsyncIterator, getmany(timeout=1.0))

                # Sleeping because sometimes getmany is called in a loop
                # never releasing to the event loop
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0

                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            # We have a gap in income messages
                            if gap > 1 and r_offset:
                                acks_enabled = acks_enabled_for(message.topic)
                                if acks_enabled:
                                    await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None:
                                if self._n_acked >= commit_every:
                                    self._n_acked = 0
                                    await self.commit()
                            if suspended():  # kaizen: faust's race only while suspended
                                await self.wait_first(
                                    callback(message), self.suspend_flow.wait()
                                )
                            else:  # kaizen
                                await callback(message)  # kaizen
                            set_read_offset(tp, offset)
                        else:
                            self.log.dev(
                                "DROPPED MESSAGE ROFF %r: k=%r v=%r",
                                offset,
                                message.key,
                                message.value,
                            )
                    unset_flag(flag_consumer_fetching)

        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(flag_consumer_fetching)


class LeanTransport(faust_aiokafka.Transport):
    """faust's aiokafka transport, making `LeanConsumer`s."""

    Consumer = LeanConsumer


class LeanApp(faust.App):
    """A faust app whose consumer is the `LeanConsumer` (on faust's aiokafka transport, the
    one `kafka://` brokers get; any other transport is left as faust makes it)."""

    def _new_transport(self) -> TransportT:
        if by_url(self.conf.broker_consumer[0]) is not faust_aiokafka.Transport:
            return super()._new_transport()
        return LeanTransport(self.conf.broker_consumer, self)
