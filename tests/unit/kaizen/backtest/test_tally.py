"""The backtest's figures on constructed episodes where the answer is known."""

from __future__ import annotations

from kaizen.backtest.matching import Call, FailedCall, LessonView
from kaizen.backtest.tally import EpisodeFacts, Recalls, Tally

SIG = "pay: Error: currency required"
FAIL = FailedCall("pay", SIG, {"amount": 5})
LESSON = LessonView("add-currency", "pay", SIG, None)
OFF = LessonView("weather-tip", "weather", "weather: Error: x", None)


def facts(index: int, *failures: FailedCall, tools: tuple[str, ...] = ("pay",)) -> EpisodeFacts:
    return EpisodeFacts(index, "bot", frozenset(tools), tuple(failures))


def test_recurring_after_support_and_coverage() -> None:
    tally = Tally(min_support=2)
    episodes = [facts(i, FAIL) for i in range(4)]
    recalls = [(), (), (LESSON,), (OFF,)]
    for i, (episode, lessons) in enumerate(zip(episodes, recalls, strict=True)):
        if i >= 2:
            tally.fed(episodes[i - 2])  # two episodes behind: in flight, as a window of 2
        tally.recalled(episode, Recalls(before=lessons))
    assert (tally.failures, tally.recurring_failures, tally.novel_failures) == (4, 3, 1)
    # episode 2 had 1 fed occurrence before it (support 2 not reached); episode 3 had 2
    assert tally.recurring_after_support == 1
    assert tally.recurring_with_relevant_lesson == 0  # episode 3 got only the off-target lesson
    assert tally.recurring_any_with_relevant_lesson == 1  # episode 2's lesson was relevant
    assert tally.episodes_with_off_target_lesson == 1
    assert tally.lessons["add-currency"].relevant == 1
    assert tally.lessons["weather-tip"].off_target == 1


def test_a_failure_repeated_in_one_episode_counts_once_and_on_error_covers_the_repeat() -> None:
    tally = Tally(min_support=1)
    episode = facts(0, FAIL, FAIL, FailedCall("pay", "pay: other", {}))
    tally.recalled(episode, Recalls(before=(), on_error=((LESSON,), (), ())))
    assert (tally.failures, tally.failed_calls, tally.recurring_failures) == (2, 3, 0)
    assert tally.failed_calls_after_first == 2
    assert tally.covered_by_on_error_recall == 1  # the second FAIL; "pay: other" is not covered


def test_episodes_without_failures_count_in_the_denominators_only() -> None:
    tally = Tally(min_support=1)
    tally.recalled(facts(0), Recalls(before=(LESSON,)))
    assert (tally.episodes, tally.failures, tally.episodes_with_lesson) == (1, 0, 1)
    assert tally.episodes_with_off_target_lesson == 0


def test_a_lesson_recalled_right_before_the_failing_call_covers_it_and_is_counted_apart() -> None:
    """Point-of-use recall: the start recall got nothing (or an off-target lesson), the recall
    before the failing call (position 1) got the relevant lesson: covered, split `at_call`."""
    tally = Tally(min_support=1)
    first = EpisodeFacts(0, "bot", frozenset({"look", "pay"}),
                         (FailedCall("pay", SIG, {"amount": 5}, 1),),
                         (Call("look", {}), Call("pay", {"amount": 5})))
    tally.recalled(first, Recalls(before=()))
    tally.fed(first)
    again = EpisodeFacts(1, "bot", frozenset({"look", "pay"}),
                         (FailedCall("pay", SIG, {"amount": 5}, 1),),
                         (Call("look", {}), Call("pay", {"amount": 5})))
    tally.recalled(again, Recalls(before=(OFF,), at_call=((), (LESSON,))))
    assert tally.recurring_after_support == 1
    assert tally.recurring_with_relevant_lesson == 1
    assert (tally.recurring_with_relevant_lesson_at_start,
            tally.recurring_with_relevant_lesson_at_call) == (0, 1)
    assert (tally.calls, tally.calls_with_lesson) == (4, 1)
    assert tally.episodes_with_off_target_lesson == tally.episodes_with_off_target_lesson_at_start
    assert tally.episodes_with_off_target_lesson == 1  # the start's weather tip
    assert tally.lessons["add-currency"].relevant == 1


def test_a_lesson_recalled_only_before_another_call_does_not_cover_the_failure() -> None:
    """Before *that* call: a relevant lesson shown before call 0 but not before the failing call
    1 does not count at the call (it was not recalled for it), and a point-of-use lesson about a
    tool the episode never calls is off-target like any other."""
    tally = Tally(min_support=1)
    episode = EpisodeFacts(0, "bot", frozenset({"pay"}),
                           (FailedCall("pay", SIG, {"amount": 5}, 1),),
                           (Call("pay", {"amount": 1}), Call("pay", {"amount": 5})))
    tally.recalled(episode, Recalls(before=()))
    tally.fed(episode)
    tally.recalled(episode, Recalls(before=(), at_call=((LESSON,), (OFF,))))
    assert (tally.recurring_after_support, tally.recurring_with_relevant_lesson) == (1, 0)
    assert tally.episodes_with_off_target_lesson == 1
    assert tally.episodes_with_off_target_lesson_at_start == 0
