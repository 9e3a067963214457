"""Live regression monitor: posterior probability, watch lifecycle, rollback requests."""

from __future__ import annotations

import json
import math
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaizen.processors.learning.monitor import (
    MARGIN,
    MIN_EPISODES,
    PARENT_WINDOW,
    THRESHOLD,
    WATCH_LIMIT,
    MonitorState,
    RollbackRequest,
    observe,
    on_snapshot,
    prob_worse,
)
from kaizen.processors.learning.snapshots import activated_event, rolled_back_event
from kaizen.schemas.model import Signal

T0 = 1_700_000_000_000


def outcome(i: int, snapshot: str, result: str, *, kind: str = "outcome") -> Signal:
    eid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{snapshot}/{i}/{kind}"))
    return Signal(eid, T0 + i, "acme", "bot", f"ep-{snapshot}-{i}", kind, snapshot_id=snapshot,
                  outcome=result)


def log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def exact_prob_worse(s_new: int, n_new: int, s_old: int, n_old: int) -> float:
    """P(p_new < p_old), Beta(1+s, 1+f) posteriors: the closed form for integer parameters."""
    a_old, b_old = 1 + s_old, 1 + n_old - s_old
    a_new, b_new = 1 + s_new, 1 + n_new - s_new
    total = sum(
        math.exp(log_beta(a_new + i, b_new + b_old) - math.log(b_old + i)
                 - log_beta(1 + i, b_old) - log_beta(a_new, b_new))
        for i in range(a_old)
    )
    return total  # P(p_old > p_new)


@pytest.mark.parametrize(("s_new", "n_new", "s_old", "n_old"), [
    (5, 10, 5, 10), (10, 50, 45, 50), (44, 50, 45, 50), (3, 40, 1, 40), (0, 0, 7, 9),
])
def test_prob_worse_matches_the_closed_form(s_new: int, n_new: int, s_old: int,
                                            n_old: int) -> None:
    assert prob_worse(s_new, n_new, s_old, n_old) == pytest.approx(
        exact_prob_worse(s_new, n_new, s_old, n_old), abs=2e-3)


def test_prob_worse_is_symmetric_and_the_margin_lowers_it() -> None:
    assert prob_worse(20, 40, 20, 40) == pytest.approx(0.5, abs=1e-3)
    assert prob_worse(30, 50, 35, 50, margin=0.1) < prob_worse(30, 50, 35, 50)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 60), st.integers(0, 60), st.integers(0, 60), st.integers(0, 60))
def test_prob_worse_is_monotone_in_new_successes(a: int, extra: int, s_old: int,
                                                 more: int) -> None:
    n_new, n_old = a + extra + 1, s_old + more
    assert prob_worse(a + 1, n_new, s_old, n_old) <= prob_worse(a, n_new, s_old, n_old) + 1e-9


def watched(parent_successes: int, parent_n: int) -> MonitorState:
    """Parent P active with the given outcomes, then N activated over it."""
    state = on_snapshot(None, activated_event("acme", "bot", "P", replaced=None, occurred_at=T0))
    for i in range(parent_n):
        state, decision = observe(state, outcome(i, "P", "success" if i < parent_successes
                                                 else "failure"))
        assert decision is None  # nothing is watched yet
    return on_snapshot(state, activated_event("acme", "bot", "N", replaced="P", occurred_at=T0))


def feed(state: MonitorState, snapshot: str, results: list[str],
         start: int = 1000) -> list[RollbackRequest | None]:
    decisions: list[RollbackRequest | None] = []
    for i, r in enumerate(results, start):
        state, d = observe(state, outcome(i, snapshot, r))
        decisions.append(d)
    return decisions


def test_a_clear_regression_requests_one_rollback_with_evidence() -> None:
    state = watched(45, 50)
    decisions = feed(state, "N", ["failure"] * 20 + ["success"] * 10 + ["failure"] * 10)
    hits = [(i, d) for i, d in enumerate(decisions) if d is not None]
    assert len(hits) == 1, "a rollback is requested once"
    index, request = hits[0]
    assert index + 1 >= MIN_EPISODES
    assert (request.snapshot_id, request.to_snapshot) == ("N", "P")
    assert request.scores["parent_rate"] == 0.9
    assert request.scores["new_episodes"] == index + 1
    assert request.scores["prob_regression"] > THRESHOLD
    assert request.occurred_at == T0 + 1000 + index
    event = request.to_event()
    assert (event.action, event.snapshot_id, event.parent_id, event.actor) == (
        "rolled_back", "P", "N", "monitor")
    assert event.scores == request.scores


def test_no_verdict_before_the_minimum_episodes() -> None:
    state = watched(50, 50)
    assert feed(state, "N", ["failure"] * (MIN_EPISODES - 1)) == [None] * (MIN_EPISODES - 1)


def test_a_drop_within_the_margin_is_not_a_regression() -> None:
    state = watched(90, 100)
    results = (["success"] * 88 + ["failure"] * 12) * 2  # 88% vs 90%: inside MARGIN
    assert all(d is None for d in feed(state, "N", results))
    assert MARGIN == 0.05


def test_duplicates_and_other_signals_change_nothing() -> None:
    state = watched(45, 50)
    state, _ = observe(state, outcome(1, "N", "failure"))
    before = state.to_dict()
    for signal in (outcome(1, "N", "failure"), outcome(2, "N", "failure", kind="failure"),
                   outcome(3, "OLD", "failure")):
        state, decision = observe(state, signal)
        assert decision is None
    assert state.to_dict() == before


def test_rollback_event_ends_the_watch_and_keeps_the_baseline() -> None:
    state = watched(45, 50)
    feed(state, "N", ["failure"] * 40)
    assert state.requested
    state = on_snapshot(state, rolled_back_event("acme", "bot", "P", replaced="N",
                                                 occurred_at=T0, actor="monitor", reason="x"))
    assert (state.active, state.watching, state.parent, state.requested) == ("P", None, None,
                                                                               False)
    assert list(state.outcomes) == ["P"] and len(state.outcomes["P"]) == 50
    assert all(d is None for d in feed(state, "P", ["failure"] * 40, start=5000))


def test_the_parent_baseline_is_a_bounded_window() -> None:
    state = watched(0, PARENT_WINDOW + 20)
    assert len(state.outcomes["P"]) == PARENT_WINDOW


def test_a_good_snapshot_is_accepted_after_the_watch_limit() -> None:
    state = watched(45, 50)
    feed(state, "N", ["success"] * WATCH_LIMIT)
    assert state.watching is None and state.parent is None and list(state.outcomes) == ["N"]


def test_first_activation_watches_nothing() -> None:
    state = on_snapshot(None, activated_event("acme", "bot", "N", replaced=None, occurred_at=T0))
    assert all(d is None for d in feed(state, "N", ["failure"] * 100))


def test_state_round_trips_through_json() -> None:
    state = watched(45, 50)
    feed(state, "N", ["failure"] * 5)
    assert MonitorState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    with pytest.raises(ValueError, match="version"):
        MonitorState.from_dict({"version": 99})


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(["success", "failure", "abandoned"]), max_size=80))
def test_replay_gives_the_same_decisions(results: list[str]) -> None:
    first = feed(watched(45, 50), "N", results)
    second = feed(watched(45, 50), "N", results)
    assert first == second
