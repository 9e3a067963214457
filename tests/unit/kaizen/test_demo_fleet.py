"""The demo fleet: seeded tasks for the original APIs, a naive agent whose self-repair works only
sometimes, and lessons (hand-written `Recalled`s here) that fix what the drifts broke."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaizen.demo.fleet import (
    TASK_TYPES,
    Call,
    EpisodeResult,
    Fleet,
    Task,
    make_task,
    pick_user,
    play_episode,
    self_repair,
)
from kaizen.demo.world import (
    CALENDAR_DATE_FORMAT,
    ORDERS_RENAMED_PARAM,
    PAYMENTS_REQUIRED_CURRENCY,
    PREFERENCE_USER,
    SEARCH_RATE_LIMIT,
    USER_PREFERS_IMPERIAL,
    WEATHER_DEPRECATED,
    World,
    default_drifts,
    harmful_patch,
)
from kaizen.readmodel.lesson import Recalled
from kaizen.schemas import model
from kaizen.schemas.model import ArgumentChange, ToolCallPatch
from kaizen.testing import MemoryRecorder

# --- a recording double of the Episode API --------------------------------------------------


@dataclass
class FakeEpisode:
    """Records each call of the Episode API as (method, details)."""

    task: str
    user: str | None
    task_type: str
    episode_id: str | None
    log: list[tuple[str, Any]] = field(default_factory=list)

    def __enter__(self) -> FakeEpisode:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not any(kind == "end" for kind, _ in self.log):
            self.log.append(("end", "abandoned"))

    def tool_call(self, tool_name: str, arguments: Mapping[str, Any] | None = None) -> str:
        call_id = f"{self.episode_id}:{len(self.log)}"
        self.log.append(("tool_call", (call_id, tool_name, dict(arguments or {}))))
        return call_id

    def tool_result(
        self,
        tool_name: str,
        *,
        ok: bool = True,
        error: str | None = None,
        output: str | None = None,
        call_id: str | None = None,
    ) -> None:
        self.log.append(("tool_result", (call_id, tool_name, ok, error)))

    def recall(self, experience_ids: Sequence[str], query: str = "") -> None:
        self.log.append(("recall", (list(experience_ids), query)))

    def feedback(self, *, rating: float | None = None, correction: str | None = None) -> None:
        self.log.append(("feedback", (rating, correction)))

    def end(self, success: bool | None = None) -> None:
        self.log.append(("end", success))

    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        return [(d[1], d[2]) for kind, d in self.log if kind == "tool_call"]


class FakeRecorder:
    def __init__(self) -> None:
        self.episodes: dict[str, FakeEpisode] = {}
        self._lock = threading.Lock()

    def episode(
        self, task: str, *, user: str | None = None, task_type: str = "", episode_id: str | None
    ) -> FakeEpisode:
        ep = FakeEpisode(task, user, task_type, episode_id)
        with self._lock:
            self.episodes[str(episode_id)] = ep
        return ep


# --- lessons as the pipeline would recall them ----------------------------------------------


def lesson(eid: str, tool: str | None, guidance: str, patch: ToolCallPatch | None = None,
           kind: str = "recovery") -> Recalled:
    return Recalled(eid, 0.9, guidance, patch, kind, tool)


RENAME = lesson("L-orders", "orders.get", "orders.get now expects `id` instead of `order_id`.",
                ToolCallPatch("orders.get",
                              [ArgumentChange("rename", "order_id", new_argument="id")]))
CURRENCY = lesson("L-pay", "payments.charge", "Add `currency` (e.g. \"USD\") to payments.charge.",
                  ToolCallPatch("payments.charge",
                                [ArgumentChange("add", "currency", value_json='"USD"')]))
DATES = lesson("L-cal", "calendar.book", "When calling calendar.book, reformat `date`.",
               ToolCallPatch("calendar.book",
                             [ArgumentChange("reformat", "date", rule="date:%d/%m/%Y->%Y-%m-%d")]))
SUCCESSOR = lesson("L-weather", "weather.get", "Use weather.v2.get instead of weather.get.",
                   ToolCallPatch("weather.get", [], use_tool="weather.v2.get"))
RETRY = lesson("L-search", "search", "Calls to search failed transiently with '429 Too Many "
               "Requests' and worked when repeated unchanged; retry after a short back-off.")
IMPERIAL = lesson("L-u7", None, 'User u7 asked: "use imperial units". Follow this in u7\'s tasks.',
                  kind="preference")
HARMFUL = lesson("L-harm", "payments.charge", "payments.charge expects `amount`.", harmful_patch())
TOOL_LESSONS = [RENAME, CURRENCY, DATES, SUCCESSOR, RETRY]

ONE_CALL = {
    ORDERS_RENAMED_PARAM: (Call("orders.get", {"order_id": "A1"}), RENAME),
    PAYMENTS_REQUIRED_CURRENCY: (Call("payments.charge", {"amount_cents": 999}), CURRENCY),
    CALENDAR_DATE_FORMAT: (Call("calendar.book", {"date": "01/02/2027", "title": "x"}), DATES),
    WEATHER_DEPRECATED: (Call("weather.get", {"city": "Oslo", "units": "metric"}), SUCCESSOR),
    SEARCH_RATE_LIMIT: (Call("search", {"query": "gift cards"}), RETRY),
}


def play(world: World, call: Call, at: int, lessons: Sequence[Recalled] = (), *,
         user: str = "u1", rate: float = 0.0) -> tuple[bool, FakeEpisode]:
    ep = FakeEpisode("t", user, "one", "e")
    played = play_episode(world, Task("one", "t", (call,)), recorder_episode=ep,
                          lessons=list(lessons), episode_index=at, user=user,
                          self_repair_rate=rate)
    return played.success, ep


def rate(results: Sequence[EpisodeResult]) -> float:
    return sum(r.success for r in results) / len(results)


# --- tasks ----------------------------------------------------------------------------------


@given(seed=st.integers(0, 2**32), index=st.integers(0, 10_000))
def test_tasks_are_seeded_and_written_for_the_original_api(seed: int, index: int) -> None:
    task = make_task(seed, index)
    assert task == make_task(seed, index) and pick_user(seed, index) == pick_user(seed, index)
    assert task.task_type in TASK_TYPES and 1 <= len(task.calls) <= 3
    world = World(drifts=())
    assert all(world.call(c.tool, c.args, episode_index=index).ok for c in task.calls)


def test_tasks_vary_over_indices_and_seeds() -> None:
    types = {make_task(1, i).task_type for i in range(200)}
    assert types == set(TASK_TYPES)
    assert [make_task(1, i) for i in range(20)] != [make_task(2, i) for i in range(20)]
    users = [pick_user(1, i) for i in range(900)]
    assert 50 < users.count(PREFERENCE_USER) < 150


# --- self-repair ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "args", "error", "expected"),
    [
        ("orders.get", {"order_id": "A1"}, "400 Bad Request: unknown field 'order_id'; did you "
         "mean 'id'?", ("orders.get", {"id": "A1"})),
        ("orders.get", {"order_id": "A1"}, "400 Bad Request: unknown field 'order_id'", None),
        ("weather.get", {"city": "Oslo"}, "410 Gone: weather.get is deprecated, use "
         "weather.v2.get", ("weather.v2.get", {"city": "Oslo"})),
        ("payments.charge", {"amount_cents": 5}, "422 Unprocessable Entity: missing required "
         "field 'currency'", ("payments.charge", {"amount_cents": 5, "currency": "USD"})),
        ("payments.charge", {"currency": "USD"}, "422 Unprocessable Entity: missing required "
         "field 'amount_cents'", None),
        ("calendar.book", {"date": "24/11/2026"}, "400 Bad Request: invalid date '24/11/2026', "
         "expected YYYY-MM-DD", ("calendar.book", {"date": "2026-11-24"})),
        ("search", {"query": "q"}, "429 Too Many Requests", ("search", {"query": "q"})),
        ("search", {"query": "q"}, "500 Internal Server Error", None),
    ],
)
def test_self_repair_reads_only_what_the_error_says(
    tool: str, args: dict[str, Any], error: str, expected: tuple[str, dict[str, Any]] | None
) -> None:
    assert self_repair(tool, args, error) == expected


# --- one episode ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ONE_CALL))
def test_drift_breaks_the_naive_agent_and_its_lesson_fixes_it(name: str) -> None:
    world = World()
    at = world.drift(name).index
    call, fix = ONE_CALL[name]
    assert play(world, call, at - 1)[0]
    assert not play(world, call, at)[0]  # no self-repair (rate 0), no lesson
    ok, ep = play(world, call, at, [fix])
    assert ok and ep.log[0] == ("recall", ([fix.experience_id], "t"))
    assert ep.log[-1] == ("end", True)
    assert play(world, call, at, rate=1.0)[0]  # the naive self-repair, when it happens, works


def test_patches_apply_before_the_call_so_it_works_first_time() -> None:
    world = World()
    at = world.drift(ORDERS_RENAMED_PARAM).index
    ok, ep = play(world, ONE_CALL[ORDERS_RENAMED_PARAM][0], at, TOOL_LESSONS)
    assert ok and ep.calls() == [("orders.get", {"id": "A1"})]
    assert [d[2] for kind, d in ep.log if kind == "tool_result"] == [True]


def test_a_failed_self_repair_records_both_calls_and_fails() -> None:
    world = World()
    ep = FakeEpisode("t", "u1", "one", "e")
    call = Call("orders.get", {"order_id": "A1"})
    played = play_episode(world, Task("one", "t", (call,)), recorder_episode=ep, lessons=[],
                          episode_index=world.drift(ORDERS_RENAMED_PARAM).index, user="u1",
                          self_repair_rate=0.0)
    assert not played.success and played.lesson_ids == []
    assert played.failures == [("orders.get", "400 Bad Request: unknown field 'order_id'; did you "
                                "mean 'id'?")]
    assert [kind for kind, _ in ep.log] == ["tool_call", "tool_result", "end"]


def test_chained_patches_follow_a_tool_switch() -> None:
    """A lesson for the successor applies after the deprecation lesson switched the tool."""
    world = World()
    at = world.drift(WEATHER_DEPRECATED).index
    v2_units = lesson("L-v2", "weather.v2.get", "use kelvin?", ToolCallPatch(
        "weather.v2.get", [ArgumentChange("replace", "units", value_json='"imperial"')]))
    ok, ep = play(world, ONE_CALL[WEATHER_DEPRECATED][0], at, [v2_units, SUCCESSOR])
    assert ok and ep.calls() == [("weather.v2.get", {"city": "Oslo", "units": "imperial"})]


def test_preference_user_corrects_metric_answers_and_the_lesson_prevents_it() -> None:
    world = World()
    at = world.drift(USER_PREFERS_IMPERIAL).index
    call = Call("weather.v2.get", {"city": "Oslo", "units": "metric"})
    ok, ep = play(world, call, at, user=PREFERENCE_USER)
    assert not ok and ("feedback", (-1.0, "use imperial units")) in ep.log
    assert play(world, call, at, user="u2")[0]
    ok, ep = play(world, call, at, [IMPERIAL], user=PREFERENCE_USER)
    assert ok and ep.calls()[0][1]["units"] == "imperial"
    assert not any(kind == "feedback" for kind, _ in ep.log)


def test_harmful_lesson_breaks_checkout_even_before_any_drift() -> None:
    world = World()
    call = Call("payments.charge", {"amount_cents": 999})
    ok, ep = play(world, call, 0, [HARMFUL], rate=1.0)
    assert not ok and ep.calls()[0] == ("payments.charge", {"amount": 999})


# --- the fleet ------------------------------------------------------------------------------


def test_fleet_is_deterministic_whatever_the_concurrency() -> None:
    world = World(default_drifts(start=10, spacing=10))
    rec_a, rec_b = FakeRecorder(), FakeRecorder()
    serial = Fleet("static", world, rec_a, None, seed=5).run(range(90), concurrency=1)
    parallel = Fleet("static", world, rec_b, None, seed=5).run(range(90), concurrency=8)
    assert serial == parallel and [r.index for r in serial] == list(range(90))
    assert {k: v.log for k, v in rec_a.episodes.items()} == {
        k: v.log for k, v in rec_b.episodes.items()}
    other = Fleet("static", world, FakeRecorder(), None, seed=6).run(range(90), concurrency=8)
    assert [r.task_type for r in other] != [r.task_type for r in serial]


def test_fleet_episode_ids_are_stable_and_distinct_per_fleet() -> None:
    world, rec = World(), FakeRecorder()
    static = Fleet("static", world, rec, None, seed=1)
    learning = Fleet("learning", world, rec, lambda t, u, tools: [], seed=1)
    assert static.episode_id(3) == Fleet("static", world, rec, None, seed=1).episode_id(3)
    assert static.episode_id(3) != learning.episode_id(3) != learning.episode_id(4)


def test_static_fleet_drops_after_drifts_and_stays_down_while_lessons_recover_it() -> None:
    drift_at = 60
    world = World(default_drifts(start=drift_at, spacing=0))

    def recall(task: str, user: str | None, tools: list[str]) -> list[Recalled]:
        """Like the recall index: tool lessons for the task's tools, a preference for its user."""
        found = [x for x in TOOL_LESSONS if x.tool in tools]
        return found + ([IMPERIAL] if user == PREFERENCE_USER else [])

    static = Fleet("static", world, FakeRecorder(), None, seed=2).run(range(240), concurrency=4)
    learning = Fleet("learning", world, FakeRecorder(), recall, seed=2).run(
        range(drift_at, 240), concurrency=4)
    before, early, late = static[:drift_at], static[drift_at:150], static[150:]
    assert rate(before) == 1.0
    assert rate(early) < 0.75 and rate(late) < 0.75
    assert rate(learning) == 1.0
    assert all(r.lesson_ids for r in learning)
    assert not any(r.lesson_ids for r in static)


def test_some_static_episodes_self_recover_after_each_drift() -> None:
    """The pipeline learns from recoveries, so each drift must produce some."""
    world = World(default_drifts(start=20, spacing=40))
    results = Fleet("static", world, FakeRecorder(), None, seed=4).run(range(260), concurrency=4)
    for drift in world.drifts:
        if drift.name == USER_PREFERS_IMPERIAL:
            continue
        hit = [r for r in results[drift.index:drift.index + 40]
               if any(tool == drift.tool for tool, _ in r.failures)]
        assert any(r.success for r in hit), drift.name
        assert not all(r.success for r in hit), drift.name


# --- against the real Episode class ---------------------------------------------------------


def test_real_episode_events_pair_calls_with_results() -> None:
    world, sink = World(), MemoryRecorder(agent="static", tenant="demo")
    at = world.drift(PAYMENTS_REQUIRED_CURRENCY).index
    recall_ids = ["L-orders", "L-pay"]
    fleet = Fleet("learning", world, sink, lambda t, u, tools: [RENAME, CURRENCY], seed=0)
    index = next(i for i in range(at, at + 200) if make_task(0, i).task_type == "checkout")
    (result,) = fleet.run([index])
    payloads = [e.payload for e in sink.events]
    assert result.success and list(result.lesson_ids) == recall_ids
    assert isinstance(payloads[0], model.EpisodeStarted) and payloads[0].task_type == "checkout"
    assert payloads[1] == model.Recall(recall_ids, make_task(0, index).text)
    calls = [p for p in payloads if isinstance(p, model.ToolCall)]
    results = [p for p in payloads if isinstance(p, model.ToolResult)]
    assert [c.call_id for c in calls] == [r.call_id for r in results]
    assert [c.tool_name for c in calls] == ["orders.get", "payments.charge"]
    assert [c.arguments_json.split(":")[0] for c in calls] == ['{"id"', '{"amount_cents"']
    assert '"currency": "USD"' in calls[1].arguments_json
    assert payloads[-1] == model.EpisodeEnded("success", None)
    assert {e.episode_id for e in sink.events} == {fleet.episode_id(index)}
