"""The Recorder's on-disk spool: ordered, bounded (oldest dropped first), durable, owned once."""

from __future__ import annotations

import sqlite3
import sys
from contextlib import closing
from pathlib import Path

import pytest

from kaizen.streams.spool import Spool, SpoolBusy, SpooledRecord
from tests.integration.waiting import wait_for


def _record(order_key: int, size: int = 100) -> SpooledRecord:
    return SpooledRecord(order_key, "kaizen.episodes", b"ep", b"x" * size)


def test_records_come_back_in_emit_order_even_when_reinserted_late(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000)
    for key in (5, 9, 7):
        spool.put(_record(key))
    spool.put(_record(1))  # purged from the producer at close: older than what is spooled
    assert [r.order_key for r in spool.peek(10)] == [1, 5, 7, 9]
    assert [r.order_key for r in spool.peek(10, after=5)] == [7, 9]


def test_the_same_record_twice_is_stored_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000)
    spool.put(_record(3))
    spool.put(_record(3))
    assert len(spool) == 1


def test_over_the_bound_the_oldest_records_are_dropped_and_counted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1_000)
    for key in range(1, 21):  # 20 records of ~102 bytes against a 1,000 byte bound
        spool.put(_record(key))
    kept = [r.order_key for r in spool.peek(100)]
    assert kept == list(range(21 - len(kept), 21))
    assert spool.size_bytes <= 1_000
    assert spool.dropped == 20 - len(kept) > 0


def test_removed_records_are_gone_and_the_rest_survive_a_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000)
    for key in (1, 2, 3):
        spool.put(_record(key))
    spool.remove(2)
    spool.close()
    reopened = Spool(tmp_path, max_bytes=10_000)
    assert [r.order_key for r in reopened.peek(10)] == [1, 3]
    assert reopened.size_bytes == 2 * (100 + 2)


def test_a_spool_dir_has_one_owner_and_claim_finds_the_next_free_one(tmp_path: Path) -> None:
    first = Spool.claim(tmp_path, "acme.bot", 10_000)
    with pytest.raises(SpoolBusy):
        Spool(tmp_path / "acme.bot", 10_000)
    second = Spool.claim(tmp_path, "acme.bot", 10_000)
    assert second.path.parent.name == "acme.bot-1"
    first.close()
    assert Spool.claim(tmp_path, "acme.bot", 10_000).path.parent.name == "acme.bot"


def _on_disk(spool: Spool) -> int:
    import sqlite3

    with sqlite3.connect(spool.path) as db:
        return int(db.execute("SELECT COUNT(*) FROM spool").fetchone()[0])


def test_put_only_queues_and_the_writer_thread_puts_records_on_disk(tmp_path: Path) -> None:
    import time

    spool = Spool(tmp_path, max_bytes=10_000_000)
    for key in range(1, 501):
        spool.put(_record(key))
    assert len(spool) == 500
    deadline = time.monotonic() + 30
    while _on_disk(spool) < 500 and time.monotonic() < deadline:  # no read: the writer's work
        time.sleep(0.01)
    assert _on_disk(spool) == 500


def test_a_record_spooled_twice_counts_once_queued_or_on_disk(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000)
    spool.put(_record(1))
    spool.peek(10)  # now on disk
    spool.put(_record(1))  # purged and spooled again
    spool.put(_record(2))
    assert [r.order_key for r in spool.peek(10)] == [1, 2]
    assert (len(spool), spool.size_bytes) == (2, 2 * 102)
    spool.remove(1)
    spool.remove(2)
    assert (len(spool), spool.size_bytes, _on_disk(spool)) == (0, 0, 0)
    spool.close()


def _keys_on_disk(path: Path) -> list[int]:
    with closing(sqlite3.connect(path)) as db:  # another connection: what is committed
        return [key for (key,) in db.execute("SELECT order_key FROM spool ORDER BY order_key")]


def test_the_writer_sleeps_until_a_record_comes_and_then_commits_it(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000)
    try:
        for batch in ((4, 2), (9,)):  # woken from its sleep twice: no wake-up is lost
            wait_for("the writer asleep", lambda: _waiting_untimed(spool))
            for key in batch:
                spool.put(_record(key))
            wait_for("the records committed",
                     lambda b=batch: set(b) <= set(_keys_on_disk(spool.path)))
        assert _keys_on_disk(spool.path) == [2, 4, 9]
    finally:
        spool.close()


def _waiting_untimed(spool: Spool) -> bool:
    """The writer thread is in `Condition.wait` with no timeout (it polled every 20 ms)."""
    frame = sys._current_frames().get(spool._writer.ident or 0)  # noqa: SLF001
    while frame is not None and frame.f_code.co_name != "wait":
        frame = frame.f_back
    return frame is not None and frame.f_locals.get("timeout", 0) is None


def test_batches_larger_than_one_insert_statement_land_whole_in_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Queued records go in multi-row statements (at most `_ROWS_PER_INSERT` rows each): many
    statements' worth, with some on disk already, land once each, in emit order."""
    monkeypatch.setattr("kaizen.streams.spool._ROWS_PER_INSERT", 150)
    spool = Spool(tmp_path, max_bytes=10_000_000)
    early = [_record(key, size=10 + key % 7) for key in range(0, 1000, 7)]
    for record in early:
        spool.put(record)
    spool.peek(1)  # written
    for key in reversed(range(1000)):  # the early ones again, queued among new ones
        spool.put(_record(key, size=10 + key % 7))
    records = spool.peek(2000)
    assert [r.order_key for r in records] == list(range(1000))
    assert [len(r.value) for r in records] == [10 + key % 7 for key in range(1000)]
    assert len(spool) == 1000 and spool.size_bytes == sum(
        len(r.value) + len(r.key or b"") for r in records)
    spool.close()
