"""Which episodes are in flight together: nothing is fed before it ended."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kaizen.backtest.plan import Span, Step, plan


def test_sequential_episodes_see_every_earlier_window() -> None:
    spans = [Span(i, i * 10, i * 10 + 5) for i in range(5)]
    assert plan(spans, 2) == [Step((), (0, 1)), Step((0, 1), (2, 3)), Step((2, 3), (4,)),
                              Step((4,), ())]


def test_an_episode_still_running_at_the_next_window_is_fed_later() -> None:
    spans = [Span(0, 0, 100), Span(1, 1, 5), Span(2, 10, 20), Span(3, 30, 40)]
    steps = plan(spans, 1)
    assert steps[2] == Step((1,), (2,))  # 0 is still running at 10
    assert steps[3] == Step((2,), (3,))
    assert steps[4] == Step((3, 0), ())  # in end order


@given(st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 300)), max_size=40),
       st.integers(1, 7))
def test_every_episode_is_fed_once_and_never_before_it_ended(
        raw: list[tuple[int, int]], window: int) -> None:
    spans = [Span(i, start, start + length) for i, (start, length) in enumerate(raw)]
    steps = plan(spans, window)
    fed = [i for s in steps for i in s.feed]
    recalled = [i for s in steps for i in s.recall]
    assert sorted(fed) == sorted(recalled) == list(range(len(spans)))
    seen: set[int] = set()
    for step in steps:
        seen |= set(step.feed)
        if step.recall:
            start = min(spans[i].start_ms for i in step.recall)
            assert all(spans[i].end_ms <= start for i in seen)
            assert len(step.recall) <= window
