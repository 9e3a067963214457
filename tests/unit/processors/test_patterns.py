"""Cross-session patterns: windowed counts per signature, new / spiking detection, replay safety."""

from __future__ import annotations

import json
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaizen.processors.learning.patterns import RECENT_IDS, PatternState, apply_tool_result
from kaizen.processors.learning.sketch import RecentIds
from kaizen.schemas.model import EpisodeEvent, EpisodeStarted, Pattern, ToolResult

MIN = 60_000
T0 = 1_700_000_040_000 - 1_700_000_040_000 % MIN  # a window boundary


def sig(tool: str, error: str) -> str:
    """Stand-in for signatures.error_signature: the tests only need tool + error to be kept."""
    return f"{tool}: {error}"


def result(
    event_id: str,
    at: int,
    *,
    tool: str = "search",
    error: str | None = None,
    episode: str = "ep-1",
    user: str | None = "u1",
    tenant: str = "acme",
    agent: str = "bot",
) -> EpisodeEvent:
    payload = ToolResult(f"c-{event_id}", tool, ok=error is None, error=error)
    return EpisodeEvent(event_id, at, tenant, agent, episode, 1, payload, user=user)


def run(
    events: Iterable[EpisodeEvent], state: PatternState | None = None, **kw: int | float
) -> tuple[PatternState | None, list[Pattern]]:
    out: list[Pattern] = []
    for event in events:
        state, patterns = apply_tool_result(state, event, signature_of=sig, **kw)  # type: ignore[arg-type]
        out += patterns
    return state, out


def test_counts_distinct_sessions_users_tenants_and_the_rate() -> None:
    events = [
        result("a", T0 + 1, episode="ep-1"),
        result("b", T0 + 2, episode="ep-2"),
        result("c", T0 + 3, tool="lookup"),
        result("d", T0 + 4, error="timeout", episode="ep-1", user="u1"),
        result("e", T0 + 5, error="timeout", episode="ep-1", user="u1"),
        result("f", T0 + 6, error="timeout", episode="ep-3", user="u2", tenant="beta"),
    ]
    _, patterns = run(events)
    assert [p.failures for p in patterns] == [1, 2, 3]
    last = patterns[-1]
    assert (last.sessions, last.users, last.tenants) == (2, 2, 2)
    assert last.tool_calls == 5  # the lookup call is another tool's
    assert last.rate == pytest.approx(3 / 5)
    assert (last.tenant, last.agent, last.tool, last.signature) == (
        "*",
        "bot",
        "search",
        "search: timeout",
    )
    assert (last.window_start, last.window_seconds) == (T0, 60)
    assert (last.first_seen, last.last_seen, last.occurred_at) == (T0 + 4, T0 + 6, T0 + 6)
    assert last.status == "new" and last.baseline_rate == 0.0


def test_users_that_are_unknown_are_not_counted() -> None:
    _, [p] = run([result("a", T0, error="x", user=None)])
    assert p.users == 0 and p.sessions == 1


def test_next_window_is_steady_with_the_previous_rate_as_baseline() -> None:
    first = [result("a", T0), result("b", T0 + 1, error="timeout")]  # rate 1/2
    second = [
        result("c", T0 + MIN),
        result("d", T0 + MIN + 1),
        result("e", T0 + MIN + 2),
        result("f", T0 + MIN + 3, error="timeout"),
    ]
    _, patterns = run(first + second)
    p = patterns[-1]
    assert p.window_start == T0 + MIN
    assert p.baseline_rate == pytest.approx(0.5)
    assert p.rate == pytest.approx(0.25)
    assert (p.first_seen, p.last_seen, p.status) == (T0 + 1, T0 + MIN + 3, "steady")


def test_baseline_counts_windows_where_the_tool_worked_as_zero() -> None:
    events = [
        result("a", T0, error="x"),
        result("b", T0 + MIN),  # rates 1.0, then 0.0
        result("c", T0 + 2 * MIN, error="x"),
    ]
    _, patterns = run(events)
    assert patterns[-1].baseline_rate == pytest.approx(0.5)


def test_event_ids_are_deterministic_and_distinct_per_update() -> None:
    events = [result("a", T0, error="x"), result("b", T0 + 1, error="x")]
    _, once = run(events)
    _, again = run(events)
    assert [p.event_id for p in once] == [p.event_id for p in again]
    assert len({p.event_id for p in once}) == 2


def test_ok_results_and_other_payloads_emit_nothing() -> None:
    started = EpisodeEvent("s", T0, "acme", "bot", "ep-1", 0, EpisodeStarted("task"))
    state, patterns = run([started, result("a", T0)])
    assert patterns == []
    assert state is not None and state.windows[T0].tool_calls == {"search": 1}


def test_late_events_count_while_their_window_is_open_and_are_dropped_after() -> None:
    state, _ = run([result("a", T0 + 3 * MIN)], late_windows=1)
    state, [late] = run([result("b", T0 + 2 * MIN, error="x")], state, late_windows=1)
    assert late.window_start == T0 + 2 * MIN
    before = json.dumps(state.to_dict() if state else None)
    state, too_late = run([result("c", T0 + MIN, error="x")], state, late_windows=1)
    assert too_late == []
    assert json.dumps(state.to_dict() if state else None) == before


def test_state_stays_bounded_over_many_windows() -> None:
    events = [result(f"e{i}", T0 + i * MIN, error=f"err {i % 7}") for i in range(200)]
    state, _ = run(events, history_windows=10, late_windows=1)
    assert state is not None
    assert len(state.windows) <= 11
    closed = [w for w in state.windows.values() if w.closed]
    assert closed and all(s.episodes.count() == 0 for w in closed for s in w.signatures.values())


def test_changing_the_window_length_on_existing_state_fails_loudly() -> None:
    state, _ = run([result("a", T0)], window_seconds=60)
    with pytest.raises(ValueError, match="window"):
        run([result("b", T0)], state, window_seconds=300)


def test_state_round_trips_through_json() -> None:
    events = [
        result(
            f"e{i}",
            T0 + i * 20_000,
            error="x" if i % 3 else None,
            episode=f"ep{i % 4}",
            user=f"u{i % 2}",
        )
        for i in range(20)
    ]
    state, _ = run(events)
    assert state is not None
    data = json.loads(json.dumps(state.to_dict()))
    assert PatternState.from_dict(data) == state
    assert PatternState.from_dict(data).to_dict() == state.to_dict()


# --- properties -------------------------------------------------------------------------------

STEPS = st.tuples(
    st.integers(-40_000, 90_000),  # time step, sometimes backwards (late events)
    st.sampled_from(["search", "lookup"]),
    st.sampled_from([None, None, "timeout", "not found", "HTTP 429"]),
    st.sampled_from(["ep1", "ep2", "ep3"]),
    st.sampled_from(["u1", "u2", None]),
    st.sampled_from(["acme", "beta"]),
)


def stream(steps: list[tuple[int, str, str | None, str, str | None, str]]) -> list[EpisodeEvent]:
    at, events = T0, []
    for i, (dt, tool, error, episode, user, tenant) in enumerate(steps):
        at = max(0, at + dt)
        events.append(
            result(f"e{i}", at, tool=tool, error=error, episode=episode, user=user, tenant=tenant)
        )
    return events


@settings(max_examples=150)
@given(steps=st.lists(STEPS, max_size=60), data=st.data())
def test_duplicates_change_nothing(steps: list, data: st.DataObject) -> None:
    events = stream(steps)
    copies: dict[int, list[EpisodeEvent]] = {}
    if events:
        for i in data.draw(st.lists(st.integers(0, len(events) - 1), max_size=20)):
            later = data.draw(st.integers(i, len(events) - 1))
            copies.setdefault(later, []).append(events[i])
    redelivered = [x for k, e in enumerate(events) for x in [e, *copies.get(k, [])]]
    state, patterns = run(events)
    state_dup, patterns_dup = run(redelivered)
    assert patterns_dup == patterns
    assert (state_dup.to_dict() if state_dup else None) == (state.to_dict() if state else None)


@settings(max_examples=150)
@given(steps=st.lists(STEPS, min_size=1, max_size=60), data=st.data())
def test_restoring_mid_stream_gives_identical_outputs(steps: list, data: st.DataObject) -> None:
    events = stream(steps)
    cut = data.draw(st.integers(0, len(events)))
    state, patterns = run(events)
    head_state, head = run(events[:cut])
    restored = (
        PatternState.from_dict(json.loads(json.dumps(head_state.to_dict()))) if head_state else None
    )
    tail_state, tail = run(events[cut:], restored)
    assert head + tail == patterns
    assert tail_state is not None and state is not None
    assert tail_state.to_dict() == state.to_dict()


@given(
    windows=st.integers(1, 30),
    per_window=st.integers(1, 8),
    other=st.lists(st.sampled_from([None, "timeout", "HTTP 429"]), min_size=8, max_size=8),
    offset=st.integers(0, MIN - 1),
)
def test_a_signature_first_seen_after_other_traffic_is_new(
    windows: int, per_window: int, other: list[str | None], offset: int
) -> None:
    events = [
        result(f"w{w}-{k}", T0 + w * MIN + k, error=other[k % len(other)])
        for w in range(windows)
        for k in range(per_window)
    ]
    state, _ = run(events)
    at = T0 + windows * MIN + offset
    _, [p] = run([result("fresh", at, error="schema changed: field q renamed")], state)
    assert p.status == "new"
    assert p.first_seen == at
    assert p.baseline_rate == 0.0


@given(
    calm_windows=st.integers(1, 9),
    calls=st.integers(10, 40),
    jump_failures=st.integers(3, 25),
    jump_ok=st.integers(0, 25),
)
def test_a_sudden_jump_is_spiking(
    calm_windows: int, calls: int, jump_failures: int, jump_ok: int
) -> None:
    jump_ok = min(jump_ok, jump_failures)  # jump rate >= 1/2, calm rate = 1/calls <= 1/10
    calm = [
        result(f"c{w}-{k}", T0 + w * MIN + k, error="HTTP 500" if k == 0 else None)
        for w in range(calm_windows)
        for k in range(calls)
    ]
    start = T0 + calm_windows * MIN
    jump = [result(f"j{k}", start + k) for k in range(jump_ok)] + [
        result(f"f{k}", start + jump_ok + k, error="HTTP 500") for k in range(jump_failures)
    ]
    _, patterns = run(calm + jump)
    calm_patterns, jump_patterns = patterns[:calm_windows], patterns[calm_windows:]
    assert calm_patterns[0].status == "new"
    assert all(p.status == "steady" for p in calm_patterns[1:])
    assert jump_patterns[-1].baseline_rate == pytest.approx(1 / calls)
    assert jump_patterns[-1].status == "spiking"
    assert all(p.status == "steady" for p in jump_patterns[:2])  # below min_failures


def test_the_same_rate_as_before_stays_steady() -> None:
    events = [
        result(f"e{w}-{k}", T0 + w * MIN + k, error="HTTP 500" if k >= 6 else None)
        for w in range(5)
        for k in range(10)
    ]
    _, patterns = run(events)
    last_window = [p for p in patterns if p.window_start == T0 + 4 * MIN]
    assert last_window[-1].failures == 4
    assert last_window[-1].status == "steady"


def test_results_forwarded_out_of_seq_order_are_still_deduplicated_exactly() -> None:
    """The assemble step forwards tool results as they arrive (the Recorder's spool reorders),
    not in seq order: duplicates are recognised by event id, whatever order they come in."""

    def at_seq(event_id: str, seq: int) -> EpisodeEvent:
        payload = ToolResult(f"c{seq}", "search", ok=False, error="timeout")
        return EpisodeEvent(event_id, T0 + seq, "acme", "bot", "ep-1", seq, payload, user="u1")

    late, early = at_seq("e5", 5), at_seq("e3", 3)
    state, out = run([late, early, late, early])
    assert [p.failures for p in out] == [1, 2]
    assert state is not None and state.windows[T0].tool_calls == {"search": 2}
    assert len(state.recent) == 2  # the two ids, kept in arrival order through a restore
    assert state.recent == RecentIds.from_json(state.recent.to_json(), RECENT_IDS)
