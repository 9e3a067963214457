"""Issue 13: pattern state stays O(1) in the tool results of an open window.

Before the fix, every event id, session, user and tenant of an open window was kept: 100k calls
of one agent made a 4 MB table value, past faust's ~1 MB changelog message limit, and the worker
crashed on every start. The pure fold is driven directly with a million results of one agent in
one window (the processors do nothing else with them), checking the encoded state stays bounded
while the counts stay exact (calls, failures) or within the sketch's error (distinct counts).
"""

from __future__ import annotations

import json

import pytest

from kaizen.processors.learning.patterns import PatternState, apply_tool_result
from kaizen.schemas.model import EpisodeEvent, Pattern, ToolResult

INPUTS = 1_000_000
BOUND = 256 * 1024  # bytes of JSON: far below the ~1 MB changelog message limit
T0 = 1_699_999_200_000  # the start of an hour: one window


def _signature(tool: str, error: str) -> str:
    return f"{tool}: {error}"


def _result(i: int) -> EpisodeEvent:
    failed = i % 10 == 0
    payload = ToolResult(f"c{i}", f"tool{i % 10}", not failed, f"error {i % 3}" if failed else None)
    return EpisodeEvent(f"e{i}", T0 + i % 3_600_000, f"t{i % 7}", "bot", f"ep{i % 50_000}", i,
                        payload, user=f"u{i % 3_000}")


def _size(state: PatternState) -> int:
    return len(json.dumps(state.to_dict()))


@pytest.mark.timeout(900)  # minutes on a loaded 2-core machine
def test_one_window_with_a_million_results_keeps_a_bounded_state() -> None:
    state: PatternState | None = None
    last: dict[str, Pattern] = {}
    sizes = []
    for i in range(INPUTS):
        state, out = apply_tool_result(state, _result(i), signature_of=_signature,
                                       window_seconds=3600, history_windows=10, late_windows=10)
        for pattern in out:
            last[pattern.signature] = pattern
        if i % 100_000 == 99_999:
            sizes.append(_size(state))
    assert state is not None and len(state.windows) == 1
    assert max(sizes) < BOUND, sizes
    assert sizes[-1] <= sizes[0] * 1.5  # flat, not growing with the inputs
    (window,) = state.windows.values()
    assert sum(window.tool_calls.values()) == INPUTS  # calls counted exactly
    failures = list(last.values())
    assert sorted(p.failures for p in failures) == [33_333, 33_333, 33_334]
    for pattern in failures:  # one i mod 30 each: 5,000 episodes, 100 users, 7 tenants
        assert abs(pattern.sessions - 5_000) <= 0.3 * 5_000
        assert abs(pattern.users - 100) <= 0.3 * 100
        assert pattern.tenants == 7

    before = state.to_dict()
    for i in range(INPUTS - 2_000, INPUTS):  # the last results delivered again
        state, out = apply_tool_result(state, _result(i), signature_of=_signature,
                                       window_seconds=3600, history_windows=10, late_windows=10)
        assert out == []
    assert state.to_dict() == before
