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
- **with a relevant lesson**: a recurring-after-support failure for which a lesson relevant to
  its first failing call (`matching.is_relevant`) was recalled before that call: at the start of
  the episode (`..._at_start`), or by the point-of-use recall made right before the call itself
  (`kaizen.recall_for_call`, `..._at_call`); the headline counts either, the two splits say
  where the lesson came from (a failure covered by both is in both);
- **off-target**: an episode that got at least one lesson about a tool it never calls, from any
  of its recalls (at the start or before a call; `..._at_start` counts the start only);
- **on-error coverage**: failed calls after the first failure of their episode for which an
  on-error recall made at an earlier failure of the episode (with that failure's signature)
  returned a relevant lesson: what `recall(..., signature=)` in flight would have covered.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from kaizen.backtest.matching import (
    Call,
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
    calls: tuple[Call, ...] = ()  # every call, in order (`FailedCall.position` points here)

    def first_failures(self) -> dict[str, FailedCall]:
        """Signature -> its first failing call in the episode."""
        first: dict[str, FailedCall] = {}
        for call in self.failures:
            first.setdefault(call.signature, call)
        return first


@dataclass(frozen=True)
class Recalls:
    """The lessons one episode got: before it started, right before each of its calls
    (`at_call`, aligned with `EpisodeFacts.calls`), and at each failed call (on-error)."""

    before: tuple[LessonView, ...]
    on_error: tuple[tuple[LessonView, ...], ...] = ()
    at_call: tuple[tuple[LessonView, ...], ...] = ()

    def before_call(self, position: int) -> tuple[LessonView, ...]:
        """What the point-of-use recall gave right before call `position` (nothing if unknown)."""
        return self.at_call[position] if 0 <= position < len(self.at_call) else ()

    def everything(self) -> tuple[LessonView, ...]:
        """Every distinct lesson the episode was shown (start, then calls), first sighting kept."""
        seen: dict[str, LessonView] = {}
        for lesson in (*self.before, *(x for lessons in self.at_call for x in lessons)):
            seen.setdefault(lesson.experience_id, lesson)
        return tuple(seen.values())


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
    recurring_with_relevant_lesson_at_start: int = 0
    recurring_with_relevant_lesson_at_call: int = 0
    recurring_any_with_relevant_lesson: int = 0
    episodes_with_lesson: int = 0
    episodes_with_lesson_at_start: int = 0
    episodes_with_off_target_lesson: int = 0
    episodes_with_off_target_lesson_at_start: int = 0
    lessons_recalled: int = 0
    lessons_recalled_at_start: int = 0
    off_target_recalls: int = 0
    calls: int = 0
    calls_with_lesson: int = 0
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
        self._lessons(facts, recalls)
        first = facts.first_failures()
        self.episodes_with_failure += bool(first)
        self.failed_calls += len(facts.failures)
        for signature, call in first.items():
            self._failure(facts.scope, signature, call, recalls)
        for signature in first:
            self._seen[(facts.scope, signature)] += 1
        self._on_error(facts.failures, recalls.on_error)

    def _lessons(self, facts: EpisodeFacts, recalls: Recalls) -> None:
        lessons = recalls.everything()
        self.episodes_with_lesson += bool(lessons)
        self.episodes_with_lesson_at_start += bool(recalls.before)
        self.lessons_recalled += len(lessons)
        self.lessons_recalled_at_start += len(recalls.before)
        self.calls += len(facts.calls)
        self.calls_with_lesson += sum(bool(recalls.before_call(i)) for i in range(len(facts.calls)))
        off = [lesson for lesson in lessons if is_off_target(lesson, facts.tools)]
        self.off_target_recalls += len(off)
        self.episodes_with_off_target_lesson += bool(off)
        self.episodes_with_off_target_lesson_at_start += any(
            is_off_target(lesson, facts.tools) for lesson in recalls.before)
        relevant = {lesson.experience_id for lesson in lessons
                    if any(is_relevant(lesson, call) for call in facts.failures)}
        for lesson in lessons:
            figures = self.lessons.setdefault(lesson.experience_id, LessonFigures())
            figures.recalled += 1
            figures.relevant += lesson.experience_id in relevant
            figures.off_target += lesson in off

    def _failure(self, scope: str, signature: str, call: FailedCall, recalls: Recalls) -> None:
        key = (scope, signature)
        figures = self.signatures.setdefault(key, SignatureFigures())
        figures.episodes += 1
        self.failures += 1
        if not self._seen[key]:
            return
        at_start = any_relevant(recalls.before, call)
        at_call = any_relevant(recalls.before_call(call.position), call)
        covered = at_start or at_call
        self.recurring_failures += 1
        self.recurring_any_with_relevant_lesson += covered
        figures.recurring += 1
        if self._fed[key] >= self.min_support:
            self.recurring_after_support += 1
            self.recurring_with_relevant_lesson += covered
            self.recurring_with_relevant_lesson_at_start += at_start
            self.recurring_with_relevant_lesson_at_call += at_call
            figures.after_support += 1
            figures.covered += covered

    def _on_error(self, calls: Sequence[FailedCall],
                  on_error: Sequence[Sequence[LessonView]]) -> None:
        for position, call in enumerate(calls[1:], start=1):
            self.failed_calls_after_first += 1
            earlier = [lesson for lessons in on_error[:position] for lesson in lessons]
            self.covered_by_on_error_recall += any_relevant(earlier, call)
