"""Episode assembly: signals from one episode's events, whatever the delivery order or repeats."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaizen.processors.learning.episodes import (
    SIGNAL_NAMESPACE,
    EpisodeState,
    PositionedEvent,
    _with_outcome,
    apply_event,
    close_if_idle,
    is_finished,
    is_retry_recovery,
)
from kaizen.schemas import model
from kaizen.schemas.model import ArgumentChange, Signal, ToolCallPatch

EP = "ep-1"
T0 = 1_700_000_000_000
# Observations from the Reflexion HotpotQA ReAct logs: the quoted query fails, the bare one works.
MILHOUSE_ERROR = (
    "Could not find [\"Milhouse\"]. Similar: ['Milhouse Van Houten', 'Milhouse (disambiguation)']"
)


def ev(payload: model.EpisodePayload, seq: int, *, user: str | None = "u1") -> PositionedEvent:
    """Event `seq` of episode EP at offset 100 + seq; its id depends only on the seq, so the
    same seq built twice is a re-delivery of the same event."""
    event = model.EpisodeEvent(
        event_id=str(uuid.uuid5(uuid.NAMESPACE_OID, f"{EP}/{seq}")),
        occurred_at=T0 + 1000 * seq,
        tenant="acme",
        agent="qa-bot",
        episode_id=EP,
        seq=seq,
        payload=payload,
        user=user,
        snapshot_id="snap-1",
    )
    return PositionedEvent(event, partition=3, offset=100 + seq)


def script(*payloads: model.EpisodePayload) -> list[PositionedEvent]:
    return [ev(p, seq) for seq, p in enumerate(payloads)]


def run(
    items: Iterable[PositionedEvent],
    state: EpisodeState | None = None,
    *,
    window: int = 64,
    restore_at: int | None = None,
    with_held: bool = True,
) -> tuple[EpisodeState, list[Signal]]:
    """Fold the items; at `restore_at` the state goes through JSON as after a crash. With
    `with_held`, the failures and recoveries still held for the outcome are appended as they
    would go out (without an outcome): most tests are about WHAT is extracted, not when."""
    signals: list[Signal] = []
    for index, item in enumerate(items):
        if index == restore_at and state is not None:
            state = EpisodeState.from_dict(json.loads(json.dumps(state.to_dict())))
        state, out = apply_event(state, item, reorder_window=window)
        signals += out
    assert state is not None
    return state, signals + (list(state.held) if with_held else [])


def signal_id(kind: str, seq: int | str) -> str:
    return str(uuid.uuid5(SIGNAL_NAMESPACE, f"acme/qa-bot/{EP}/{kind}/{seq}"))  # scoped ids


def started() -> model.EpisodeStarted:
    return model.EpisodeStarted("Who is Milhouse's best friend?", "hotpotqa", "v1")


def call(call_id: str, tool: str, args: dict[str, Any]) -> model.ToolCall:
    return model.ToolCall(call_id, tool, json.dumps(args))


def failed(call_id: str, tool: str, error: str = "boom") -> model.ToolResult:
    return model.ToolResult(call_id, tool, False, error)


def worked(call_id: str, tool: str) -> model.ToolResult:
    return model.ToolResult(call_id, tool, True, None, "ok")


# --- each kind of signal --------------------------------------------------------------------


def test_a_failed_result_is_a_failure_signal_with_the_arguments_of_its_call() -> None:
    _, signals = run(
        script(started(), call("c1", "Search", {"query": "x"}), failed("c1", "Search", "E 42"))
    )
    assert signals == [
        Signal(
            event_id=signal_id("failure", 2),
            occurred_at=T0 + 2000,
            tenant="acme",
            agent="qa-bot",
            episode_id=EP,
            kind="failure",
            user="u1",
            snapshot_id="snap-1",
            task="Who is Milhouse's best friend?",
            task_type="hotpotqa",
            tool="Search",
            signature="Search: E <num>",
            error="E 42",
            arguments_json='{"query": "x"}',
            source_partition=3,
            source_offset=102,
        )
    ]


def test_a_result_without_a_known_call_id_answers_the_latest_open_call_of_its_tool() -> None:
    _, signals = run(
        script(
            call("a", "Search", {"query": "old"}),
            call("b", "Lookup", {"keyword": "k"}),
            call("c", "Search", {"query": "new"}),
            failed("?", "Search"),
        )
    )
    assert [s.arguments_json for s in signals] == ['{"query": "new"}']


def test_the_hotpotqa_quoted_search_recovers_by_stripping_quotes() -> None:
    _, signals = run(
        script(
            started(),
            call("c1", "Search", {"query": '"Milhouse"'}),
            failed("c1", "Search", MILHOUSE_ERROR),
            model.LlmCall("gpt-3.5"),
            call("c2", "Search", {"query": "Milhouse"}),
            worked("c2", "Search"),
        )
    )
    failure, recovery = signals
    assert failure.kind == "failure"
    assert failure.signature == "Search: Could not find [<quoted>]. Similar: <list>"
    assert recovery.kind == "recovery"
    assert recovery.signature == failure.signature and recovery.error == MILHOUSE_ERROR
    assert recovery.arguments_json == '{"query": "\\"Milhouse\\""}'
    assert recovery.patch == ToolCallPatch(
        "Search", [ArgumentChange("reformat", "query", rule="strip_quotes")]
    )
    # Identified by the failure it recovers; timed and located at the call that worked.
    assert recovery.event_id == signal_id("recovery", 2)
    assert (recovery.occurred_at, recovery.source_offset) == (T0 + 5000, 105)
    assert not is_retry_recovery(recovery)


def test_the_same_call_working_on_a_later_try_is_a_retry_recovery_without_patch() -> None:
    _, signals = run(
        script(
            call("c1", "orders", {"id": 7}),
            failed("c1", "orders", "503 Service Unavailable"),
            call("c2", "orders", {"id": 7}),
            worked("c2", "orders"),
        )
    )
    assert [s.kind for s in signals] == ["failure", "recovery"]
    assert signals[1].patch is None and is_retry_recovery(signals[1])


def test_another_tool_right_after_the_failure_that_works_is_a_substitute() -> None:
    _, signals = run(
        script(
            call("c1", "web_search", {"q": "kafka"}),
            failed("c1", "web_search", "quota exceeded"),
            call("c2", "wiki", {"title": "kafka"}),
            worked("c2", "wiki"),
        )
    )
    recovery = signals[-1]
    assert recovery.kind == "recovery" and recovery.tool == "web_search"
    assert recovery.patch is not None and recovery.patch.use_tool == "wiki"
    assert recovery.patch.changes == [ArgumentChange("rename", "q", new_argument="title")]


def test_only_the_very_next_call_can_be_a_substitute() -> None:
    _, signals = run(
        script(
            call("c1", "web_search", {"q": "kafka"}),
            failed("c1", "web_search"),
            call("c2", "calculator", {"x": 1}),
            failed("c2", "calculator"),
            call("c3", "wiki", {"title": "kafka", "x": 1}),
            worked("c3", "wiki"),
        )
    )
    # web_search's next call was the calculator, which failed: no lesson "use wiki" for it. The
    # calculator's next call was wiki, which worked: that one is a substitute.
    assert [(s.kind, s.tool) for s in signals] == [
        ("failure", "web_search"),
        ("failure", "calculator"),
        ("recovery", "calculator"),
    ]


def test_a_next_call_sharing_no_argument_is_moving_on_not_a_substitute() -> None:
    _, signals = run(
        script(
            call("c1", "Search", {"query": "Milhouse"}),
            failed("c1", "Search", "Could not find [Milhouse]."),
            call("c2", "Finish", {"answer": "Matt Groening"}),
            worked("c2", "Finish"),
        )
    )
    assert [s.kind for s in signals] == ["failure"]


def test_each_failure_is_recovered_once() -> None:
    _, signals = run(
        script(
            call("c1", "Search", {"query": '"A"'}),
            failed("c1", "Search", 'Could not find ["A"].'),
            call("c2", "Search", {"query": "A B"}),
            failed("c2", "Search", "Could not find [A B]."),
            call("c3", "Search", {"query": "A"}),
            worked("c3", "Search"),
            call("c4", "Search", {"query": "B"}),
            worked("c4", "Search"),
        )
    )
    recoveries = [s for s in signals if s.kind == "recovery"]
    assert [r.event_id for r in recoveries] == [signal_id("recovery", 1), signal_id("recovery", 3)]
    assert [r.signature for r in recoveries] == [
        "Search: Could not find [<quoted>].",
        "Search: Could not find [<str>].",
    ]
    assert all(r.source_offset == 105 for r in recoveries)


def test_a_failure_whose_call_is_unknown_is_reported_but_not_recovered() -> None:
    _, signals = run(
        script(failed("c1", "Search"), call("c2", "Search", {}), worked("c2", "Search"))
    )
    assert [(s.kind, s.arguments_json) for s in signals] == [("failure", None)]


def test_feedback_gives_correction_and_rating_signals_also_after_the_end() -> None:
    state, signals = run(
        script(
            started(),
            model.Feedback(rating=None, correction="Ask for the order id."),
            model.EpisodeEnded("success", 1.0),
            model.Feedback(rating=-0.5, correction="  ", source="user"),
            model.Feedback(rating=1.0, correction="Good, but cite the page."),
        )
    )
    assert [(s.kind, s.correction, s.rating) for s in signals] == [
        ("correction", "Ask for the order id.", None),
        ("outcome", None, None),
        ("rating", None, -0.5),
        ("correction", "Good, but cite the page.", None),
        ("rating", None, 1.0),
    ]
    assert signals[-1].event_id == signal_id("rating", 4) != signals[-2].event_id
    assert all(s.task == started().task for s in signals)
    assert state.closed and state.outcome == "success"


def test_the_outcome_carries_recalled_experiences_and_the_user() -> None:
    _, signals = run(
        script(
            started(),
            model.Recall(["x1", "x2"], "q"),
            model.Recall(["x2", "x3"], "q"),
            model.EpisodeEnded("failure"),
        )
    )
    (outcome,) = signals
    assert (outcome.kind, outcome.outcome, outcome.user) == ("outcome", "failure", "u1")
    assert outcome.recalled_ids == ["x1", "x2", "x3"]
    assert outcome.event_id == signal_id("outcome", 3)


def test_events_after_the_end_other_than_feedback_are_ignored() -> None:
    _, signals = run(
        script(model.EpisodeEnded("success"), call("c", "Search", {}), failed("c", "Search"))
    )
    assert [s.kind for s in signals] == ["outcome"]


# --- delivery: duplicates, order, gaps -------------------------------------------------------


def test_a_duplicate_changes_nothing() -> None:
    items = script(started(), call("c1", "Search", {}), failed("c1", "Search"))
    state, _ = run(items)
    before = state.to_dict()
    for item in items:
        again, signals = apply_event(state, item)
        assert signals == [] and again.to_dict() == before


def test_a_fold_never_changes_the_state_it_was_given() -> None:
    items = script(started(), call("c1", "Search", {}), failed("c1", "Search"))
    state, _ = run(items[:2])
    before = state.to_dict()
    apply_event(state, items[2])
    close_if_idle(state, T0 + 10**9, 1000)
    assert state.to_dict() == before


def test_early_events_wait_for_the_missing_ones() -> None:
    items = script(started(), call("c1", "Search", {}), failed("c1", "Search"))
    state, signals = run([items[2], items[1]])
    assert signals == [] and state.next_seq == 0
    state, signals = apply_event(state, items[0])
    assert signals == [] and [s.kind for s in state.held] == ["failure"]  # held for the outcome


def test_a_gap_that_outlives_the_reorder_window_is_skipped() -> None:
    items = script(
        started(), call("c1", "Search", {}), failed("c1", "Search"), model.EpisodeEnded("failure")
    )
    state, signals = run([items[0], items[2], items[3]], window=1)
    assert [s.kind for s in signals] == ["failure", "outcome"]
    late, more = apply_event(state, items[1], reorder_window=1)  # too late: counts as processed
    assert more == [] and late.to_dict() == state.to_dict()


# --- idle episodes and the end of state ------------------------------------------------------


def test_an_idle_episode_is_closed_as_abandoned_in_event_time() -> None:
    state, _ = run(script(started(), model.Recall(["x1"], "q"), call("c1", "Search", {})))
    last = T0 + 2000
    assert close_if_idle(state, last + 999, idle_ms=1000) == (state, [])
    closed, signals = close_if_idle(state, last + 1000, idle_ms=1000)
    (outcome,) = signals
    assert (outcome.kind, outcome.outcome, outcome.recalled_ids) == ("outcome", "abandoned", ["x1"])
    assert outcome.event_id == signal_id("outcome", "idle")
    assert (outcome.occurred_at, outcome.source_offset) == (last, 102)
    assert closed.closed and close_if_idle(closed, last + 10**6, idle_ms=1000) == (closed, [])
    # The real end arriving after that does not count a second outcome.
    _, late = apply_event(closed, ev(model.EpisodeEnded("success"), 3))
    assert late == []


def test_closing_an_idle_episode_processes_the_events_stuck_behind_a_gap() -> None:
    items = script(started(), call("c1", "Search", {}), failed("c1", "Search"))
    state, _ = run([items[0], items[2]])
    _, signals = close_if_idle(state, T0 + 10**6, idle_ms=1000)
    assert [(s.kind, s.arguments_json) for s in signals] == [
        ("failure", None),
        ("outcome", None),
    ]


def test_late_feedback_alone_is_not_an_abandoned_episode() -> None:
    state, _ = apply_event(None, ev(model.Feedback(rating=1.0), 9))
    closed, signals = close_if_idle(state, T0 + 10**6, idle_ms=1000)
    assert [(s.kind, s.rating) for s in signals] == [("rating", 1.0)]
    assert closed.closed and closed.outcome is None


def test_a_closed_episode_lingers_before_its_state_may_go() -> None:
    state, _ = run(script(started(), model.EpisodeEnded("success")))
    end = T0 + 1000
    assert not is_finished(state, end + 59_999, linger_ms=60_000)
    assert is_finished(state, end + 60_000, linger_ms=60_000)
    later, _ = apply_event(state, ev(model.Feedback(rating=0.5), 2))  # late feedback: linger again
    assert not is_finished(later, end + 60_000, linger_ms=60_000)
    open_state, _ = run(script(started()))
    assert not is_finished(open_state, T0 + 10**9, linger_ms=0)


# --- state storage --------------------------------------------------------------------------


def test_state_round_trips_through_json() -> None:
    items = script(
        started(),
        model.Recall(["x1"], "q"),
        call("c1", "Search", {"query": '"a"'}),
        failed("c1", "Search"),
        call("c2", "Search", {"query": "a"}),
        model.Feedback(0.5, "ok", "evaluator"),
        model.ToolResult("c2", "Search", True, None, "out", 12.5),
        model.LlmCall("m", 1, 2, 3.5, "text"),
        model.EpisodeEnded("success", None),
    )
    state, _ = run([*items[:5], *items[6:]])  # without seq 5: c1 failed, c2 open, 6.. wait
    assert state.buffer and state.failures and state.open_calls
    data = json.loads(json.dumps(state.to_dict()))
    assert data == state.to_dict()
    restored = EpisodeState.from_dict(data)
    assert restored == state


def test_state_is_stored_as_dataclasses_asdict_would_store_it() -> None:
    """`to_dict` builds its records' dicts without `dataclasses.asdict` (speed): the same dicts,
    nested patches and lists included."""
    items = script(
        started(),
        call("c1", "Search", {"query": '"a"'}),
        failed("c1", "Search"),
        call("c2", "Search", {"query": "a"}),
        model.ToolResult("c2", "Search", True, None, "out", 12.5),
        call("c3", "Lookup", {"q": "x"}),
        failed("c3", "Lookup"),
    )
    state, _ = run(items)
    assert state.failures and any(signal.patch is not None for signal in state.held)
    assert state.open_calls or run(items[:-1])[0].open_calls
    for each in (state, run(items[:-1])[0]):
        expected = {f.name: getattr(each, f.name) for f in dataclasses.fields(each)}
        expected.update(
            open_calls={k: dataclasses.asdict(v) for k, v in each.open_calls.items()},
            failures=[dataclasses.asdict(f) for f in each.failures],
            held=[dataclasses.asdict(x) for x in each.held],
        )
        stored = each.to_dict()
        for name in ("open_calls", "failures", "held"):
            assert stored[name] == expected[name]
        assert json.dumps(stored["held"]) == json.dumps(expected["held"])
        assert stored.keys() - {"version"} == expected.keys()


def test_state_of_another_version_is_refused() -> None:
    data = EpisodeState("e", "t", "a").to_dict()
    data["version"] = 999
    with pytest.raises(ValueError, match="version"):
        EpisodeState.from_dict(data)


# --- properties -----------------------------------------------------------------------------

_TOOLS = ["Search", "Lookup", "wiki"]
_ARGS = [{"query": '"x"'}, {"query": "x"}, {"query": "X "}, {"q": "x"}, {}]
_ERRORS = [MILHOUSE_ERROR, "Could not find [x].", "timeout after 30s", None]


@st.composite
def episodes(draw: st.DrawFn) -> list[PositionedEvent]:
    """A plausible episode: calls that fail or work (some results answering an unknown call id),
    model calls, recalls, feedback, and usually an end followed by late feedback."""
    payloads: list[model.EpisodePayload] = [started()]
    for step in range(draw(st.integers(0, 10))):
        kind = draw(st.sampled_from(["tool", "tool", "tool", "llm", "recall", "feedback"]))
        if kind == "tool":
            tool = draw(st.sampled_from(_TOOLS))
            payloads.append(call(f"c{step}", tool, draw(st.sampled_from(_ARGS))))
            answer = draw(st.sampled_from([f"c{step}", f"c{step}", "unknown"]))
            ok = draw(st.booleans())
            error = None if ok else draw(st.sampled_from(_ERRORS))
            payloads.append(model.ToolResult(answer, tool, ok, error))
        elif kind == "llm":
            payloads.append(model.LlmCall("m"))
        elif kind == "recall":
            payloads.append(model.Recall(draw(st.lists(st.sampled_from("abc"), max_size=2))))
        else:
            payloads.append(model.Feedback(draw(st.sampled_from([None, -1.0, 1.0])), "fix it"))
    if draw(st.booleans()):
        payloads.append(model.EpisodeEnded(draw(st.sampled_from(["success", "failure"]))))
        payloads.append(model.Feedback(0.5, None))
    return script(*payloads)


@st.composite
def with_duplicates(draw: st.DrawFn) -> tuple[list[PositionedEvent], list[PositionedEvent]]:
    items = draw(episodes())
    delivered = list(items)
    for item in draw(st.lists(st.sampled_from(items), max_size=6)):
        after = delivered.index(item) + 1
        delivered.insert(draw(st.integers(after, len(delivered))), item)
    return items, delivered


def _shuffled_in_blocks(
    draw: Callable[[st.SearchStrategy[Any]], Any], items: Sequence[PositionedEvent], window: int
) -> list[PositionedEvent]:
    """Reordered so that no more than `window` events ever wait for a missing one."""
    out: list[PositionedEvent] = []
    start = 0
    while start < len(items):
        size = draw(st.integers(1, window))
        out += draw(st.permutations(items[start : start + size]))
        start += size
    return out


@given(with_duplicates())
def test_duplicates_leave_signals_and_state_unchanged(
    pair: tuple[list[PositionedEvent], list[PositionedEvent]],
) -> None:
    items, delivered = pair
    expected_state, expected = run(items)
    state, signals = run(delivered)
    assert signals == expected
    assert state.to_dict() == expected_state.to_dict()


@given(st.data(), episodes(), st.integers(1, 6))
def test_reordering_within_the_window_gives_the_in_order_signals(
    data: st.DataObject, items: list[PositionedEvent], window: int
) -> None:
    shuffled = _shuffled_in_blocks(data.draw, items, window)
    assert sorted(i.event.seq for i in shuffled) == [i.event.seq for i in items]
    assert run(shuffled, window=window)[1] == run(items)[1]


@settings(max_examples=200, deadline=None)  # a shared 2-core machine: no timing
@given(st.data(), with_duplicates(), st.integers(1, 6))
def test_a_restore_from_json_at_any_point_gives_the_same_outputs(
    data: st.DataObject,
    pair: tuple[list[PositionedEvent], list[PositionedEvent]],
    window: int,
) -> None:
    items, delivered = pair
    restore_at = data.draw(st.integers(1, len(delivered)))
    _, expected = run(delivered, window=window)
    state, signals = run(delivered, window=window, restore_at=restore_at)
    assert signals == expected
    # ...including what closing the episode as idle emits afterwards.
    reference, _ = run(delivered, window=window)
    watermark = T0 + 10**7
    assert close_if_idle(state, watermark, 1000) == close_if_idle(reference, watermark, 1000)


def test_a_copied_state_shares_no_container_with_its_original() -> None:
    """`EpisodeState.copy` copies fields as they are, then every container: a fold changing
    the copy must never change the state it came from (replay equals live depends on it)."""
    state = EpisodeState("ep", "t", "a", user="u", next_seq=3, buffer={1: None},  # type: ignore[dict-item]
                         seen_ids=["e1"], recalled_ids=["x"], results=[("tool", "out")])
    copied = state.copy()
    assert copied == state and type(copied) is EpisodeState
    for name, value in vars(state).items():
        if isinstance(value, list | dict | set):
            assert getattr(copied, name) is not value, f"{name} is shared by the copy"


_TEXT = st.text(max_size=12)
_OPTIONAL = st.none() | _TEXT
_SIGNALS = st.builds(
    Signal, event_id=_TEXT, occurred_at=st.integers(0, 2**62), tenant=_TEXT, agent=_TEXT,
    episode_id=_TEXT, kind=st.sampled_from(["failure", "recovery", "outcome"]), user=_OPTIONAL,
    tool=_OPTIONAL, signature=_OPTIONAL, error=_OPTIONAL, arguments_json=_OPTIONAL,
    patch=st.none() | st.builds(ToolCallPatch, tool=_TEXT, changes=st.lists(st.builds(
        ArgumentChange, op=st.sampled_from(["replace", "add"]), argument=_TEXT,
        value_json=_OPTIONAL)), use_tool=_OPTIONAL),
    outcome=_OPTIONAL, rating=st.none() | st.floats(allow_nan=False), correction=_OPTIONAL,
    recalled_ids=st.lists(_TEXT, max_size=3), source_partition=st.integers(0, 10),
    source_offset=st.integers(0, 2**40))


@given(_SIGNALS, _OPTIONAL)
def test_a_released_signal_is_dataclasses_replace_of_the_held_one(signal: Signal,
                                                                   outcome: str | None) -> None:
    released = _with_outcome(signal, outcome)
    expected = dataclasses.replace(signal, outcome=outcome)
    assert released == expected and repr(released) == repr(expected)


@settings(max_examples=30, deadline=None)
@given(st.permutations(list(range(6))), st.integers(0, 5))
def test_folding_in_place_gives_the_states_and_signals_of_folding_copies(
        order: list[int], duplicate: int) -> None:
    payloads: list[model.EpisodePayload] = [
        model.EpisodeStarted("order 7"), model.ToolCall("a", "orders.get", '{"order": 7}'),
        model.ToolResult("a", "orders.get", False, "unknown field 'order'"),
        model.ToolCall("b", "orders.get", '{"order_id": 7}'),
        model.ToolResult("b", "orders.get", True), model.EpisodeEnded("success")]
    items = [PositionedEvent(model.EpisodeEvent(f"e{seq}", 1000 + seq, "acme", "bot", "ep",
                                                seq, payloads[seq], user="u1"), 0, seq)
             for seq in order + [order[duplicate]]]
    copied: EpisodeState | None = None
    owned: EpisodeState | None = None
    for item in items:
        before = None if copied is None else copied.to_dict()
        previous = copied
        copied, expected = apply_event(copied, item)
        if previous is not None:
            assert previous.to_dict() == before  # the default never changes its input
        owned, signals = apply_event(owned, item, in_place=True)
        assert signals == expected and owned.to_dict() == copied.to_dict()
