"""Evaluation: edge case selection, the counterfactual and replay evaluators, quorum."""

from __future__ import annotations

import json
import random
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaizen.processors.learning.evaluation import (
    CaseKind,
    CounterfactualEvaluator,
    EdgeCase,
    Evaluation,
    Evaluator,
    ReplayEvaluator,
    homework,
    lesson_episodes,
    quorum,
    recall_by_trigger,
    select_edge_cases,
)
from kaizen.schemas.model import (
    ArgumentChange,
    Evidence,
    Experience,
    Signal,
    ToolCallPatch,
    Trigger,
)

T0 = 1_700_000_000_000
QUOTED = "search: Could not find [<quoted>]."
TIMEOUT = "search: timeout"
STRIP = ToolCallPatch("search", [ArgumentChange("reformat", "q", rule="strip_quotes")])
LOWER = ToolCallPatch("search", [ArgumentChange("reformat", "q", rule="lowercase")])


def signal(episode: str, kind: str, *, at: int = T0, **fields: object) -> Signal:
    eid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{episode}/{kind}/{at}/{fields.get('signature')}"))
    return Signal(eid, at, "acme", "bot", episode, kind, task=f"task of {episode}",
                  **fields)  # type: ignore[arg-type]


def lesson(xid: str, signature: str | None, patch: ToolCallPatch | None = None,
           episodes: tuple[str, ...] = ()) -> Experience:
    return Experience(
        str(uuid.uuid5(uuid.NAMESPACE_URL, xid)), T0, "acme", "bot", xid, 1, "recovery",
        Trigger(signature, "qa", "a task"), "guidance", [Evidence(e, 0, 1) for e in episodes],
        1, 1, tool="search", patch=patch, status="proposed",
    )


def case(episode: str, kind: CaseKind, *, signature: str | None = None,
         args: dict[str, object] | None = None, patch: ToolCallPatch | None = None,
         tool: str | None = "search") -> EdgeCase:
    return EdgeCase(episode, "t", tool, dict(args or {}), signature, None, kind, patch)


# --- selection ----------------------------------------------------------------------------


def history() -> list[Signal]:
    args = json.dumps({"q": '"Kafka"'})
    return [
        signal("e1", "failure", at=T0, tool="search", signature=QUOTED, arguments_json=args),
        signal("e1", "recovery", at=T0 + 1, tool="search", signature=QUOTED,
               arguments_json=args, patch=STRIP),
        signal("e1", "outcome", at=T0 + 2, outcome="success"),
        signal("e2", "failure", at=T0 + 10, tool="search", signature=TIMEOUT, arguments_json="{"),
        signal("e2", "outcome", at=T0 + 11, outcome="failure"),
        signal("e3", "correction", at=T0 + 20, correction="use the order id"),
        signal("e3", "outcome", at=T0 + 21, outcome="success"),
        signal("e4", "outcome", at=T0 + 30, outcome="success"),
        signal("e5", "outcome", at=T0 + 40, outcome="abandoned"),
        signal("e6", "rating", at=T0 + 50, rating=1.0),
    ]


def test_select_edge_cases_kinds_and_fields() -> None:
    cases = {(c.episode_id, c.kind): c for c in select_edge_cases(history(), set(), 10)}
    assert set(cases) == {("e1", "recovery"), ("e2", "failure"), ("e3", "corrected"),
                          ("e4", "success")}
    rec = cases["e1", "recovery"]
    assert (rec.tool, rec.arguments, rec.signature, rec.patch, rec.outcome) == (
        "search", {"q": '"Kafka"'}, QUOTED, STRIP, "success")
    fail = cases["e2", "failure"]
    assert (fail.arguments, fail.outcome, fail.patch) == ({"_raw": "{"}, "failure", None)
    assert cases["e4", "success"].tool is None


def test_select_edge_cases_excludes_source_episodes_and_duplicates() -> None:
    signals = history()
    cases = select_edge_cases([*signals, *signals], {"e1", "e3"}, 10)
    assert sorted(c.episode_id for c in cases) == ["e2", "e4"]


def test_limit_lets_kinds_take_turns() -> None:
    signals = [signal(f"s{i}", "outcome", at=T0 + i, outcome="success") for i in range(20)]
    signals.append(signal("f", "failure", at=T0, tool="search", signature=QUOTED,
                          arguments_json="{}"))
    cases = select_edge_cases(signals, set(), 3)
    assert [c.kind for c in cases] == ["failure", "success", "success"]
    assert [c.episode_id for c in cases[1:]] == ["s19", "s18"]  # most recent first
    assert select_edge_cases(signals, set(), 0) == []


def test_one_case_per_failed_signature_in_an_episode() -> None:
    signals = [
        signal("e", "failure", at=T0, tool="search", signature=QUOTED, arguments_json="{}"),
        signal("e", "failure", at=T0 + 1, tool="search", signature=QUOTED, arguments_json="{}"),
        signal("e", "failure", at=T0 + 2, tool="search", signature=TIMEOUT, arguments_json="{}"),
    ]
    cases = select_edge_cases(signals, set(), 10)
    assert sorted(c.signature or "" for c in cases) == sorted([QUOTED, TIMEOUT])


@given(st.randoms(use_true_random=False))
def test_selection_does_not_depend_on_arrival_order(rnd: random.Random) -> None:
    signals = history()
    shuffled = list(signals)
    rnd.shuffle(shuffled)
    assert select_edge_cases(shuffled, set(), 3) == select_edge_cases(signals, set(), 3)


def test_lesson_episodes() -> None:
    assert lesson_episodes([lesson("a", QUOTED, episodes=("e1", "e2")),
                            lesson("b", None, episodes=("e2", "e9"))]) == {"e1", "e2", "e9"}


def test_homework_keeps_the_source_episodes_of_lessons_with_a_patch() -> None:
    assert homework([lesson("a", QUOTED, STRIP, episodes=("e1",)),
                     lesson("b", None, episodes=("e2",))]) == {"e2"}


def test_a_harmful_patch_beside_a_changed_lesson_of_its_tool_is_caught() -> None:
    """The demo's harmful lesson (a patch, no evidence) came in one candidate with a new version
    of the lesson that recoveries of its tool taught: leaving that lesson's source episodes out
    left no recovery to grade the harmful patch on, and it passed."""
    args = json.dumps({"q": '"Kafka"'})
    signals = [s for ep in ("r1", "r2") for s in (
        signal(ep, "failure", tool="search", signature=QUOTED, arguments_json=args),
        signal(ep, "recovery", at=T0 + 1, tool="search", signature=QUOTED, arguments_json=args,
               patch=STRIP),
        signal(ep, "outcome", at=T0 + 2, outcome="success"))]
    taught = lesson("strip", QUOTED, STRIP, episodes=("r1", "r2"))
    harmful = lesson("lower", "search: something else", LOWER)
    cases = select_edge_cases(signals, homework([taught, harmful]), 10)
    result = counterfactual().evaluate([taught, harmful], [], cases)
    assert (result.verdict, result.failing) == ("fail", ["r1", "r2"])
    assert counterfactual().evaluate([taught], [], cases).verdict == "pass"  # not its own source


# --- counterfactual -----------------------------------------------------------------------


def counterfactual() -> CounterfactualEvaluator:
    return CounterfactualEvaluator(recall=recall_by_trigger)


def test_candidate_that_covers_more_and_disturbs_nothing_passes() -> None:
    cases = [case("f1", "failure", signature=QUOTED, args={"q": '"x"'}),
             case("f2", "failure", signature=TIMEOUT),
             case("ok", "success", args={"q": "plain"})]
    result = counterfactual().evaluate([lesson("a", QUOTED, STRIP)], [], cases)
    assert result.verdict == "pass", result.reason
    assert result.scores["coverage"] == 0.5 and result.scores["active_coverage"] == 0.0
    assert result.scores["interference"] == 0.0
    assert result.edge_cases == ["f1", "f2", "ok"] and result.failing == []


def test_patch_that_changes_a_call_that_worked_fails() -> None:
    cases = [case("f1", "failure", signature=QUOTED), case("ok", "success", args={"q": "Kafka"})]
    result = counterfactual().evaluate([lesson("low", QUOTED, LOWER)], [], cases)
    assert result.verdict == "fail"
    assert result.failing == ["ok"]
    assert result.scores["interference"] == 1.0
    lenient = CounterfactualEvaluator(recall=recall_by_trigger, max_interference=1)
    tolerated = lenient.evaluate([lesson("low", QUOTED, LOWER)], [], cases)
    assert (tolerated.verdict, tolerated.failing) == ("pass", [])


def test_recovery_cases_check_the_patched_call() -> None:
    """The call that worked in a recovery is the failed call with its patch applied."""
    rec = case("r", "recovery", signature=QUOTED, args={"q": '"Kafka"'}, patch=STRIP)
    assert counterfactual().evaluate([lesson("a", QUOTED, STRIP)], [], [rec]).verdict == "pass"
    result = counterfactual().evaluate([lesson("b", QUOTED, LOWER)], [], [rec])
    assert (result.verdict, result.failing) == ("fail", ["r"])


def test_interference_the_active_snapshot_already_has_is_not_new() -> None:
    old = lesson("low", TIMEOUT, LOWER)
    cases = [case("ok", "success", args={"q": "Kafka"})]
    result = counterfactual().evaluate([old, lesson("a", QUOTED, STRIP)], [old], cases)
    assert result.verdict == "pass"
    assert (result.scores["interference"], result.scores["interference_total"]) == (0.0, 1.0)


def test_lost_coverage_fails_and_lists_the_case() -> None:
    cases = [case("f1", "failure", signature=QUOTED), case("f2", "failure", signature=TIMEOUT)]
    result = counterfactual().evaluate([lesson("t", TIMEOUT)], [lesson("a", QUOTED)], cases)
    assert result.verdict == "fail" and "coverage" in result.reason
    assert result.failing == ["f1"]


def test_coverage_needs_recall_to_return_the_lesson() -> None:
    never = CounterfactualEvaluator(recall=lambda c, lessons: [])
    result = never.evaluate([lesson("a", QUOTED)], [], [case("f1", "failure", signature=QUOTED)])
    assert result.scores["coverage"] == 0.0


def test_unappliable_patch_changes_nothing() -> None:
    def broken(patch: ToolCallPatch, tool: str, args: dict[str, object]) -> tuple[str, dict]:
        raise ValueError("unknown op")

    ev = CounterfactualEvaluator(recall=recall_by_trigger, apply_patch=broken)
    assert ev.evaluate([lesson("a", QUOTED, LOWER)], [],
                       [case("ok", "success", args={"q": "K"})]).verdict == "pass"


# --- replay -------------------------------------------------------------------------------


def agent_that_needs(needed: dict[str, str]) -> ReplayEvaluator:
    """Succeeds on a case when the lesson it needs (by episode) is among the given lessons."""
    def run(c: EdgeCase, lessons: list[Experience]) -> bool:
        return c.episode_id not in needed or needed[c.episode_id] in {
            x.experience_id for x in lessons}
    return ReplayEvaluator(agent=run)


def test_replay_pass_and_gain() -> None:
    ev = agent_that_needs({"e1": "a"})
    result = ev.evaluate([lesson("a", QUOTED)], [], [case("e1", "failure"), case("e2", "success")])
    assert result.verdict == "pass"
    assert (result.scores["candidate_successes"], result.scores["active_successes"]) == (2.0, 1.0)
    assert result.scores["gained"] == 1.0


def test_replay_fails_on_any_lost_case_even_with_equal_totals() -> None:
    ev = agent_that_needs({"e1": "a", "e2": "b"})
    result = ev.evaluate([lesson("b", None)], [lesson("a", None)],
                         [case("e1", "failure"), case("e2", "failure")])
    assert result.verdict == "fail" and result.failing == ["e1"]
    assert "loses 1" in result.reason


# --- quorum -------------------------------------------------------------------------------


def ev(name: str, verdict: str) -> Evaluation:
    return Evaluation(name, verdict)  # type: ignore[arg-type]


@pytest.mark.parametrize(("evals", "required", "k", "expected"), [
    ([ev("c", "pass"), ev("r", "pass")], ("c",), 2, True),
    ([ev("c", "pass"), ev("r", "fail")], ("c",), 2, False),
    ([ev("c", "pass"), ev("r", "fail")], ("c",), 1, True),
    ([ev("r", "pass")], ("c",), 1, False),
    ([ev("c", "fail"), ev("c", "pass")], ("c",), 1, True),  # the latest verdict counts
])
def test_quorum(evals: list[Evaluation], required: tuple[str, ...], k: int,
                expected: bool) -> None:
    assert quorum(evals, required, k) is expected


def test_built_in_evaluators_satisfy_the_protocol() -> None:
    evaluators: list[Evaluator] = [counterfactual(), agent_that_needs({})]
    assert [e.name for e in evaluators] == ["counterfactual", "replay"]
