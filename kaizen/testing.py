"""Test doubles for agent authors: exercise your agent's Kaizen calls without a broker or service.

    from kaizen.testing import MemoryRecorder, StubRecall

    rec = MemoryRecorder(agent="support-bot", tenant="acme")
    lessons = StubRecall([Recalled("L1", 0.9, "Use `id`, not `order_id`.", None, "recovery",
                                   "orders.get")])
    run_my_agent(rec, recall=lessons)          # your code calls rec.episode(...) and lessons(...)
    assert rec.payloads(model.ToolResult)[0].ok is False
    assert lessons.queries[0]["tools"] == ["orders.get"]

`MemoryRecorder.episode` returns the real `Episode`, so the events are exactly those a `Recorder`
would send (same ids, same payloads), kept in `events` instead of going to Kafka. Like the
Recorder, it never raises into the agent from `emit`.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from kaizen.readmodel.lesson import Recalled
from kaizen.schemas import model
from kaizen.streams.episode import Episode

__all__ = ["MemoryRecorder", "StubRecall"]

P = TypeVar("P")


class MemoryRecorder:
    """A Recorder that keeps the episode events it is given, in emit order, in memory.

    Its clock is deterministic (`start_ms` plus one millisecond per event) unless events carry
    their own `occurred_at`, so tests can compare whole events.
    """

    def __init__(self, agent: str = "agent", tenant: str = "tenant", *,
                 agent_version: str = "", snapshot_id: str | None = None,
                 start_ms: int = 1_700_000_000_000) -> None:
        self.agent = agent
        self.tenant = tenant
        self.agent_version = agent_version
        self.snapshot_id = snapshot_id
        self.events: list[model.EpisodeEvent] = []
        self._clock = itertools.count(start_ms)
        self._lock = threading.Lock()

    def episode(self, task: str, *, user: str | None = None, task_type: str = "",
                episode_id: str | None = None, occurred_at: int | None = None) -> Episode:
        """A real episode handle whose events land in :attr:`events`."""
        return Episode(self, task, user=user, task_type=task_type, episode_id=episode_id,
                       occurred_at=occurred_at)

    def now_ms(self) -> int:
        return next(self._clock)

    def emit(self, event: model.EpisodeEvent) -> None:
        with self._lock:
            self.events.append(event)

    def payloads(self, kind: type[P], episode_id: str | None = None) -> list[P]:
        """The payloads of one kind (e.g. `model.ToolResult`), optionally of one episode."""
        return [e.payload for e in self.events if isinstance(e.payload, kind)
                and (episode_id is None or e.episode_id == episode_id)]

    def episode_ids(self) -> list[str]:
        """Episode ids in the order their first event was emitted."""
        return list(dict.fromkeys(e.episode_id for e in self.events))

    def flush(self, timeout: float = 10.0) -> int:
        """Nothing is ever pending: 0, like a Recorder whose events were all delivered."""
        return 0

    def close(self, timeout: float = 10.0) -> None:
        """Nothing to release; kept so code under test can close its recorder."""

    def __enter__(self) -> MemoryRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StubRecall:
    """A stand-in for `kaizen.recall`: returns fixed lessons and remembers every query.

    Filters like the real recall does on what it can see: `k`, and `tools=` keeps lessons about
    those tools or about no tool.
    """

    def __init__(self, lessons: Iterable[Recalled] = ()) -> None:
        self.lessons: list[Recalled] = list(lessons)
        self.queries: list[dict[str, Any]] = []

    def __call__(self, task: str, *, agent: str, tenant: str, user: str | None = None,
                 tools: Sequence[str] | None = None, k: int = 5, **options: Any
                 ) -> list[Recalled]:
        self.queries.append({"task": task, "agent": agent, "tenant": tenant, "user": user,
                             "tools": list(tools) if tools is not None else None, "k": k,
                             **options})
        wanted = set(tools) if tools is not None else None
        kept = [x for x in self.lessons if wanted is None or x.tool is None or x.tool in wanted]
        return kept[:k]
