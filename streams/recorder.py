"""The producer an agent fleet attaches to: emits episode events without ever blocking the agent.

`emit()` only queues the event in memory (about a microsecond); a sender thread redacts, encodes
and produces what is queued, oldest first. Done on the agent's thread, that work (~5 us, and a
p99 of 80-150 us on a busy two-core machine, whose scheduler preempts a longer call more often)
was the whole of an agent's emit cost (issue 14). What is queued counts as emitted; `flush`,
`close` and reading `stats` first send what is queued, on the caller's thread. Past
`MAX_QUEUED` events queued (the sender behind a faster agent), `emit()` sends the oldest one
itself, so memory stays bounded and no event is ever dropped for being queued.

Delivery: idempotent producer with acks=all, keyed by episode id so an episode stays ordered, and
retried forever by librdkafka while the broker is briefly away. A full producer queue is
backpressure, not an outage: the records it refuses wait, encoded, in the Recorder's backlog and
the sender produces them as the queue frees room (spooling every record that way, a SQLite insert,
a read, a delivery callback and a delete each on background threads, took the GIL from the agent's
thread often enough to make that path's emit p99 145 us; issue 14). When the broker is known to
be down, or the backlog passes `MAX_BACKLOG_BYTES`, or the Recorder closes with records
undelivered, the records go to the on-disk `Spool` and a background pump delivers them, in emit
order, once the broker answers again. While the backlog or the spool holds anything, new records
queue behind it, so order is kept.

Two producers: the one `emit()` uses reports deliveries only when they fail
(`delivery.report.only.error`), since a Python callback per delivered record, served on the pump
thread, took a quarter of an agent's emit rate (issue 14); `stats.delivered` is counted from what
was produced, what failed and what is still pending. The spool is drained through a second producer
with a report per record, because a spooled record leaves the spool only once the broker has it;
the drain starts when the first producer has nothing pending, so live records are never overtaken.

Nothing here raises into the agent: an event over `max_event_bytes` is cut to fit (`limits`), one
that cannot be encoded or produced at all is counted in `stats.failed` and logged (rate-limited),
and the delivery thread survives any record, so no later Recorder waits behind a bad one.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from kaizen.schemas import model
from kaizen.schemas.codec import Codec
from kaizen.schemas.scope import check_scope
from kaizen.streams.clients import login_of, producer_config
from kaizen.streams.episode import Episode
from kaizen.streams.limits import MAX_EVENT_BYTES, fit_event, limiter
from kaizen.streams.redaction import Redactor
from kaizen.streams.snapshot_log import SnapshotTail
from kaizen.streams.spool import Spool, SpooledRecord

log = structlog.get_logger(__name__)
_warn = limiter(__name__)

_DOWN_CODES = {KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT}  # noqa: SLF001
_PURGED = {KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT}  # noqa: SLF001
_DRAIN_BATCH = 2000
#: Events queued for the sender; past it, each `emit()` sends the oldest one itself.
MAX_QUEUED = 20_000
#: Bytes of encoded records waiting for room in the producer's full queue; past it, they are
#: spooled. A sixteenth of what librdkafka's own queue holds by default (1 GiB).
MAX_BACKLOG_BYTES = 64 * 1024 * 1024
#: How long the sender lets events gather once woken (what librdkafka's `linger.ms` is to it).
SEND_LINGER_S = 0.005
#: The same while the broker is down: the events go to the spool, where no consumer waits for
#: them, and each round of the sender is a stretch in which it holds the GIL the agent's thread
#: wants (the broker-down emit p99, issue 14).
SPOOL_LINGER_S = 0.05


@dataclass
class RecorderStats:
    """Counters a user can watch; every emitted record ends up delivered, spooled or failed."""

    emitted: int = 0
    delivered: int = 0
    failed: int = 0
    spooled: int = 0
    dropped: int = 0
    redacted: Counter[str] = field(default_factory=Counter)  # placeholders written, by kind
    truncated: int = 0  # events cut to `max_event_bytes` (texts end with a marker)


class Recorder:
    """Attach to an agent: `with recorder.episode(task) as ep: ...`. Thread-safe."""

    def __init__(
        self,
        agent: str,
        tenant: str,
        *,
        bootstrap: str,
        topic: str,
        spool_dir: Path,  # parent/name: the first free of name, name-1, ... is used
        spool_max_bytes: int = 256 * 1024 * 1024,
        snapshot_id: str | None = None,
        agent_version: str = "",
        codec: Codec | None = None,
        producer_overrides: dict[str, Any] | None = None,
        follow_snapshots: str | None = None,
        redactor: Redactor | None = None,  # None: the built-in detectors
        max_event_bytes: int = MAX_EVENT_BYTES,
    ) -> None:
        check_scope(tenant, agent)  # a bad name is a configuration error: say so at attach time
        self.agent = agent
        self.tenant = tenant
        self.topic = topic
        self.agent_version = agent_version
        self.snapshot_id = snapshot_id  # the active behavior snapshot stamped on every event
        self._stats = RecorderStats()
        self._produced_live = 0  # records handed to the live producer (delivered once acked)
        self._failed_live = 0  # of those, reported failed or purged
        self._delivered_spooled = 0
        self._purged_key = 0  # the order key of the last live record spooled back at close
        self.max_event_bytes = max_event_bytes
        self._codec = codec or Codec()
        self._redactor = redactor or Redactor.default()
        self._spool = Spool.claim(spool_dir.parent, spool_dir.name, spool_max_bytes)
        self._queued: deque[model.EpisodeEvent] = deque()  # emitted, not yet sent
        self._send_lock = threading.Lock()  # one event is sent at a time, in queue order
        self._backlog: deque[SpooledRecord] = deque()  # refused by the full producer queue
        self._backlog_bytes = 0
        self._queued_event = threading.Event()  # set by emit(): something to send
        self._broker_down = False
        self._last_order_key = 0
        self._drained_upto = -1
        self._closed = threading.Event()
        config = producer_config(bootstrap, error_cb=self._on_error, **(producer_overrides or {}))
        self._producer = Producer({**config, "delivery.report.only.error": True,
                                   "on_delivery": self._on_live_failure})
        self._drainer = Producer(config)
        self._pump = threading.Thread(target=self._pump_loop, name="kaizen-recorder", daemon=True)
        self._pump.start()
        self._sender = threading.Thread(target=self._send_loop, name="kaizen-recorder-send",
                                        daemon=True)
        self._sender.start()
        self._tail = None
        if follow_snapshots:  # stamp events with the scope's active snapshot as it changes
            self._tail = SnapshotTail(bootstrap, follow_snapshots, self._on_snapshot,
                                      client=login_of(producer_overrides)).start()

    # --- the agent-facing API ----------------------------------------------------------------

    def episode(
        self,
        task: str,
        *,
        user: str | None = None,
        task_type: str = "",
        episode_id: str | None = None,
        occurred_at: int | None = None,
        task_id: str = "",
        agent_version: str | None = None,
    ) -> Episode:
        """A handle for one task attempt; use it as a context manager. `task_id` names the task
        across attempts (learning counts distinct tasks); `agent_version` overrides the
        Recorder's for this episode (an import of runs by several models)."""
        return Episode(
            self,
            task,
            user=user,
            task_type=task_type,
            episode_id=episode_id,
            occurred_at=occurred_at,
            task_id=task_id,
            agent_version=agent_version,
        )

    def _on_snapshot(self, offset: int, event: model.SnapshotEvent) -> None:
        if (event.tenant, event.agent) == (self.tenant, self.agent) and event.action in (
            "activated", "rolled_back"
        ):
            self.snapshot_id = event.snapshot_id

    @property
    def stats(self) -> RecorderStats:
        """The counters, once what is queued is sent, with `delivered` brought up to date."""
        self._send_queued()
        pending = len(self._producer)
        self._stats.delivered = (self._delivered_spooled + self._produced_live - self._failed_live
                                 - pending)
        return self._stats

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def emit(self, event: model.EpisodeEvent) -> None:
        """Queue one event for the sender thread (redacted, encoded and produced there). Never
        blocks on the network and never raises: an event that cannot be sent at all is counted
        in `stats.failed` and logged."""
        if self._closed.is_set():
            self._count_failed("event emitted after close; dropped", None, event.event_id)
            return
        queued = self._queued
        queued.append(event)
        if len(queued) > MAX_QUEUED:  # the sender is behind: send the oldest here
            self._send_next()
        elif not self._queued_event.is_set():
            self._queued_event.set()

    def _send_queued(self) -> None:
        """Send everything queued, on the calling thread (the sender may be sending too), and
        what of the backlog the producer has room for."""
        while self._queued:
            self._send_next()
        if self._backlog:
            with self._send_lock:
                self._produce_backlog()

    def _send_next(self) -> None:
        """Send the oldest queued event; under the send lock, so events go out in queue order."""
        with self._send_lock:
            try:
                event = self._queued.popleft()
            except IndexError:  # another thread sent the last one
                return
            try:
                self._send(event)
            except Exception as error:  # noqa: BLE001 - a bug here must not stop the others
                self._count_failed("event could not be sent; dropped", error, event.event_id)

    def _send(self, event: model.EpisodeEvent) -> None:
        """Redact, encode and produce one event (or spool it); the caller holds the send lock."""
        found: Counter[str] = Counter()
        try:
            event = self._redactor.redact_event(event, found)
            value = self._encode(event)
        except Exception as error:  # noqa: BLE001 - whatever the codec says, the agent goes on
            self._count_failed("event cannot be encoded; dropped", error, event.event_id)
            return
        if value is None:
            return
        key = event.episode_id.encode()
        stats = self._stats
        stats.emitted += 1
        if found:
            if found.pop("truncated", 0):  # cut by the redactor before any regex
                stats.truncated += 1
            stats.redacted.update(found)
        record = SpooledRecord(self._next_order_key(), self.topic, key, value)
        if self._backlog and not self._produce_backlog():
            self._hold(record)
        elif self._broker_down or len(self._spool):
            self._to_spool(record)
        elif not self._produce(record):
            self._hold(record)

    def _produce(self, record: SpooledRecord) -> bool:
        """Hand one record to the live producer; False if its queue is full (nothing lost)."""
        try:
            self._producer.produce(record.topic, record.value, record.key)
            self._produced_live += 1
        except BufferError:
            return False
        except KafkaException as error:
            self._count_failed("event refused by the producer; dropped", error, record.key)
        # no poll here: delivery callbacks run on the pump thread, which polls all the time
        return True

    def _produce_backlog(self) -> bool:
        """Produce the backlog, oldest first, while the producer has room; True once it is
        empty. The caller holds the send lock."""
        backlog = self._backlog
        while backlog:
            if not self._produce(backlog[0]):
                return False
            self._backlog_bytes -= len(backlog.popleft().value)
        return True

    def _hold(self, record: SpooledRecord) -> None:
        """Keep a record the full producer refused, in order; past `MAX_BACKLOG_BYTES` the
        broker is not keeping up, and the whole backlog goes to the spool (new records follow it
        there)."""
        self._backlog.append(record)
        self._backlog_bytes += len(record.value)
        if self._backlog_bytes > MAX_BACKLOG_BYTES:
            self._spool_backlog()

    def _spool_backlog(self) -> None:
        while self._backlog:
            self._to_spool(self._backlog.popleft())
        self._backlog_bytes = 0

    def _encode(self, event: model.EpisodeEvent) -> bytes | None:
        """The event's bytes, cut to `max_event_bytes` if needed (counted); None if it cannot
        be made to fit (counted as failed)."""
        value = self._codec.encode(event)
        if len(value) <= self.max_event_bytes:
            return value
        fitted = fit_event(event, self.max_event_bytes, self._codec.encode)
        if fitted is None:
            self._count_failed("event too large even when cut; dropped", None, event.event_id)
            return None
        self._stats.truncated += 1
        _warn.warning("oversize event cut to fit", bytes=len(value), limit=self.max_event_bytes,
                      event_id=event.event_id, truncated_total=self._stats.truncated)
        return fitted[1]

    def _count_failed(self, reason: str, error: BaseException | None, what: object) -> None:
        self._stats.failed += 1
        _warn.warning(reason, error=repr(error) if error else None, record=what,
                      failed_total=self._stats.failed)

    def flush(self, timeout: float = 10.0) -> int:
        """Wait until everything emitted is acknowledged; returns how many records are still
        pending (in memory or in the spool) when the timeout runs out."""
        deadline = time.monotonic() + timeout
        self._send_queued()
        while time.monotonic() < deadline:
            self._producer.flush(min(0.2, max(0.0, deadline - time.monotonic())))
            self._drainer.flush(min(0.2, max(0.0, deadline - time.monotonic())))
            self._send_queued()  # the backlog, into the room the flush made
            if not self._pending():
                return 0
        return self._pending()

    def _pending(self) -> int:
        return len(self._backlog) + len(self._producer) + len(self._spool)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what can be delivered in `timeout`; spool the rest for the next Recorder."""
        if self._closed.is_set():
            return
        if self._tail is not None:
            self._tail.stop()
        pending = self.flush(timeout)
        self._closed.set()
        self._queued_event.set()
        self._sender.join(timeout=5)
        self._send_queued()  # emitted while closing
        with self._send_lock:
            self._spool_backlog()  # newer than every record in the live producer
        pending = len(self._producer) + len(self._spool)
        self._pump.join(timeout=5)
        if pending:
            # every record still in the live producer was emitted before every spooled one (it
            # went live while the spool was empty): spooled back under keys just below them
            first = self._spool.peek(1)
            lowest = first[0].order_key if first else time.time_ns()
            self._purged_key = lowest - len(self._producer) - 1
            for producer in (self._producer, self._drainer):
                producer.purge(in_queue=True, in_flight=False, blocking=True)
                producer.poll(0)
                producer.flush(1.0)
            log.warning("recorder closed with undelivered events; kept in the spool",
                        spooled=len(self._spool), spool=str(self._spool.path))
        self._stats.spooled = len(self._spool)
        self._spool.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- delivery machinery -------------------------------------------------------------------

    def _next_order_key(self) -> int:
        """Emit order across processes: wall-clock ns, forced strictly increasing."""
        self._last_order_key = max(self._last_order_key + 1, time.time_ns())
        return self._last_order_key

    def _to_spool(self, record: SpooledRecord) -> None:
        before = self._spool.dropped
        self._spool.put(record)
        self._stats.dropped += self._spool.dropped - before
        self._stats.spooled = len(self._spool)

    def _on_error(self, error: KafkaError) -> None:
        if error.code() in _DOWN_CODES and not self._broker_down:
            log.warning("kafka unreachable; spooling events to disk", reason=error.str())
            self._broker_down = True
        elif error.fatal():
            log.error("fatal producer error", reason=error.str())

    def _on_live_failure(self, error: KafkaError, message: Message) -> None:
        """The live producer reports only failures (`delivery.report.only.error`), so `error`
        is never None here; a record purged at close is spooled."""
        self._failed_live += 1
        if error.code() in _PURGED:  # undelivered at close: keep it for the next Recorder
            self._purged_key += 1
            self._to_spool(SpooledRecord(self._purged_key, message.topic() or self.topic,
                                         message.key(), message.value() or b""))
            return
        self._delivery_failed(error, message)

    def _on_spooled_delivery(self, order_key: int, error: KafkaError | None,
                             message: Message) -> None:
        """A spooled record leaves the spool once the broker has it; purged, it stays."""
        if error is None:
            self._delivered_spooled += 1
            self._spool.remove(order_key)
            self._broker_down = False
        elif error.code() not in _PURGED:
            self._delivery_failed(error, message)

    def _delivery_failed(self, error: KafkaError, message: Message) -> None:
        self._stats.failed += 1
        log.error("event delivery failed", reason=error.str(), topic=message.topic(),
                  key=message.key(), retriable=error.retriable())

    def _send_loop(self) -> None:
        """Send what `emit()` queues, woken by it; no event or error may end this thread."""
        while not self._closed.is_set():
            if not self._queued_event.wait(1.0):
                continue
            # let a batch gather: woken for every event, this thread took the GIL from the
            # agent's thread each time it released it, in many short stalls (the emit p99)
            self._closed.wait(SPOOL_LINGER_S if self._broker_down else SEND_LINGER_S)
            self._queued_event.clear()  # before sending: an event queued from now on wakes it
            self._send_queued()  # `_send_next` counts and logs whatever an event raises
            if self._backlog:  # the producer was full: try again after the next linger
                self._queued_event.set()

    def _pump_loop(self) -> None:
        """Deliver the spool in the background; no record or error may end this thread."""
        while not self._closed.is_set():
            try:
                self._producer.poll(0.025)
                self._drainer.poll(0.025)
                if self._broker_down:
                    self._probe_broker()
                elif len(self._spool):
                    self._drain_spool()
            except Exception as error:  # noqa: BLE001 - logged; the next round retries
                _warn.warning("spool delivery round failed; retrying", error=repr(error))
                self._closed.wait(0.5)

    def _probe_broker(self) -> None:
        try:
            self._producer.list_topics(self.topic, timeout=1.0)
        except KafkaException:
            return
        log.info("kafka reachable again; delivering the spool", spooled=len(self._spool))
        self._broker_down = False

    def _drain_spool(self) -> None:
        if self._backlog or len(self._producer) or len(self._drainer) > _DRAIN_BATCH:
            return  # live records still pending go first
        for record in self._spool.peek(_DRAIN_BATCH, after=self._drained_upto):
            value: bytes | None = record.value
            if len(record.value) > self.max_event_bytes:  # left by an older Recorder: cut it now
                value = self._refit(record)
            try:
                if value is not None:
                    self._drainer.produce(
                        record.topic, value, record.key,
                        on_delivery=partial(self._on_spooled_delivery, record.order_key),
                    )
            except BufferError:
                return
            except KafkaException as error:
                self._count_failed("spooled record refused by the producer; dropped", error,
                                   record.order_key)
                value = None
            if value is None:
                self._spool.remove(record.order_key)
            self._drained_upto = record.order_key

    def _refit(self, record: SpooledRecord) -> bytes | None:
        """A spooled record over the size bound, decoded and cut to fit; None if it is not an
        episode event or cannot fit (counted as failed)."""
        try:
            event = self._codec.decode(record.value)
        except Exception as error:  # noqa: BLE001 - any undecodable bytes
            self._count_failed("spooled record cannot be decoded; dropped", error, record.order_key)
            return None
        if not isinstance(event, model.EpisodeEvent):
            self._count_failed("spooled record is not an episode event; dropped", None,
                               record.order_key)
            return None
        return self._encode(event)
