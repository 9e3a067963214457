"""What extraction records for curation's rules: outcomes, task ids, where a fixed value came
from, and whether a substitute tool serves the same purpose (issue 10, curation)."""

from __future__ import annotations

import json
from typing import Any

from kaizen.processors.learning.episodes import (
    HELD_LIMIT,
    EpisodeState,
    apply_event,
    close_if_idle,
)
from kaizen.schemas import model
from kaizen.schemas.model import Signal
from tests.unit.processors.test_episodes import T0, call, ev, failed


def started(task: str = "Exchange the lamp in order #W2378156", task_id: str = "t5") -> Any:
    return model.EpisodeStarted(task, "retail", "gpt-4o", task_id)


def ok(call_id: str, tool: str, output: str = "ok") -> model.ToolResult:
    return model.ToolResult(call_id, tool, True, None, output)


def fold(*payloads: model.EpisodePayload) -> tuple[EpisodeState, list[Signal]]:
    state: EpisodeState | None = None
    signals: list[Signal] = []
    for seq, payload in enumerate(payloads):
        state, out = apply_event(state, ev(payload, seq))
        signals += out
    assert state is not None
    return state, signals


def test_failures_wait_for_the_outcome_and_carry_it() -> None:
    state, early = fold(started(), call("c1", "get_order", {"id": 1}), failed("c1", "get_order"))
    assert early == [] and [s.kind for s in state.held] == ["failure"]
    _, out = apply_event(state, ev(model.EpisodeEnded("failure"), 3))
    assert [(s.kind, s.outcome) for s in out] == [("failure", "failure"), ("outcome", "failure")]


def test_an_idle_episode_releases_its_signals_as_abandoned() -> None:
    state, _ = fold(started(), call("c1", "get_order", {"id": 1}), failed("c1", "get_order"))
    _, out = close_if_idle(state, T0 + 10**9, idle_ms=1000)
    assert [(s.kind, s.outcome) for s in out] == [
        ("failure", "abandoned"),
        ("outcome", "abandoned"),
    ]


def test_held_signals_survive_a_restart_and_are_bounded() -> None:
    payloads: list[model.EpisodePayload] = [started()]
    for i in range(HELD_LIMIT + 3):
        payloads += [call(f"c{i}", "get_order", {"id": i}), failed(f"c{i}", "get_order")]
    state, early = fold(*payloads)
    assert len(state.held) == HELD_LIMIT and len(early) == 3  # the oldest went out early
    assert all(s.outcome is None for s in early)
    restored = EpisodeState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert restored.held == state.held


def test_signals_carry_the_task_id() -> None:
    state, _ = fold(started(task_id="t42"), call("c1", "get_order", {"id": 1}),
                    failed("c1", "get_order"))
    assert [s.task_id for s in state.held] == ["t42"]


def test_a_value_taken_from_an_earlier_result_is_marked_as_such() -> None:
    state, _ = fold(
        started(),
        call("c1", "get_product", {"product_id": "1656367028"}),
        ok("c1", "get_product", '{"variants": {"7706410293": {"available": true}}}'),
        call("c2", "modify_items", {"new_item_ids": ["1151293680"]}),
        failed("c2", "modify_items", "New item 1151293680 not found or available"),
        call("c3", "modify_items", {"new_item_ids": ["7706410293"]}),
        ok("c3", "modify_items"),
    )
    recovery = next(s for s in state.held if s.kind == "recovery")
    assert recovery.patch is not None
    assert [(c.op, c.rule) for c in recovery.patch.changes] == [
        ("replace", "from_result:get_product")
    ]


def test_a_value_from_the_task_text_is_marked_from_task() -> None:
    state, _ = fold(
        started(task="Exchange the lamp in order #W2378156"),
        call("c1", "get_order", {"order_id": "#W0000001"}),
        failed("c1", "get_order", "Order not found"),
        call("c2", "get_order", {"order_id": "#W2378156"}),
        ok("c2", "get_order"),
    )
    recovery = next(s for s in state.held if s.kind == "recovery")
    assert recovery.patch is not None and recovery.patch.changes[0].rule == "from_task"


def test_a_failed_update_then_a_cancellation_is_not_a_substitute() -> None:
    """Counter-example to the old rule (next call, shared `order_id`, worked = "use cancel")."""
    state, _ = fold(
        started(),
        call("c1", "modify_pending_order_items", {"order_id": "#W1", "item_ids": ["1"]}),
        failed("c1", "modify_pending_order_items", "The number of items should match"),
        call("c2", "cancel_pending_order", {"order_id": "#W1", "reason": "no longer needed"}),
        ok("c2", "cancel_pending_order"),
    )
    assert [s.kind for s in state.held] == ["failure"]


def test_a_lookup_by_another_key_is_a_substitute() -> None:
    state, _ = fold(
        started(),
        call("c1", "find_user_id_by_email", {"email": "a@b.c", "zip": "19122"}),
        failed("c1", "find_user_id_by_email", "User not found"),
        call("c2", "find_user_id_by_name_zip", {"first_name": "Y", "zip": "19122"}),
        ok("c2", "find_user_id_by_name_zip", "yusuf_rossi_9620"),
    )
    recovery = [s for s in state.held if s.kind == "recovery"]
    assert recovery and recovery[0].patch is not None
    assert recovery[0].patch.use_tool == "find_user_id_by_name_zip"
