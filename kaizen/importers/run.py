"""Emit imported episodes through a Recorder (`kaizen import` is `kaizen.cli.imports`).

Event times: an episode placed on a time line (`kaizen.importers.timeline`) carries its own;
otherwise they are synthetic and deterministic, the n-th event of an import at
`base_time_ms + n * EVENT_SPACING_MS`. Importing the same input again gives the same times (and
the same episode ids, which the parsers derive from the source). Nothing here reads the wall clock.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from tqdm import tqdm

from kaizen.importers.model import EVENT_SPACING_MS, ImportedEpisode, Skipped

__all__ = ["EVENT_SPACING_MS", "EpisodeRecorder", "ImportSummary", "emit_episode", "event_times",
           "import_episodes", "parse_base_time"]
DEFAULT_BASE_TIME = "2024-01-01T00:00:00+00:00"


class EpisodeHandle(Protocol):
    """The part of `kaizen.streams.episode.Episode` an import uses."""

    def start(self) -> None: ...

    def tool_call(
        self,
        tool_name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        call_id: str | None = None,
        occurred_at: int | None = None,
    ) -> str: ...

    def tool_result(
        self,
        tool_name: str,
        *,
        ok: bool = True,
        error: str | None = None,
        output: str | None = None,
        latency_ms: float = 0.0,
        call_id: str | None = None,
        occurred_at: int | None = None,
    ) -> None: ...

    def end(
        self,
        success: bool | None = None,
        *,
        outcome: str | None = None,
        reward: float | None = None,
        occurred_at: int | None = None,
    ) -> None: ...


class EpisodeRecorder(Protocol):
    """The part of the Recorder an import uses: the seam unit tests plug a recording double into."""

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
    ) -> EpisodeHandle: ...


@dataclass
class ImportSummary:
    """What an import emitted and left out; `render()` is the terminal report."""

    episodes: int = 0
    events: int = 0
    tool_calls: int = 0
    tool_errors: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    first_event_ms: int | None = None
    last_event_ms: int | None = None

    def merge(self, other: ImportSummary) -> ImportSummary:
        """The summary of two imports together (one per file of a command)."""
        times = [t for t in (self.first_event_ms, other.first_event_ms) if t is not None]
        ends = [t for t in (self.last_event_ms, other.last_event_ms) if t is not None]
        return ImportSummary(
            episodes=self.episodes + other.episodes,
            events=self.events + other.events,
            tool_calls=self.tool_calls + other.tool_calls,
            tool_errors=self.tool_errors + other.tool_errors,
            outcomes=self.outcomes + other.outcomes,
            skipped=self.skipped + other.skipped,
            first_event_ms=min(times) if times else None,
            last_event_ms=max(ends) if ends else None,
        )

    def render(self) -> str:
        outcomes = ", ".join(f"{n:,} {name}" for name, n in sorted(self.outcomes.items()))
        share = f" ({self.tool_errors / self.tool_calls:.1%})" if self.tool_calls else ""
        lines = [
            f"imported {self.episodes:,} episodes ({outcomes or 'none'}), {self.events:,} events",
            f"tool calls: {self.tool_calls:,}, errors: {self.tool_errors:,}{share}",
        ]
        if self.first_event_ms is not None and self.last_event_ms is not None:
            lines.append(f"event time: {_iso(self.first_event_ms)} .. {_iso(self.last_event_ms)}")
        lines.append(f"skipped: {sum(self.skipped.values()):,}")
        lines += [f"  {n:>6,}  {reason}" for reason, n in self.skipped.most_common()]
        return "\n".join(lines)


def import_episodes(
    episodes: Iterable[ImportedEpisode | Skipped],
    recorder: EpisodeRecorder,
    *,
    base_time_ms: int,
    progress: bool,
    label: str = "importing",
) -> ImportSummary:
    """Emit each episode through `recorder` (start, a call and a result per step, end)."""
    summary = ImportSummary()
    clock = _Clock(base_time_ms)
    bar = tqdm(episodes, desc=label, unit=" entries", file=sys.stderr, disable=not progress)
    for item in bar:
        if isinstance(item, Skipped):
            summary.skipped[item.reason] += 1
            continue
        times = event_times(item, clock)
        emit_episode(item, recorder, times)
        summary.episodes += 1
        summary.events += len(times)
        summary.outcomes[item.outcome] += 1
        summary.tool_calls += len(item.steps)
        summary.tool_errors += sum(not step.ok for step in item.steps)
        first = times[0] if summary.first_event_ms is None else min(summary.first_event_ms,
                                                                     times[0])
        summary.first_event_ms = first
        summary.last_event_ms = max(summary.last_event_ms or times[-1], times[-1])
    bar.close()
    return summary


class _Clock:
    """Synthetic event time: every call returns the next tick after `base`."""

    def __init__(self, base: int) -> None:
        self.base = base
        self.ticks = 0

    def next(self) -> int:
        self.ticks += 1
        return self.base + (self.ticks - 1) * EVENT_SPACING_MS


def event_times(item: ImportedEpisode, clock: _Clock | None = None) -> list[int]:
    """Start, call and result per step, end: the episode's own times once it is placed on a
    time line (`timeline.place`), else the next ticks of `clock`."""
    if item.started_ms is None or item.ended_ms is None:
        if clock is None:
            raise ValueError(f"{item.source}: episode has no times and no clock was given")
        return [clock.next() for _ in range(2 * len(item.steps) + 2)]
    times = [item.started_ms]
    for step in item.steps:
        times += [step.called_ms or times[-1], step.answered_ms or step.called_ms or times[-1]]
    return [*times, item.ended_ms]


def emit_episode(item: ImportedEpisode, recorder: EpisodeRecorder, times: list[int]) -> None:
    """One episode's events through `recorder`, at `times` (see `_times`)."""
    moments = iter(times)
    episode = recorder.episode(
        item.task,
        user=item.user,
        task_type=item.task_type,
        episode_id=item.episode_id,
        occurred_at=next(moments),
        task_id=item.task_id,
        agent_version=item.agent_version or None,
    )
    episode.start()
    for step in item.steps:
        call_id = episode.tool_call(step.tool, step.arguments, occurred_at=next(moments))
        episode.tool_result(
            step.tool,
            ok=step.ok,
            error=step.error,
            output=step.output,
            call_id=call_id,
            occurred_at=next(moments),
        )
    episode.end(outcome=item.outcome, reward=item.reward, occurred_at=next(moments))


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def parse_base_time(text: str) -> int:
    """ISO 8601 to UTC ms; a time without a zone is taken as UTC (as `kaizen replay` does)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
