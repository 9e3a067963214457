"""Tool-call patches: how a working call differed from a failed one, replayable on new calls."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from kaizen.processors.learning.patches import (
    apply_patch,
    apply_rule,
    detect_rule,
    diff_arguments,
    patch_is_empty,
)
from kaizen.schemas.model import ArgumentChange, ToolCallPatch


def _ops(patch: ToolCallPatch) -> list[tuple[str, str, str | None]]:
    return [(c.op, c.argument, c.rule or c.new_argument or c.value_json) for c in patch.changes]


def test_the_hotpotqa_quoted_query_becomes_a_strip_quotes_reformat() -> None:
    patch = diff_arguments("Search", {"query": '"Milhouse"'}, {"query": "Milhouse"})
    assert patch == ToolCallPatch(
        "Search", [ArgumentChange("reformat", "query", rule="strip_quotes")], None
    )
    # Applied to another call, the rule works on that call's own value.
    assert apply_patch(patch, "Search", {"query": "'Bart Simpson'"}) == (
        "Search",
        {"query": "Bart Simpson"},
    )


@pytest.mark.parametrize(
    ("old", "new", "rule"),
    [
        ("  Kafka ", "Kafka", "strip"),
        ('"Kafka"', "Kafka", "strip_quotes"),
        ("\u201cKafka\u201d", "Kafka", "strip_quotes"),
        ("KAFKA", "kafka", "lowercase"),
        ("kafka", "KAFKA", "uppercase"),
        ("42", 42, "to_number"),
        ("2.5", 2.5, "to_number"),
        (42, "42", "to_string"),
        ("31/12/2024", "2024-12-31", "date:%d/%m/%Y->%Y-%m-%d"),
        ("12/31/2024", "2024-12-31", "date:%m/%d/%Y->%Y-%m-%d"),
        ("2024-12-31", "31.12.2024", "date:%Y-%m-%d->%d.%m.%Y"),
        ("5 March 2024", "2024-03-05", "date:%d %B %Y->%Y-%m-%d"),
        ("2024-03-05T10:00:00", "2024-03-05", "date:%Y-%m-%dT%H:%M:%S->%Y-%m-%d"),
    ],
)
def test_reformat_rules_are_detected_and_replayable(old: Any, new: Any, rule: str) -> None:
    assert detect_rule(old, new) == rule
    assert apply_rule(rule, old) == new
    patch = diff_arguments("t", {"v": old}, {"v": new})
    assert patch.changes == [ArgumentChange("reformat", "v", rule=rule)]


def test_a_date_rule_transforms_other_dates_and_leaves_what_it_does_not_fit() -> None:
    patch = diff_arguments("book", {"day": "31/12/2024"}, {"day": "2024-12-31"})
    assert apply_patch(patch, "book", {"day": "01/02/2025"})[1] == {"day": "2025-02-01"}
    assert apply_patch(patch, "book", {"day": "2025-02-01"})[1] == {"day": "2025-02-01"}


def test_a_renamed_key_keeps_its_value_and_can_be_reformatted_on_the_way() -> None:
    patch = diff_arguments("search", {"q": "x", "n": 3}, {"query": "x", "n": 3})
    assert _ops(patch) == [("rename", "q", "query")]
    quoted = diff_arguments("search", {"q": '"x"'}, {"query": "x"})
    assert _ops(quoted) == [("rename", "q", "query"), ("reformat", "query", "strip_quotes")]
    assert apply_patch(quoted, "search", {"q": "'y'"}) == ("search", {"query": "y"})


def test_added_removed_and_replaced_values_carry_json() -> None:
    patch = diff_arguments(
        "orders", {"email": "a@b.c", "limit": 5}, {"order_id": "o-1", "limit": 10, "all": True}
    )
    assert sorted(_ops(patch)) == sorted(
        [
            ("replace", "limit", "10"),
            ("remove", "email", None),
            ("add", "all", "true"),
            ("add", "order_id", '"o-1"'),
        ]
    )
    assert apply_patch(patch, "orders", {"email": "z@z.z", "limit": 1}) == (
        "orders",
        {"order_id": "o-1", "limit": 10, "all": True},
    )


def test_a_substitute_tool_is_recorded_and_used() -> None:
    patch = diff_arguments("web_search", {"q": "x"}, {"q": "x"}, working_tool="wiki")
    assert patch.use_tool == "wiki" and not patch.changes
    assert not patch_is_empty(patch)
    assert apply_patch(patch, "web_search", {"q": "y"}) == ("wiki", {"q": "y"})
    assert diff_arguments("t", {}, {}, working_tool="t").use_tool is None


def test_identical_calls_give_an_empty_patch() -> None:
    assert patch_is_empty(diff_arguments("t", {"a": [1, {"b": 2}]}, {"a": [1, {"b": 2}]}))
    assert not patch_is_empty(diff_arguments("t", {"a": 1}, {"a": True}))


def test_a_patch_for_another_tool_leaves_the_call_alone() -> None:
    patch = diff_arguments("Search", {"query": '"x"'}, {"query": "x"})
    assert apply_patch(patch, "Lookup", {"query": '"x"'}) == ("Lookup", {"query": '"x"'})


def test_unknown_operations_and_rules_fail_loudly() -> None:
    with pytest.raises(ValueError, match="unknown reformat rule"):
        apply_patch(
            ToolCallPatch("t", [ArgumentChange("reformat", "a", rule="rot13")]), "t", {"a": 1}
        )
    with pytest.raises(ValueError, match="unknown argument change"):
        apply_patch(ToolCallPatch("t", [ArgumentChange("explode", "a")]), "t", {"a": 1})


def test_values_are_stored_as_json_text() -> None:
    patch = diff_arguments("t", {"a": "1", "b": [1]}, {"a": 1, "c": {"x": None}})
    assert _ops(patch) == [
        ("reformat", "a", "to_number"),
        ("remove", "b", None),
        ("add", "c", '{"x": null}'),
    ]


# --- properties -----------------------------------------------------------------------------

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
_keys = st.sampled_from(["q", "query", "date", "limit", "id", "user", "mode"])
_args = st.dictionaries(_keys, _json_values, max_size=5)


def _reformatted(value: Any) -> st.SearchStrategy[Any]:
    """Values a rule explains, derived from `value` (quoted, padded, recased, dates)."""
    text = value if isinstance(value, str) else json.dumps(value)
    return st.sampled_from(
        [f'"{text}"', f"  {text} ", text.upper(), text.lower(), str(len(text))]
    ) | st.dates().map(lambda d: d.strftime("%d/%m/%Y"))


@st.composite
def _related_pairs(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A working call and a failed call derived from it by renames, removals, additions and
    reformattings, as agents get them wrong."""
    working = draw(_args)
    failed: dict[str, Any] = {}
    for key, value in working.items():
        how = draw(st.sampled_from(["keep", "rename", "reformat", "drop"]))
        if how == "rename":
            failed[draw(st.text(min_size=1, max_size=3).map(lambda s: "old_" + s))] = value
        elif how == "reformat":
            failed[key] = draw(_reformatted(value))
        elif how == "keep":
            failed[key] = value
    failed.update(draw(st.dictionaries(st.sampled_from(["extra", "debug"]), _json_values)))
    return failed, working


@given(_related_pairs())
def test_applying_the_diff_to_the_failed_call_gives_the_working_call(
    pair: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    failed, working = pair
    patch = diff_arguments("tool", failed, working)
    assert apply_patch(patch, "tool", failed) == ("tool", working)


@given(_args, _args)
def test_applying_the_diff_of_any_two_calls_gives_the_working_call(
    failed: dict[str, Any], working: dict[str, Any]
) -> None:
    quoted = [v for v in failed.values() if isinstance(v, str) and len(v.strip()) >= 2
              and v.strip()[0] == v.strip()[-1] and v.strip()[0] in "\"'"]
    assume(not quoted)  # quoted -> other unquoted text is a form lesson, tested below
    patch = diff_arguments("tool", failed, working, working_tool="other")
    assert apply_patch(patch, "tool", failed) == ("other", working)
    assert patch_is_empty(diff_arguments("tool", failed, failed))


def test_a_quoted_value_followed_by_other_unquoted_text_is_a_strip_quotes_lesson() -> None:
    patch = diff_arguments("Search", {"query": '"Wallace and Gromit"'}, {"query": "Nick Park"})
    assert [(c.op, c.rule) for c in patch.changes] == [("reformat", "strip_quotes")]
    assert apply_patch(patch, "Search", {"query": '"Speed of Sound"'}) == (
        "Search", {"query": "Speed of Sound"})
    unquoted = diff_arguments("Search", {"query": "Wallace"}, {"query": "Nick Park"})
    assert [c.op for c in unquoted.changes] == ["replace"]


_FORMATS = ["%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%Y%m%d", "%d %B %Y", "%b %d, %Y"]


@given(
    st.text(st.sampled_from("abcXYZ -_"), min_size=1, max_size=10).filter(lambda s: s.strip()),
    st.sampled_from(["quote", "pad", "upper", "lower"]),
)
def test_quoting_padding_and_case_are_reformats_not_replacements(text: str, how: str) -> None:
    word = text.strip()
    failed, working = {
        "quote": (f'"{word}"', word),
        "pad": (f" {word}  ", word),
        "upper": (word.lower(), word.upper()),
        "lower": (word.upper(), word.lower()),
    }[how]
    patch = diff_arguments("t", {"v": failed}, {"v": working})
    assert [c.op for c in patch.changes] == (["reformat"] if failed != working else [])
    assert apply_patch(patch, "t", {"v": failed}) == ("t", {"v": working})


@given(st.dates(min_value=date(1000, 1, 1)), st.sampled_from(_FORMATS), st.sampled_from(_FORMATS))
def test_any_change_between_common_date_formats_is_a_date_rule(
    day: date, source: str, target: str
) -> None:
    old, new = day.strftime(source), day.strftime(target)
    patch = diff_arguments("t", {"d": old}, {"d": new})
    if old != new:
        (change,) = patch.changes
        assert change.op == "reformat" and (change.rule or "").startswith("date:")
    assert apply_patch(patch, "t", {"d": old}) == ("t", {"d": new})
