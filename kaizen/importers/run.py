"""Emit imported episodes through a Recorder, and the `kaizen import` command around it.

Event times are synthetic and deterministic: the n-th event of an import happens at
`base_time_ms + n * EVENT_SPACING_MS`, so importing the same file again with the same base time
gives the same times (and the same episode ids, which the parsers derive from the source).
Nothing here reads the wall clock.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tqdm import tqdm

from kaizen.importers.model import ImportedEpisode, Skipped
from kaizen.importers.openai_chat import parse_openai_chat
from kaizen.importers.react_log import parse_react_log

if TYPE_CHECKING:
    from kaizen.client.recorder import Recorder
    from kaizen.settings import Settings

EVENT_SPACING_MS = 1000
DEFAULT_BASE_TIME = "2024-01-01T00:00:00+00:00"
DEFAULT_AGENTS = {"react": "react-hotpotqa", "openai": "imported"}
PARSERS: dict[str, Callable[[Path], Iterator[ImportedEpisode | Skipped]]] = {
    "react": parse_react_log,
    "openai": parse_openai_chat,
}
_SUFFIXES = {".txt": "react", ".json": "openai", ".jsonl": "openai"}
_FLUSH_SECONDS = 60.0


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
        _emit(item, recorder, clock)
        summary.episodes += 1
        summary.outcomes[item.outcome] += 1
        summary.tool_calls += len(item.steps)
        summary.tool_errors += sum(not step.ok for step in item.steps)
    bar.close()
    summary.events = clock.ticks
    if clock.ticks:
        summary.first_event_ms, summary.last_event_ms = base_time_ms, clock.last
    return summary


class _Clock:
    """Synthetic event time: every call returns the next tick after `base`."""

    def __init__(self, base: int) -> None:
        self.base = base
        self.ticks = 0

    @property
    def last(self) -> int:
        return self.base + (self.ticks - 1) * EVENT_SPACING_MS

    def next(self) -> int:
        self.ticks += 1
        return self.last


def _emit(item: ImportedEpisode, recorder: EpisodeRecorder, clock: _Clock) -> None:
    episode = recorder.episode(
        item.task,
        user=item.user,
        task_type=item.task_type,
        episode_id=item.episode_id,
        occurred_at=clock.next(),
    )
    episode.start()
    for step in item.steps:
        call_id = episode.tool_call(step.tool, step.arguments, occurred_at=clock.next())
        episode.tool_result(
            step.tool,
            ok=step.ok,
            error=step.error,
            output=step.output,
            call_id=call_id,
            occurred_at=clock.next(),
        )
    episode.end(outcome=item.outcome, reward=item.reward, occurred_at=clock.next())


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


# --- the `kaizen import` command ----------------------------------------------------------------


def detect_format(path: Path, requested: str) -> str:
    """`auto` picks by suffix: .txt is a ReAct log, .json/.jsonl are OpenAI chat trajectories."""
    if requested != "auto":
        return requested
    try:
        return _SUFFIXES[path.suffix.lower()]
    except KeyError:
        raise ValueError(f"{path}: cannot tell the format from the suffix; pass --format") from None


def parse_base_time(text: str) -> int:
    """ISO 8601 to UTC ms; a time without a zone is taken as UTC (as `kaizen replay` does)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Handler of `kaizen import FILE...`: parse, emit, flush, and print the summary."""
    try:
        plan = [(Path(name), detect_format(Path(name), args.format)) for name in args.files]
        base_ms = parse_base_time(args.base_time or DEFAULT_BASE_TIME)
    except ValueError as error:
        print(f"kaizen import: {error}", file=sys.stderr)
        return 2
    missing = [str(path) for path, _ in plan if not path.is_file()]
    if missing:
        print(f"kaizen import: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    return _import_files(plan, args, settings, base_ms)


def _import_files(
    plan: list[tuple[Path, str]], args: argparse.Namespace, settings: Settings, base_ms: int
) -> int:
    """One Recorder per agent name; every file starts at the same base time so that each file
    re-imports to the same event times whatever else is on the command line."""
    from kaizen.client.recorder import Recorder

    recorders: dict[str, Recorder] = {}
    total = ImportSummary()
    try:
        for path, fmt in plan:
            agent = args.agent or DEFAULT_AGENTS[fmt]
            if agent not in recorders:
                recorders[agent] = Recorder(agent, args.tenant, settings=settings)
            summary = import_episodes(
                PARSERS[fmt](path), recorders[agent], base_time_ms=base_ms, progress=True,
                label=path.name,
            )
            total = total.merge(summary)
    finally:
        undelivered = _close(recorders)
    print(total.render())
    return 1 if undelivered else 0


def _close(recorders: Mapping[str, Recorder]) -> int:
    """Flush and close every Recorder; returns how many events were not delivered."""
    undelivered = 0
    for agent, recorder in recorders.items():
        recorder.flush(_FLUSH_SECONDS)
        recorder.close()
        stats = recorder.stats
        print(f"{agent}: delivered {stats.delivered:,} of {stats.emitted:,} events", end="")
        if stats.spooled or stats.failed or stats.dropped:
            print(f"; spooled {stats.spooled:,} (sent by the next Recorder of this agent once "
                  f"the broker answers), failed {stats.failed:,}, dropped {stats.dropped:,}",
                  end="")
        print()
        undelivered += stats.spooled + stats.failed + stats.dropped
    return undelivered
