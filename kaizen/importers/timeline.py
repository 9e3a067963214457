"""Put the episodes of several files on one time line, in the order they really happened.

Logs that carry times (τ²-bench start/end and message timestamps) keep them. Logs that do not
(ReAct text, τ-bench v1, plain chat trajectories) get synthetic, deterministic times: the first
starts at the base time, each later one `EVENT_SPACING_MS` after everything placed before it on
the command line, episodes one after the other, one event every `EVENT_SPACING_MS`. So untimed
files import in the order given (not stacked at one base time), timed files in their own order,
and the same command gives the same times. Every event time of a placed episode is explicit and
never decreases within the episode.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kaizen.importers.formats import PARSERS, detect_format
from kaizen.importers.model import EVENT_SPACING_MS, ImportedEpisode, ReadError, Skipped


@dataclass(frozen=True)
class Placed:
    """An episode with explicit times, and the file (index on the command line) it came from."""

    episode: ImportedEpisode
    file_index: int


def ordered(files: Sequence[Iterable[ImportedEpisode | Skipped]], base_ms: int
            ) -> tuple[list[Placed], list[tuple[int, Skipped]]]:
    """All episodes of `files` sorted by start time (ties: file order, then position in the
    file), and what each file skipped."""
    placed: list[Placed] = []
    skipped: list[tuple[int, Skipped]] = []
    cursor: int | None = None  # the end of everything placed so far
    for index, items in enumerate(files):
        for item in items:
            if isinstance(item, Skipped):
                skipped.append((index, item))
                continue
            if item.started_ms is not None:
                item = place(item, item.started_ms)
            else:
                item = place(item, base_ms if cursor is None else cursor + EVENT_SPACING_MS)
            assert item.ended_ms is not None  # place() sets every time
            cursor = item.ended_ms if cursor is None else max(cursor, item.ended_ms)
            placed.append(Placed(item, index))
    placed.sort(key=lambda p: p.episode.started_ms or 0)  # stable: file and position order stay
    return placed, skipped


def place(episode: ImportedEpisode, start_ms: int) -> ImportedEpisode:
    """`episode` with every event time explicit: the log's own where it has them, otherwise one
    `EVENT_SPACING_MS` after the previous event; never earlier than the previous event."""
    timed = episode.started_ms is not None
    clock = _Clock(start_ms, synthetic=not timed)
    steps = []
    for step in episode.steps:
        called = clock.at(step.called_ms if timed else None)
        answered = clock.at(step.answered_ms if timed else None)
        steps.append(dataclasses.replace(step, called_ms=called, answered_ms=answered))
    ended = clock.at(episode.ended_ms if timed else None)
    return dataclasses.replace(episode, started_ms=start_ms, ended_ms=ended, steps=steps)


class _Clock:
    def __init__(self, start: int, synthetic: bool) -> None:
        self.last, self.synthetic = start, synthetic

    def at(self, given: int | None) -> int:
        step = EVENT_SPACING_MS if self.synthetic else 1
        self.last = max(self.last, given) if given is not None else self.last + step
        return self.last


def plan_files(names: Sequence[str], requested: str) -> list[tuple[Path, str]]:
    """(path, format) per file; ValueError naming the files that are missing or unreadable."""
    missing = [name for name in names if not Path(name).is_file()]
    if missing:
        raise ValueError(f"no such file: {', '.join(missing)}")
    return [(Path(name), detect_format(Path(name), requested)) for name in names]


def load_files(plan: Sequence[tuple[Path, str]], base_ms: int
               ) -> tuple[list[Placed], list[ReadError], dict[str, int]]:
    """Every episode of the files on one time line, the files' read errors, and the count of
    the other skipped entries per reason."""
    placed, skipped = ordered([PARSERS[fmt](path) for path, fmt in plan], base_ms)
    errors = [item for _, item in skipped if isinstance(item, ReadError)]
    reasons: dict[str, int] = {}
    for _, item in skipped:
        if not isinstance(item, ReadError):
            reasons[item.reason] = reasons.get(item.reason, 0) + 1
    return placed, errors, reasons
