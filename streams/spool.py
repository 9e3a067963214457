"""A bounded on-disk queue of encoded records, for events that could not reach Kafka yet.

SQLite (stdlib) gives durable, ordered, crash-safe storage without a dependency. Rows are ordered
by the time they were emitted, so records purged from the producer at shutdown slot back in front of
newer spooled ones. When the spool is over its byte bound, the OLDEST rows are dropped (the newest
behaviour is the most useful to learn from), with a count and a rate-limited warning. Dropping
frees a tenth of the bound at once, so a full spool costs O(1) work per record, amortised.

Several Recorders of one agent use `name`, `name-1`, ...; the next Recorder to start adopts every
spool that no live Recorder holds, so nothing left by a dead one waits for a Recorder that never
comes back to its exact directory.
`put` runs on the agent's thread (the Recorder spools while the broker is down), so it only
queues the record in memory; a writer thread, woken by the first record queued, commits what is
queued in one transaction (what queued meanwhile goes in the next). One SQLite commit per record
cost 30 us at p50 and tens of milliseconds at p99 (WAL checkpoints, a busy disk) inside `emit()`.
What is queued is on disk one commit later, as librdkafka's memory queue holds records until the
broker has them; every read (`peek`) and `close` writes the queue first, so the order and the
contents are the same. An idle writer sleeps until woken: polling every 20 ms, each idle Recorder
took the GIL from the agent's thread 50 times a second (issue 14, the emit p99).
"""

from __future__ import annotations

import fcntl
import functools
import itertools
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

import structlog

from kaizen.errors import KaizenError
from kaizen.streams.limits import limiter

log = structlog.get_logger(__name__)
#: After dropping, the spool holds at most this share of its bound (room for the next records).
LOW_WATER = 0.9
#: How long the writer lets records gather once woken before it commits them: records are
#: spooled while the broker is down, and each commit takes the GIL from the agent's thread.
WRITE_LINGER_S = 0.05



@dataclass(frozen=True)
class SpooledRecord:
    order_key: int
    topic: str
    key: bytes | None
    value: bytes


def _size(record: SpooledRecord) -> int:
    return len(record.value) + len(record.key or b"")


#: Most rows per multi-row INSERT (5 parameters each; fewer where SQLite allows fewer).
_ROWS_PER_INSERT = 2000


@functools.cache
def _insert_rows(rows: int) -> str:
    return "INSERT OR IGNORE INTO spool VALUES " + ", ".join(["(?, ?, ?, ?, ?)"] * rows)


_INSERT = _insert_rows(1)


def _row(record: SpooledRecord) -> tuple[int, str, bytes | None, bytes, int]:
    return record.order_key, record.topic, record.key, record.value, _size(record)


class SpoolBusy(KaizenError, RuntimeError):
    """Another live Recorder owns this spool directory."""


class Spool:
    """Durable FIFO of records keyed by emit order; safe to share between threads, owned by one
    process at a time (a lock file says which)."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(directory / "lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise SpoolBusy(f"spool {directory} is in use by another Recorder") from None
        self.path = directory / "spool.sqlite3"
        self.max_bytes = max_bytes
        self.dropped = 0
        self._lock = threading.Lock()
        self._warn = limiter(__name__, every=30.0)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS spool (order_key INTEGER PRIMARY KEY, topic TEXT NOT NULL,"
            " key BLOB, value BLOB NOT NULL, size INTEGER NOT NULL)"
        )
        variables = self._db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        self._rows_per_insert = max(1, min(_ROWS_PER_INSERT, variables // 5))
        self._bytes, self._count = self._db.execute(
            "SELECT COALESCE(SUM(size), 0), COUNT(*) FROM spool"
        ).fetchone()
        self._queued: dict[int, SpooledRecord] = {}  # put, not yet written; counted already
        self._db_lock = threading.Lock()  # SQLite; taken before `_lock` when both are needed
        self._wake = threading.Condition(self._lock)
        self._closing = False
        self._writer = threading.Thread(target=self._write_loop, name="kaizen-spool", daemon=True)
        self._writer.start()

    def __len__(self) -> int:
        return int(self._count)

    @property
    def size_bytes(self) -> int:
        return int(self._bytes)

    def put(self, record: SpooledRecord) -> None:
        """Append (or re-insert) a record; drop the oldest ones if the bound is exceeded."""
        with self._lock:
            if record.order_key in self._queued:
                return
            self._queued[record.order_key] = record
            self._bytes += _size(record)
            self._count += 1
            over = self._bytes > self.max_bytes
            if not over and len(self._queued) == 1:
                self._wake.notify()
        if over:
            with self._db_lock:
                self._write_queued()
                with self._lock:
                    self._drop_oldest()

    def peek(self, limit: int, after: int = -1) -> list[SpooledRecord]:
        """The oldest records with an order key above `after`, oldest first."""
        with self._db_lock:
            self._write_queued()
            rows = self._db.execute(
                "SELECT order_key, topic, key, value FROM spool WHERE order_key > ?"
                " ORDER BY order_key LIMIT ?",
                (after, limit),
            ).fetchall()
        return [SpooledRecord(r[0], r[1], r[2], r[3]) for r in rows]

    def remove(self, order_key: int) -> None:
        """Forget a record once Kafka has acknowledged it."""
        with self._db_lock:  # no write in flight: the record is queued or on disk, not between
            with self._lock:
                queued = self._queued.pop(order_key, None)
                if queued is not None:
                    self._bytes -= _size(queued)
                    self._count -= 1
            row = self._db.execute(
                "DELETE FROM spool WHERE order_key = ? RETURNING size", (order_key,)
            ).fetchone()
            if row:
                with self._lock:
                    self._bytes -= row[0]
                    self._count -= 1

    def close(self) -> None:
        with self._lock:
            self._closing = True
            self._wake.notify()
        self._writer.join(10)
        with self._db_lock:
            self._write_queued()
            self._db.close()
            os.close(self._lock_fd)

    def _write_loop(self) -> None:
        while True:
            with self._lock:
                if self._closing:
                    return
                if not self._queued:  # `put` wakes it (first record), `close` too
                    self._wake.wait()
                    # let records gather: written as soon as woken, each small transaction
                    # took the GIL from the agent's thread again (the emit p99)
                    self._wake.wait(WRITE_LINGER_S)
            with self._db_lock:
                self._write_queued()

    def _write_queued(self) -> None:
        """Commit the queued records in one transaction (the caller holds `_db_lock`; `put`
        goes on meanwhile). On a SQLite error they stay queued (and counted) for the next
        attempt: never lost here."""
        with self._lock:
            queued, twice, twice_bytes = list(self._queued.values()), 0, 0
        if not queued:
            return
        try:
            self._db.execute("BEGIN")
            inserted = self._insert_many(queued)
            if inserted != len(queued):  # some already on disk (spooled twice): find which
                self._db.execute("ROLLBACK")
                self._db.execute("BEGIN")
                twice, twice_bytes = self._insert_one_by_one(queued)
            self._db.execute("COMMIT")
        except sqlite3.Error as error:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            log.error("spool write failed; records kept in memory, retrying",
                      queued=len(queued), reason=str(error), path=str(self.path))
            return
        with self._lock:
            for record in queued:
                self._queued.pop(record.order_key, None)
            self._count -= twice
            self._bytes -= twice_bytes

    def _insert_many(self, queued: list[SpooledRecord]) -> int:
        """Insert in multi-row statements; how many rows went in. sqlite3 releases the GIL for
        every statement step, and `executemany` steps once per row: each release handed the
        GIL to the agent's thread and took it back, a wake-up for the agent per record spooled
        (the broker-down emit p99, issue 14). A statement of up to `_ROWS_PER_INSERT` rows
        steps once."""
        inserted, rows = 0, self._rows_per_insert
        for start in range(0, len(queued), rows):
            chunk = queued[start:start + rows]
            values = list(itertools.chain.from_iterable(map(_row, chunk)))
            inserted += self._db.execute(_insert_rows(len(chunk)), values).rowcount
        return inserted

    def _insert_one_by_one(self, queued: list[SpooledRecord]) -> tuple[int, int]:
        """Insert, and count (and size) the records that were on disk already: counted once."""
        twice = twice_bytes = 0
        for record in queued:
            if not self._db.execute(_INSERT, _row(record)).rowcount:
                twice, twice_bytes = twice + 1, twice_bytes + _size(record)
        return twice, twice_bytes

    @classmethod
    def claim(cls, base: Path, name: str, max_bytes: int) -> Spool:
        """The first free spool of `name`, `name-1`, ... so several Recorders of one agent coexist;
        it adopts the records of every other free spool of `name`, so none is left undrained."""
        for index in range(1000):
            try:
                spool = cls(base / (name if index == 0 else f"{name}-{index}"), max_bytes)
            except SpoolBusy:
                continue
            spool.adopt_siblings(base, name)
            return spool
        raise SpoolBusy(f"no free spool for {name} under {base}")

    def adopt_siblings(self, base: Path, name: str) -> int:
        """Move the records of every spool of `name` that no live Recorder holds into this one
        (emit order is kept: rows are keyed by emit time); returns how many were adopted."""
        adopted = 0
        numbered = [d for d in base.glob(f"{name}-*") if d.name[len(name) + 1:].isdigit()]
        for sibling in [base / name, *sorted(numbered)]:
            if sibling == self.path.parent or not (sibling / "spool.sqlite3").exists():
                continue
            try:
                other = Spool(sibling, self.max_bytes)
            except SpoolBusy:
                continue
            try:
                adopted += self._take(other)
            finally:
                other.close()
        if adopted:
            log.info("adopted the records of other spools of this agent", adopted=adopted,
                     spool=str(self.path))
        return adopted

    def _take(self, other: Spool) -> int:
        if not len(other):
            return 0
        with self._db_lock, self._lock:  # the writer thread uses the same connection
            self._db.execute("ATTACH DATABASE ? AS other", (str(other.path),))
            try:
                self._db.execute("BEGIN")
                moved = self._db.execute(
                    "INSERT OR IGNORE INTO spool SELECT * FROM other.spool").rowcount
                self._db.execute("DELETE FROM other.spool")
                self._db.execute("COMMIT")
            finally:
                self._db.execute("DETACH DATABASE other")
            self._bytes, self._count = self._db.execute(
                "SELECT COALESCE(SUM(size), 0), COUNT(*) FROM spool").fetchone()
            if self._bytes > self.max_bytes:
                self._drop_oldest()
        return int(moved)

    def _drop_oldest(self) -> None:
        """Delete the oldest rows until the spool is under its low-water mark; the number of rows
        read is the number dropped, and one drop makes room for many records."""
        target = int(self.max_bytes * LOW_WATER)
        dropped = 0
        while self._bytes > target and self._count:
            average = max(1, self._bytes // self._count)
            batch = max(1, (self._bytes - target) // average + 1)
            sizes = self._db.execute(
                "DELETE FROM spool WHERE order_key IN"
                " (SELECT order_key FROM spool ORDER BY order_key LIMIT ?) RETURNING size",
                (batch,),
            ).fetchall()
            self._bytes -= sum(size for (size,) in sizes)
            self._count -= len(sizes)
            dropped += len(sizes)
        self.dropped += dropped
        self._warn.warning(
            "spool full: dropped oldest events", dropped=dropped, dropped_total=self.dropped,
            max_bytes=self.max_bytes, path=str(self.path),
        )
