"""The backtest's figures, folded episode by episode from what was recalled and what then failed.

Pure (no Kafka, no stores). The run calls `fed(...)` when an episode goes into the pipeline and
`recalled(...)` for each episode, in start order, with the lessons it got. Definitions (the
README's backtest section prints the same):

- a **failure** is one (episode, failure signature): an episode failing the same call three
  times is one failure (and three failed calls, `failed_calls`);
- **recurring**: its signature failed in an earlier-started episode of the backtest; otherwise
  **novel**;
- **recurring after support**: recurring, and at least `min_support` earlier episodes with it had
  already gone through the pipeline when the agent recalled (episodes still in flight cannot have
  taught anything yet): the failures a lesson could have prevented;
- **with a relevant lesson**: a recurring-after-support failure for which the recall before the
  episode returned a lesson relevant to its first failing call (`matching.is_relevant`);
- **off-target**: an episode that got at least one lesson about a tool it never calls;
- **on-error coverage**: failed calls after the first failure of their episode for which an
  on-error recall made at an earlier failure of the episode (with that failure's signature)
  returned a relevant lesson: what `recall(..., signature=)` in flight would have covered.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from kaizen.backtest.matching import (
    FailedCall,
    LessonView,
    any_relevant,
    is_off_target,
    is_relevant,
)


@dataclass(frozen=True)
class EpisodeFacts:
    """What the backtest needs of one replayed episode."""

    index: int
    scope: str
    tools: frozenset[str]
    failures: tuple[FailedCall, ...]  # every failed call, in call order

    def first_failures(self) -> dict[str, FailedCall]:
        """Signature -> its first failing call in the episode."""
        first: dict[str, FailedCall] = {}
        for call in self.failures:
            first.setdefault(call.signature, call)
        return first


@dataclass(frozen=True)
class Recalls:
    """The lessons one episode got: before it started, and at each failed call (on-error)."""

    before: tuple[LessonView, ...]
    on_error: tuple[tuple[LessonView, ...], ...] = ()


@dataclass
class SignatureFigures:
    episodes: int = 0
    recurring: int = 0
    after_support: int = 0
    covered: int = 0


@dataclass
class LessonFigures:
    recalled: int = 0
    relevant: int = 0
    off_target: int = 0


@dataclass
class Tally:
    min_support: int
    episodes: int = 0
    episodes_with_failure: int = 0
    failed_calls: int = 0
    failures: int = 0
    recurring_failures: int = 0
    recurring_after_support: int = 0
    recurring_with_relevant_lesson: int = 0
    recurring_any_with_relevant_lesson: int = 0
    episodes_with_lesson: int = 0
    episodes_with_off_target_lesson: int = 0
    lessons_recalled: int = 0
    off_target_recalls: int = 0
    failed_calls_after_first: int = 0
    covered_by_on_error_recall: int = 0
    signatures: dict[tuple[str, str], SignatureFigures] = field(default_factory=dict)
    lessons: dict[str, LessonFigures] = field(default_factory=dict)
    _seen: Counter[tuple[str, str]] = field(default_factory=Counter)
    _fed: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def novel_failures(self) -> int:
        return self.failures - self.recurring_failures

    def fed(self, facts: EpisodeFacts) -> None:
        """`facts`' episode went into the pipeline: lessons may now come from it."""
        for signature in facts.first_failures():
            self._fed[(facts.scope, signature)] += 1

    def recalled(self, facts: EpisodeFacts, recalls: Recalls) -> None:
        """Count one episode (call in start order) with the lessons it got."""
        self.episodes += 1
        self._lessons(facts, recalls.before)
        first = facts.first_failures()
        self.episodes_with_failure += bool(first)
        self.failed_calls += len(facts.failures)
        for signature, call in first.items():
            self._failure(facts.scope, signature, call, recalls.before)
        for signature in first:
            self._seen[(facts.scope, signature)] += 1
        self._on_error(facts.failures, recalls.on_error)

    def _lessons(self, facts: EpisodeFacts, lessons: Sequence[LessonView]) -> None:
        self.episodes_with_lesson += bool(lessons)
        self.lessons_recalled += len(lessons)
        off = [lesson for lesson in lessons if is_off_target(lesson, facts.tools)]
        self.off_target_recalls += len(off)
        self.episodes_with_off_target_lesson += bool(off)
        relevant = {lesson.experience_id for lesson in lessons
                    if any(is_relevant(lesson, call) for call in facts.failures)}
        for lesson in lessons:
            figures = self.lessons.setdefault(lesson.experience_id, LessonFigures())
            figures.recalled += 1
            figures.relevant += lesson.experience_id in relevant
            figures.off_target += lesson in off

    def _failure(self, scope: str, signature: str, call: FailedCall,
                 lessons: Sequence[LessonView]) -> None:
        key = (scope, signature)
        figures = self.signatures.setdefault(key, SignatureFigures())
        figures.episodes += 1
        self.failures += 1
        if not self._seen[key]:
            return
        covered = any_relevant(lessons, call)
        self.recurring_failures += 1
        self.recurring_any_with_relevant_lesson += covered
        figures.recurring += 1
        if self._fed[key] >= self.min_support:
            self.recurring_after_support += 1
            self.recurring_with_relevant_lesson += covered
            figures.after_support += 1
            figures.covered += covered

    def _on_error(self, calls: Sequence[FailedCall],
                  on_error: Sequence[Sequence[LessonView]]) -> None:
        for position, call in enumerate(calls[1:], start=1):
            self.failed_calls_after_first += 1
            earlier = [lesson for lessons in on_error[:position] for lesson in lessons]
            self.covered_by_on_error_recall += any_relevant(earlier, call)
