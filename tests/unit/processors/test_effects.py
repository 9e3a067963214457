"""Per-lesson effect: helpful / harmful counts from outcome signals, and quarantine."""

from __future__ import annotations

import json
import random
import uuid

from hypothesis import given
from hypothesis import strategies as st

from kaizen.processors.learning.effects import EffectState, apply, quarantined
from kaizen.schemas.model import Signal

T0 = 1_700_000_000_000


def outcome(i: int, result: str, recalled: list[str], kind: str = "outcome") -> Signal:
    eid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"effects/{i}/{kind}"))
    return Signal(eid, T0 + i, "acme", "bot", f"ep-{i}", kind, outcome=result,
                  recalled_ids=recalled)


def fold(signals: list[Signal]) -> EffectState:
    state = EffectState()
    for s in signals:
        state, _ = apply(state, s)
    return state


def test_counts_helpful_and_harmful_per_recalled_lesson() -> None:
    state, changed = apply(None, outcome(1, "success", ["a", "b", "a"]))
    assert changed == ["a", "b"]
    state, changed = apply(state, outcome(2, "failure", ["a"]))
    assert changed == ["a"]
    state, changed = apply(state, outcome(3, "abandoned", ["a"]))
    assert changed == []
    assert (state.helpful, state.harmful) == ({"a": 1, "b": 1}, {"a": 1})


def test_duplicates_and_other_kinds_change_nothing() -> None:
    state = fold([outcome(1, "failure", ["a"])])
    before = state.to_dict()
    for s in (outcome(1, "failure", ["a"]), outcome(2, "failure", ["a"], kind="failure")):
        state, changed = apply(state, s)
        assert changed == []
    assert state.to_dict() == before


def test_quarantine_needs_enough_episodes_and_a_harmful_majority() -> None:
    signals = [outcome(i, "failure", ["bad", "tie", "few"] if i < 3 else ["bad", "tie"])
               for i in range(6)]
    signals += [outcome(10 + i, "success", ["tie", "good"]) for i in range(6)]
    signals += [outcome(20, "success", ["bad"])]
    state = fold(signals)
    assert quarantined(state) == {"bad"}  # tie is 6/12 = 0.5, not above; few has 3 episodes
    assert quarantined(state, min_episodes=3) == {"bad", "few"}
    assert quarantined(state, harm_ratio=0.4) == {"bad", "tie"}


def test_state_round_trips_through_json() -> None:
    state = fold([outcome(1, "success", ["a"]), outcome(2, "failure", ["b"])])
    assert EffectState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


@given(st.lists(st.tuples(st.sampled_from(["success", "failure", "abandoned"]),
                          st.lists(st.sampled_from("abc"), max_size=3)), max_size=30),
       st.randoms(use_true_random=False))
def test_counts_do_not_depend_on_order_or_redelivery(rows: list[tuple[str, list[str]]],
                                                     rnd: random.Random) -> None:
    signals = [outcome(i, r, ids) for i, (r, ids) in enumerate(rows)]
    redelivered = signals + signals[: len(signals) // 2]
    rnd.shuffle(redelivered)
    a, b = fold(signals), fold(redelivered)
    assert (a.helpful, a.harmful) == (b.helpful, b.harmful)
    for xid in "abc":
        expected = sum(1 for r, ids in rows if r == "failure" and xid in ids)
        assert a.harmful.get(xid, 0) == expected
