"""Issue 13: a full spool cost up to 10,000 rows of work per emit and one warning per drop.

The work is measured in SQLite virtual-machine steps (the progress handler counts them), which
is what the time is made of and does not depend on the machine's load.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from structlog.testing import capture_logs

from kaizen.streams.spool import Spool, SpooledRecord

ROW = b"x" * 200


def _steps_per_put(spool: Spool, db: sqlite3.Connection, first_key: int, puts: int) -> float:
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    # Under the spool's own SQLite lock: the writer thread may be inside a step of the same
    # connection, holding its mutex, and the handler then waits for the GIL this thread holds
    # (a deadlock seen once in a loaded run).
    with spool._db_lock:  # noqa: SLF001
        db.set_progress_handler(tick, 10)
    for key in range(first_key, first_key + puts):
        spool.put(SpooledRecord(key, "t", b"k", ROW))
    with spool._db_lock:  # noqa: SLF001
        db.set_progress_handler(None, 0)
    return steps[0] / puts


def test_a_full_spool_does_constant_work_per_emit_and_warns_rarely(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=5000 * len(ROW))
    db = spool._db  # noqa: SLF001 - the connection whose steps are counted
    empty = _steps_per_put(spool, db, 1, 2000)
    with capture_logs() as logs:
        _steps_per_put(spool, db, 10_000, 4000)  # fills the spool, so drops begin
        full = _steps_per_put(spool, db, 20_000, 4000)  # every put now drops something
    warnings = [e for e in logs if e["log_level"] == "warning"]

    assert spool.dropped >= 4000 and spool.size_bytes <= spool.max_bytes
    kept = spool.peek(10_000)
    assert kept[-1].order_key == 23_999 and len(kept) == len(spool)  # newest kept, oldest dropped
    assert full < 10 * max(empty, 1.0), (empty, full)
    assert 1 <= len(warnings) <= 5, len(warnings)
    assert warnings[-1]["dropped_total"] <= spool.dropped
    spool.close()
