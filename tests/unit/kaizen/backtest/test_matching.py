"""The backtest's matching rules: relevant and off-target lessons."""

from __future__ import annotations

from kaizen.backtest.matching import (
    FailedCall,
    LessonView,
    any_relevant,
    is_off_target,
    is_relevant,
    patch_applies,
)
from kaizen.schemas.model import ArgumentChange, ToolCallPatch

SIG = "exchange: Error: Non-delivered order cannot be exchanged"
FAILED = FailedCall("exchange", SIG, {"order_id": "#W1", "currency": "usd"})


def lesson(tool: str | None = "exchange", signature: str | None = None,
           patch: ToolCallPatch | None = None) -> LessonView:
    return LessonView("x1", tool, signature, patch)


def test_a_lesson_learnt_from_the_same_failure_is_relevant() -> None:
    assert is_relevant(lesson(signature=SIG), FAILED)


def test_another_signature_of_the_same_tool_without_a_patch_is_not() -> None:
    assert not is_relevant(lesson(signature="exchange: Error: User not found"), FAILED)


def test_a_patch_that_changes_the_failed_call_is_relevant() -> None:
    patch = ToolCallPatch("exchange", [ArgumentChange("replace", "currency", value_json='"EUR"')])
    assert patch_applies(patch, "exchange", FAILED.arguments)
    assert is_relevant(lesson(signature="exchange: other", patch=patch), FAILED)


def test_a_patch_that_leaves_the_call_as_it_is_does_not_apply() -> None:
    same = ToolCallPatch("exchange", [ArgumentChange("replace", "currency", value_json='"usd"')])
    assert not patch_applies(same, "exchange", FAILED.arguments)
    assert not is_relevant(lesson(signature="exchange: other", patch=same), FAILED)


def test_a_patch_for_another_tool_or_with_an_unknown_rule_does_not_apply() -> None:
    other = ToolCallPatch("refund", [ArgumentChange("remove", "currency")])
    assert not patch_applies(other, "exchange", FAILED.arguments)
    unknown = ToolCallPatch("exchange", [ArgumentChange("reformat", "currency", rule="nope")])
    assert not patch_applies(unknown, "exchange", FAILED.arguments)


def test_a_tool_switch_applies_to_every_call_of_the_tool() -> None:
    switch = ToolCallPatch("exchange", [], use_tool="return")
    assert patch_applies(switch, "exchange", {})


def test_off_target_means_a_tool_the_episode_never_calls() -> None:
    assert is_off_target(lesson(tool="refund"), {"exchange", "find_user"})
    assert not is_off_target(lesson(tool="exchange"), {"exchange"})
    assert not is_off_target(lesson(tool=None), set())  # preferences are about no tool


def test_any_relevant_looks_at_every_lesson() -> None:
    assert not any_relevant([], FAILED)
    assert any_relevant([lesson(signature="x"), lesson(signature=SIG)], FAILED)
