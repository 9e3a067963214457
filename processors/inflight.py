"""The records a processor step was folding when its process died, so that a record which kills
the process (nothing a `try` sees: `os._exit` or a segfault in a library, the kernel's OOM killer)
is dead-lettered after a few deaths instead of restart-looping `kaizen serve` for ever.

Before each fold the worker writes the positions (topic, partition, offset) it is folding to a
small file of its step in the processors' data dir, and empties the list once the fold has
returned. The positions are written as ranges, first and last offset per partition: a batch is a
run of each partition's log, and a thousand positions written twice a batch were a twentieth of
a worker's time. An offset in a range that was not in the batch (none is, bar gaps the log
itself has) would only carry a death nothing reads.

A list left non-empty at start means the last process died folding those records: each of them
has one more death. A batch that holds a record with a death is then folded in pieces, every
such record alone, so the next death names the one record; a record alone with
`max_deaths` deaths is dead-lettered instead of folded, and the partition goes on. A record that
folds is forgotten. Deaths outside a fold (the broker refusing outputs) count nothing.

The file only has to outlive the process, not the machine: writes are not fsynced, and a file
a machine crash left torn reads as no deaths. Workers that
share a data dir each lock their own file. A partition that moves to another worker after a death
starts its count anew there.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from kaizen.errors import KaizenError
from kaizen.processors.folding import Record

Position = tuple[str, int, int]
MAX_KEPT = 10_000  # positions with deaths remembered; the oldest are dropped past it


class ProcessDied(KaizenError, RuntimeError):  # noqa: N818 - the error type named in the dead letter
    """What the dead letter of a record that killed the processors says happened."""


def position(record: Record) -> Position:
    return record.topic, record.partition, record.offset


class DeathWatch:
    """Deaths per record position of one step, kept in `<directory>/inflight-<step>-<n>.json`."""

    def __init__(self, directory: Path, step: str, max_deaths: int = 3) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.step, self.max_deaths = step, max(1, max_deaths)
        self._lock, self.path = _claim(directory, step)
        self._inflight = False
        saved = _read(self.path)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        self._written = os.fstat(self._fd).st_size
        self.deaths: dict[Position, int] = {
            (str(t), int(p), int(o)): int(n) for t, p, o, n in saved.get("deaths", [])}
        for pos in _positions(saved):  # the last process died folding these
            self.deaths[pos] = self.deaths.get(pos, 0) + 1
        self._save([])

    def pieces(self, records: Sequence[Record]) -> list[list[Record]]:
        """The batch as it should be folded: whole, unless it holds a record that was in flight
        at a death; then every such record alone, the runs between them together."""
        if not any(position(r) in self.deaths for r in records):
            return [list(records)] if records else []
        out: list[list[Record]] = []
        run: list[Record] = []
        for record in records:
            if position(record) in self.deaths:
                out += [run, [record]] if run else [[record]]
                run = []
            else:
                run.append(record)
        return out + [run] if run else out

    def doomed(self, records: Sequence[Record]) -> int:
        """The deaths of a record folded alone once they reach `max_deaths` (dead-letter it
        instead of folding it), else 0."""
        if len(records) != 1:
            return 0
        deaths = self.deaths.get(position(records[0]), 0)
        return deaths if deaths >= self.max_deaths else 0

    def folding(self, records: Sequence[Record]) -> None:
        """Called just before the fold of `records`."""
        runs: dict[tuple[str, int], list[int]] = {}
        for record in records:
            run = runs.setdefault((record.topic, record.partition), [record.offset] * 2)
            run[0], run[1] = min(run[0], record.offset), max(run[1], record.offset)
        self._save([(topic, partition, first, last)
                    for (topic, partition), (first, last) in runs.items()])

    def folded(self, records: Sequence[Record]) -> None:
        """Called once the fold of `records` has returned (or they were dead-lettered)."""
        forgotten = [self.deaths.pop(position(r), None) for r in records]
        if any(n is not None for n in forgotten) or self._inflight:
            self._save([])

    def reason(self, deaths: int) -> str:
        return (f"{self.step}: the processors process died {deaths} times while folding this "
                "record (no exception to catch: os._exit, a signal, a crash or the OOM killer); "
                "dead-lettered so that its partition goes on")

    def _save(self, inflight: list[tuple[str, int, int, int]]) -> None:
        if len(self.deaths) > MAX_KEPT:
            for pos in list(self.deaths)[: len(self.deaths) - MAX_KEPT]:
                del self.deaths[pos]
        state = {"inflight_runs": inflight,
                 "deaths": [[*pos, n] for pos, n in self.deaths.items()]}
        data = json.dumps(state).encode()
        # One write at offset 0 over the last state, padded with spaces to its length (JSON
        # ignores them), so no truncate: a process dies before or after a write() syscall,
        # never inside it. Twice a batch, a temp file and a rename cost a twentieth of a worker.
        os.pwrite(self._fd, data.ljust(self._written), 0)
        self._written = max(self._written, len(data))
        self._inflight = bool(inflight)


def _claim(directory: Path, step: str) -> tuple[IO[str], Path]:
    """The first of this step's files no live worker holds, locked for this process's life."""
    for n in range(64):
        lock = open(directory / f"inflight-{step}-{n}.lock", "a")  # noqa: SIM115 - held for life
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        return lock, directory / f"inflight-{step}-{n}.json"
    raise RuntimeError(f"64 workers already hold the in-flight files of {step} in {directory}")


def _positions(saved: dict[str, Any]) -> list[Position]:
    """The positions in flight at the last death: runs [topic, partition, first, last], or the
    single positions an earlier version wrote."""
    runs = [(str(t), int(p), int(first), int(last))
            for t, p, first, last in saved.get("inflight_runs", [])]
    singles = [(str(t), int(p), int(o)) for t, p, o in saved.get("inflight", [])]
    return singles + [(t, p, o) for t, p, first, last in runs for o in range(first, last + 1)]


def _read(path: Path) -> dict[str, Any]:
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}
