"""The backtest's matching rules: when a recalled lesson counts as relevant, or as off-target.

Pure functions over plain values (no Kafka, no stores), so the rules the figures depend on are
read and tested in one place:

- a lesson is **relevant** to a failure when it was learnt from the same failure (its trigger
  signature equals the failure's: same tool, same normalised error), or when its tool-call patch
  applies to the call that then failed (it is about that tool and would have changed the call:
  another tool to use, or arguments that differ after the patch);
- a lesson is **off-target** for an episode when it is about a tool the episode never calls
  (lessons about no tool, e.g. a user's preference, are never off-target).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kaizen.processors.learning.patches import apply_patch
from kaizen.schemas.model import Experience, ToolCallPatch


@dataclass(frozen=True)
class LessonView:
    """What matching needs to know about a recalled lesson."""

    experience_id: str
    tool: str | None
    signature: str | None
    patch: ToolCallPatch | None
    score: float = field(default=0.0, compare=False)  # the recall's score (rules are tuned on it)

    @classmethod
    def of(cls, experience: Experience, score: float = 0.0) -> LessonView:
        return cls(experience.experience_id, experience.tool, experience.trigger.signature,
                   experience.patch, score)


@dataclass(frozen=True)
class Call:
    """One tool call of a replayed episode, as the agent was about to make it."""

    tool: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True)
class FailedCall:
    """One failed tool call of a replayed episode: the tool, its error signature, the arguments,
    and its place among the episode's calls (`position`, -1 when unknown)."""

    tool: str
    signature: str
    arguments: Mapping[str, Any]
    position: int = -1


def patch_applies(patch: ToolCallPatch, tool: str, arguments: Mapping[str, Any]) -> bool:
    """True when `patch` would have changed this call of `tool` (another tool, other arguments).
    A patch this version cannot apply (unknown operation or rule) does not count."""
    if patch.tool != tool:
        return False
    try:
        new_tool, new_arguments = apply_patch(patch, tool, dict(arguments))
    except (ValueError, TypeError, KeyError):
        return False
    return new_tool != tool or new_arguments != dict(arguments)


def is_relevant(lesson: LessonView, failure: FailedCall) -> bool:
    """Learnt from this very failure, or its patch applies to the call that failed."""
    if lesson.signature is not None and lesson.signature == failure.signature:
        return True
    return lesson.patch is not None and patch_applies(lesson.patch, failure.tool,
                                                      failure.arguments)


def any_relevant(lessons: Iterable[LessonView], failure: FailedCall) -> bool:
    return any(is_relevant(lesson, failure) for lesson in lessons)


def is_off_target(lesson: LessonView, episode_tools: Collection[str]) -> bool:
    """About a tool the episode never calls."""
    return lesson.tool is not None and lesson.tool not in episode_tools
