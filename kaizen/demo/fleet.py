"""A simulated agent fleet for the demo: seeded tasks, a naive agent, and lessons it can follow.

Every task is written for the ORIGINAL tool APIs (`kaizen.demo.world`), as an agent's prompt and
few-shot examples would be. When a call fails the agent tries ONE self-repair that real agents
do: it reads the error text ("did you mean 'id'?", "use weather.v2.get", "missing required field
'currency'", "expected YYYY-MM-DD", "429") and changes the call. It succeeds only some of the time
(`self_repair_rate`, seeded), as a model's retry does; those recoveries (a failed call followed by
a working, changed call) are what Kaizen learns from.

Given recalled lessons, the agent applies their structured patches to matching calls before
making them, retries a tool once when a lesson says its errors are transient, and follows a
user's preference for imperial units. Everything it does goes through the Episode API, so the
pipeline sees exactly what a real agent's recorder would send.

Tasks, users and repair rolls are seeded per (seed, episode index): two fleets with one seed face
the same work, whatever the thread scheduling, so their success rates compare like with like.
"""

from __future__ import annotations

import random
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from types import TracebackType
from typing import Any, Protocol

from kaizen.demo.world import NEW_DATE, OLD_DATE, World
from kaizen.processors.learning.patches import apply_patch, apply_rule
from kaizen.readmodel.lesson import Recalled

__all__ = [
    "TASK_TYPES",
    "USERS",
    "Call",
    "EpisodeHandle",
    "EpisodeRecorder",
    "EpisodeResult",
    "Fleet",
    "Played",
    "RecallFn",
    "Task",
    "make_task",
    "pick_user",
    "play_episode",
    "self_repair",
]

Args = dict[str, Any]
#: recall(task text, user, tools the task will call) -> lessons, best first.
RecallFn = Callable[[str, str | None, list[str]], list[Recalled]]

USERS = tuple(f"u{i}" for i in range(1, 10))
TASK_TYPES = ("order_status", "checkout", "schedule", "weather", "research", "trip")
EPISODE_NAMESPACE = uuid.UUID("0b7f7a53-4f57-4a39-8d7e-2f4b9a2e6c10")
DEFAULT_SELF_REPAIR_RATE = 0.4
_CITIES = ("Lisbon", "Osaka", "Denver", "Nairobi", "Oslo", "Lima")
_TOPICS = ("return policy", "shipping times", "warranty terms", "gift cards", "loyalty points")
_RETRY_WORDS = ("retry", "back-off", "backoff")
_DEFAULTS = {"currency": "USD"}


class EpisodeHandle(Protocol):
    """The part of `kaizen.streams.episode.Episode` the fleet uses."""

    def __enter__(self) -> EpisodeHandle: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def tool_call(self, tool_name: str, arguments: Mapping[str, Any] | None = None) -> str: ...

    def tool_result(
        self,
        tool_name: str,
        *,
        ok: bool = True,
        error: str | None = None,
        output: str | None = None,
        call_id: str | None = None,
    ) -> None: ...

    def recall(self, experience_ids: Sequence[str], query: str = "") -> None: ...

    def feedback(self, *, rating: float | None = None, correction: str | None = None) -> None: ...

    def end(self, success: bool | None = None) -> None: ...


class EpisodeRecorder(Protocol):
    """The part of `kaizen.Recorder` the fleet uses."""

    def episode(
        self, task: str, *, user: str | None = None, task_type: str = "", episode_id: str | None
    ) -> EpisodeHandle: ...


@dataclass(frozen=True, slots=True)
class Call:
    """One tool call as the task's author wrote it, for the original API."""

    tool: str
    args: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Task:
    task_type: str
    text: str
    calls: tuple[Call, ...]

    @property
    def tools(self) -> list[str]:
        return sorted({c.tool for c in self.calls})


@dataclass(slots=True)
class Played:
    """What happened in one episode, for the demo's tallies."""

    success: bool
    failures: list[tuple[str, str]] = field(default_factory=list)
    lesson_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class EpisodeResult:
    index: int
    user: str
    task_type: str
    success: bool
    failures: tuple[tuple[str, str], ...]
    lesson_ids: tuple[str, ...]


def _rng(seed: int, index: int, purpose: str) -> random.Random:
    return random.Random(f"{seed}/{index}/{purpose}")  # noqa: S311 - a seeded simulation


def pick_user(seed: int, index: int) -> str:
    """The user of episode `index`: uniform over USERS, so u7 shows up about one time in nine."""
    return _rng(seed, index, "user").choice(USERS)


def make_task(seed: int, index: int) -> Task:
    """The task of episode `index`: a type and its 1-3 calls with arguments for the original API."""
    rng = _rng(seed, index, "task")
    kind = rng.choice(TASK_TYPES)
    order = f"A{rng.randint(1000, 9999)}"
    cents = rng.randint(5, 500) * 100 - 1
    when = (date(2026, 11, 24) + timedelta(days=rng.randint(1, 90))).strftime(OLD_DATE)
    city, topic = rng.choice(_CITIES), rng.choice(_TOPICS)
    orders = Call("orders.get", {"order_id": order})
    charge = Call("payments.charge", {"amount_cents": cents})
    book = Call("calendar.book", {"date": when, "title": f"Visit {city}"})
    weather = Call("weather.get", {"city": city, "units": "metric"})
    search = Call("search", {"query": topic})
    tasks = {
        "order_status": (f"Where is order {order}?", (orders,)),
        "checkout": (f"Charge {cents / 100:.2f} for order {order}", (orders, charge)),
        "schedule": (f"Book a visit to {city} on {when}", (book,)),
        "weather": (f"What is the weather in {city}?", (weather,)),
        "research": (f"What is our {topic}?", (search,)),
        "trip": (f"Plan a trip to {city} on {when}", (search, weather, book)),
    }
    text, calls = tasks[kind]
    return Task(kind, text, calls)


def self_repair(tool: str, args: Mapping[str, Any], error: str) -> tuple[str, Args] | None:
    """The one fix a naive agent reads off an error text, or None when the text does not say.

    A renamed field is only fixable when the error names the new one ("did you mean 'id'?").
    """
    new_args = dict(args)
    if m := re.search(r"unknown field '([^']+)'; did you mean '([^']+)'", error):
        new_args[m.group(2)] = new_args.pop(m.group(1), None)
        return tool, new_args
    if m := re.search(r"use ([\w.]+)", error):
        return m.group(1), new_args
    if (m := re.search(r"missing required field '([^']+)'", error)) and m.group(1) in _DEFAULTS:
        new_args[m.group(1)] = _DEFAULTS[m.group(1)]
        return tool, new_args
    if "expected YYYY-MM-DD" in error and "date" in new_args:
        new_args["date"] = apply_rule(f"date:{OLD_DATE}->{NEW_DATE}", new_args["date"])
        return tool, new_args
    if error.startswith("429"):
        return tool, new_args
    return None


def _follow_lessons(lessons: Sequence[Recalled], tool: str, args: Args) -> tuple[str, Args]:
    """Apply every matching patch (each once; a tool switch may make another one match), then the
    guidance rules this simple agent understands."""
    pending = [lesson.patch for lesson in lessons if lesson.patch is not None]
    changed = True
    while changed:
        changed = False
        for patch in list(pending):
            if patch.tool == tool:
                tool, args = apply_patch(patch, tool, args)
                pending.remove(patch)
                changed = True
    if "units" in args and any("imperial" in lesson.guidance.lower() for lesson in lessons):
        args = {**args, "units": "imperial"}
    return tool, args


def _says_retry(lessons: Sequence[Recalled], tool: str) -> bool:
    return any(
        lesson.tool == tool and any(w in lesson.guidance.lower() for w in _RETRY_WORDS)
        for lesson in lessons
    )


@dataclass(slots=True)
class _Agent:
    """One episode's agent: the world, the recording handle and what it has learnt."""

    world: World
    ep: EpisodeHandle
    lessons: Sequence[Recalled]
    episode_index: int
    user: str | None
    rng: random.Random
    self_repair_rate: float
    played: Played
    attempts: Counter[str] = field(default_factory=Counter)
    corrections: list[str] = field(default_factory=list)

    def invoke(self, tool: str, args: Args) -> tuple[bool, str]:
        call_id = self.ep.tool_call(tool, args)
        outcome = self.world.call(
            tool, args, episode_index=self.episode_index, user=self.user,
            attempt=self.attempts[tool],
        )
        self.attempts[tool] += 1
        self.ep.tool_result(
            tool, ok=outcome.ok, error=outcome.error, output=outcome.output, call_id=call_id
        )
        if outcome.ok:
            correction = self.world.preference_correction(
                tool, args, episode_index=self.episode_index, user=self.user
            )
            if correction is not None:
                self.corrections.append(correction)
            return True, ""
        error = outcome.error or "error"
        self.played.failures.append((tool, error))
        return False, error

    def perform(self, call: Call) -> bool:
        tool, args = _follow_lessons(self.lessons, call.tool, dict(call.args))
        if _says_retry(self.lessons, tool) and not self.attempts[tool]:
            self.attempts[tool] += 1  # backs off before the first call, as the lesson says
        ok, error = self.invoke(tool, args)
        if ok:
            return True
        if _says_retry(self.lessons, tool):
            return self.invoke(tool, args)[0]
        if self.rng.random() >= self.self_repair_rate:
            return False
        repaired = self_repair(tool, args, error)
        return repaired is not None and self.invoke(*repaired)[0]


def play_episode(
    world: World,
    task: Task,
    *,
    recorder_episode: EpisodeHandle,
    lessons: Sequence[Recalled],
    episode_index: int,
    user: str | None,
    seed: int = 0,
    self_repair_rate: float = DEFAULT_SELF_REPAIR_RATE,
) -> Played:
    """Run one task to its end, recording everything; an episode stops at its first lost call."""
    ep = recorder_episode
    played = Played(success=False, lesson_ids=[lesson.experience_id for lesson in lessons])
    if lessons:
        ep.recall(played.lesson_ids, task.text)
    rng = _rng(seed, episode_index, "repair")
    agent = _Agent(world, ep, lessons, episode_index, user, rng, self_repair_rate, played)
    done = all(agent.perform(call) for call in task.calls)
    if agent.corrections:
        ep.feedback(rating=-1.0, correction=agent.corrections[0])
    played.success = done and not agent.corrections
    ep.end(success=played.success)
    return played


class Fleet:
    """Agents sharing a name and a recorder: "static" without recall, "learning" with it."""

    def __init__(
        self,
        name: str,
        world: World,
        recorder: EpisodeRecorder,
        recall: RecallFn | None,
        seed: int = 0,
        self_repair_rate: float = DEFAULT_SELF_REPAIR_RATE,
    ) -> None:
        self.name = name
        self.world = world
        self.recorder = recorder
        self.recall = recall
        self.seed = seed
        self.self_repair_rate = self_repair_rate

    def episode_id(self, index: int) -> str:
        """Stable per (fleet, index): re-running the demo re-records the same episode ids."""
        return str(uuid.uuid5(EPISODE_NAMESPACE, f"{self.name}/{self.seed}/{index}"))

    def run_one(self, index: int) -> EpisodeResult:
        task, user = make_task(self.seed, index), pick_user(self.seed, index)
        lessons = self.recall(task.text, user, task.tools) if self.recall else []
        handle = self.recorder.episode(
            task.text, user=user, task_type=task.task_type, episode_id=self.episode_id(index)
        )
        with handle as ep:
            played = play_episode(
                self.world, task, recorder_episode=ep, lessons=lessons, episode_index=index,
                user=user, seed=self.seed, self_repair_rate=self.self_repair_rate,
            )
        return EpisodeResult(
            index, user, task.task_type, played.success, tuple(played.failures),
            tuple(played.lesson_ids),
        )

    def run(self, episode_indices: Iterable[int], concurrency: int = 4) -> list[EpisodeResult]:
        """Run the episodes on a thread pool; results come back in the order of the indices."""
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            return list(pool.map(self.run_one, episode_indices))
