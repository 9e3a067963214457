"""The demo's drifting world: each drift breaks the original call from its index on, and only then;
the fixes a lesson would carry (as patches) make the broken calls work again; the harmful patch
breaks payments."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaizen.demo.world import (
    CALENDAR_DATE_FORMAT,
    ORDERS_RENAMED_PARAM,
    PAYMENTS_REQUIRED_CURRENCY,
    PREFERENCE_USER,
    SEARCH_RATE_LIMIT,
    TOOLS,
    USER_PREFERS_IMPERIAL,
    WEATHER_DEPRECATED,
    World,
    default_drifts,
    harmful_patch,
)
from kaizen.processors.learning.patches import apply_patch
from kaizen.schemas.model import ArgumentChange, ToolCallPatch

#: Calls written for the original API, one per tool.
NAIVE: dict[str, dict[str, Any]] = {
    "search": {"query": "return policy"},
    "orders.get": {"order_id": "A1234"},
    "payments.charge": {"amount_cents": 1299},
    "calendar.book": {"date": "24/12/2026", "title": "Visit Oslo"},
    "weather.get": {"city": "Oslo", "units": "metric"},
}

#: Per drift: the naive call it breaks, the error text that says why, the fix a lesson would carry.
BREAKS = {
    ORDERS_RENAMED_PARAM: (
        "orders.get",
        "400 Bad Request: unknown field 'order_id'; did you mean 'id'?",
        ToolCallPatch("orders.get", [ArgumentChange("rename", "order_id", new_argument="id")]),
    ),
    PAYMENTS_REQUIRED_CURRENCY: (
        "payments.charge",
        "422 Unprocessable Entity: missing required field 'currency'",
        ToolCallPatch("payments.charge", [ArgumentChange("add", "currency", value_json='"USD"')]),
    ),
    CALENDAR_DATE_FORMAT: (
        "calendar.book",
        "400 Bad Request: invalid date '24/12/2026', expected YYYY-MM-DD",
        ToolCallPatch(
            "calendar.book",
            [ArgumentChange("reformat", "date", rule="date:%d/%m/%Y->%Y-%m-%d")],
        ),
    ),
    WEATHER_DEPRECATED: (
        "weather.get",
        "410 Gone: weather.get is deprecated, use weather.v2.get",
        ToolCallPatch("weather.get", [], use_tool="weather.v2.get"),
    ),
}


@pytest.fixture
def world() -> World:
    return World(seed=3)


def test_default_schedule_names_every_drift_once_in_order() -> None:
    drifts = default_drifts(start=10, spacing=5)
    assert [d.index for d in drifts] == [10, 15, 20, 25, 30, 35]
    assert len({d.name for d in drifts}) == len(drifts) == 6
    assert all(d.tool in TOOLS and d.description for d in drifts)


def test_naive_calls_all_work_before_any_drift(world: World) -> None:
    first = min(d.index for d in world.drifts)
    for tool, args in NAIVE.items():
        assert world.call(tool, args, episode_index=first - 1).ok, tool


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_each_drift_breaks_the_naive_call_at_its_index_and_not_before(
    world: World, name: str
) -> None:
    tool, error, _ = BREAKS[name]
    at = world.drift(name).index
    assert world.call(tool, NAIVE[tool], episode_index=at - 1).ok
    for t in (at, at + 100):
        outcome = world.call(tool, NAIVE[tool], episode_index=t)
        assert (outcome.ok, outcome.error, outcome.output) == (False, error, None)


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_the_lessons_patch_fixes_the_broken_call(world: World, name: str) -> None:
    tool, _, patch = BREAKS[name]
    at = world.drift(name).index
    fixed_tool, fixed_args = apply_patch(patch, tool, NAIVE[tool])
    outcome = world.call(fixed_tool, fixed_args, episode_index=at)
    assert outcome.ok and outcome.error is None and outcome.output


def test_a_drift_only_breaks_its_own_tool(world: World) -> None:
    at = world.drift(ORDERS_RENAMED_PARAM).index
    assert world.call("payments.charge", NAIVE["payments.charge"], episode_index=at).ok
    assert not world.call("orders.get", NAIVE["orders.get"], episode_index=at).ok


def test_calendar_rejects_the_new_format_before_its_drift(world: World) -> None:
    at = world.drift(CALENDAR_DATE_FORMAT).index
    iso = {"date": "2026-12-24", "title": "Visit Oslo"}
    before = world.call("calendar.book", iso, episode_index=at - 1)
    assert before.error == "400 Bad Request: invalid date '2026-12-24', expected DD/MM/YYYY"
    assert world.call("calendar.book", iso, episode_index=at).ok


def test_the_successor_endpoint_exists_only_from_the_deprecation_on(world: World) -> None:
    at = world.drift(WEATHER_DEPRECATED).index
    early = world.call("weather.v2.get", NAIVE["weather.get"], episode_index=at - 1)
    assert early.error == "404 Not Found: unknown tool 'weather.v2.get'"
    assert world.call("weather.v2.get", NAIVE["weather.get"], episode_index=at).ok


def test_rate_limit_fails_the_first_try_of_an_episode_and_lets_the_retry_through(
    world: World,
) -> None:
    at = world.drift(SEARCH_RATE_LIMIT).index
    assert world.call("search", NAIVE["search"], episode_index=at - 1, attempt=0).ok
    first = world.call("search", NAIVE["search"], episode_index=at, attempt=0)
    assert first.error is not None and first.error.startswith("429 Too Many Requests")
    assert world.call("search", NAIVE["search"], episode_index=at, attempt=1).ok


def test_preference_is_silent_in_the_tool_and_spoken_by_that_user_only(world: World) -> None:
    at = world.drift(USER_PREFERS_IMPERIAL).index
    metric, imperial = NAIVE["weather.get"], {"city": "Oslo", "units": "imperial"}
    assert world.call("weather.v2.get", metric, episode_index=at, user=PREFERENCE_USER).ok

    def correction(args: dict[str, Any], user: str, t: int) -> str | None:
        return world.preference_correction("weather.v2.get", args, episode_index=t, user=user)

    assert correction(metric, PREFERENCE_USER, at) == "use imperial units"
    assert correction(metric, PREFERENCE_USER, at - 1) is None
    assert correction(imperial, PREFERENCE_USER, at) is None
    assert correction(metric, "u1", at) is None


def test_imperial_units_convert_the_same_temperature(world: World) -> None:
    metric = world.call("weather.get", NAIVE["weather.get"], episode_index=0)
    imperial = world.call("weather.get", {"city": "Oslo", "units": "imperial"}, episode_index=0)
    assert metric.output and imperial.output
    celsius = int(metric.output.split('"temperature": ')[1].split(",")[0])
    fahrenheit = int(imperial.output.split('"temperature": ')[1].split(",")[0])
    assert fahrenheit == round(celsius * 9 / 5 + 32)


def test_harmful_patch_breaks_payments_before_and_after_the_currency_drift(world: World) -> None:
    at = world.drift(PAYMENTS_REQUIRED_CURRENCY).index
    assert harmful_patch().tool == "payments.charge"
    for args in (NAIVE["payments.charge"], {"amount_cents": 500, "currency": "EUR"}):
        tool, patched = apply_patch(harmful_patch(), "payments.charge", args)
        for t in (0, at, at + 50):
            outcome = world.call(tool, patched, episode_index=t)
            assert outcome.error == "400 Bad Request: unknown field 'amount'"


def test_unknown_tool_and_unknown_drift(world: World) -> None:
    unknown = world.call("fax.send", {}, episode_index=0)
    assert unknown.error == "404 Not Found: unknown tool 'fax.send'"
    with pytest.raises(KeyError):
        world.drift("no-such-drift")
    assert not World(drifts=()).active(ORDERS_RENAMED_PARAM, 10_000)


@given(seed=st.integers(0, 2**32), index=st.integers(0, 1000), tool=st.sampled_from(sorted(NAIVE)))
def test_outputs_are_a_function_of_seed_call_and_time(seed: int, index: int, tool: str) -> None:
    a = World(seed=seed).call(tool, NAIVE[tool], episode_index=index, attempt=1)
    b = World(seed=seed).call(tool, dict(NAIVE[tool]), episode_index=index, attempt=1)
    assert a == b
