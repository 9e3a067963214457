"""Guidance text: readable, specific instructions from structured patches, without an LLM."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaizen.processors.learning import guidance
from kaizen.schemas.model import ArgumentChange, ToolCallPatch

QUOTED = "Search: Could not find [<quoted>]."


def patch(
    *changes: ArgumentChange, tool: str = "Search", use_tool: str | None = None
) -> ToolCallPatch:
    return ToolCallPatch(tool=tool, changes=list(changes), use_tool=use_tool)


def test_strip_quotes_names_tool_argument_and_error() -> None:
    text = guidance.recovery_guidance(
        patch(ArgumentChange("reformat", "query", rule="strip_quotes")), QUOTED
    )
    assert text == (
        "When calling Search, do not wrap `query` in quotes: calls like that failed with "
        "'Could not find [<quoted>]' and succeeded without them."
    )


def test_rename_says_what_the_tool_expects_now() -> None:
    text = guidance.recovery_guidance(
        patch(ArgumentChange("rename", "query", new_argument="q")), "Search: unknown field query"
    )
    assert text.startswith("Search now expects `q` instead of `query`")
    assert "'unknown field query'" in text


def test_add_shows_the_value_that_worked_as_an_example() -> None:
    text = guidance.recovery_guidance(
        patch(ArgumentChange("add", "region", value_json='"eu"')), "Search: region is required"
    )
    assert text.startswith('Always pass `region` (e.g. "eu") to Search')
    assert "calls without it failed with 'region is required'" in text


def test_date_reformat_names_both_formats() -> None:
    change = ArgumentChange("reformat", "date", rule="date:%d/%m/%Y->%Y-%m-%d")
    text = guidance.recovery_guidance(patch(change, tool="Book"), "Book: invalid date <date>")
    assert "write `date` as %Y-%m-%d (not %d/%m/%Y)" in text
    assert text.startswith("When calling Book,")


@pytest.mark.parametrize(
    ("rule", "phrase"),
    [
        ("lowercase", "write `city` in lower case"),
        ("uppercase", "write `city` in upper case"),
        ("strip", "trim the spaces around `city`"),
        ("title_case", "reformat `city` (title_case)"),
    ],
)
def test_reformat_rules(rule: str, phrase: str) -> None:
    assert guidance.change_clause(ArgumentChange("reformat", "city", rule=rule)) == phrase


def test_use_tool_names_both_tools() -> None:
    text = guidance.recovery_guidance(
        patch(tool="get_order", use_tool="get_order_v2"), "get_order: HTTP 410 Gone"
    )
    assert text.startswith("Use get_order_v2 instead of get_order")
    assert "'HTTP 410 Gone'" in text


def test_use_tool_with_argument_changes_mentions_them() -> None:
    text = guidance.recovery_guidance(
        patch(
            ArgumentChange("rename", "id", new_argument="order_id"),
            tool="get_order",
            use_tool="get_order_v2",
        ),
        "get_order: HTTP 410 Gone",
    )
    assert "and pass `order_id` instead of `id`" in text


def test_several_changes_are_listed_in_order() -> None:
    text = guidance.recovery_guidance(
        patch(
            ArgumentChange("remove", "debug"),
            ArgumentChange("reformat", "query", rule="strip_quotes"),
            ArgumentChange("replace", "limit", value_json="10"),
        ),
        QUOTED,
    )
    assert (
        "do not pass `debug`, do not wrap `query` in quotes and use another value for `limit` "
        "(one that worked: 10)" in text
    )
    assert text.endswith("succeeded after these changes.")


def test_empty_patch_is_a_retry() -> None:
    text = guidance.recovery_guidance(patch(), "Search: HTTP 503")
    assert "failed transiently with 'HTTP 503'" in text
    assert text.endswith("retry after a short back-off.")


def test_pitfall_names_the_argument_at_fault_not_values() -> None:
    text = guidance.pitfall_guidance(
        "exchange_delivered_order_items",
        "exchange_delivered_order_items: Error: Non-delivered order cannot be exchanged",
        '{"order_id": "#W2378156", "item_ids": ["1151293680"], "payment_method_id": "gc_1"}',
    )
    assert text == (
        "exchange_delivered_order_items fails with 'Non-delivered order cannot be exchanged' "
        "(about `order_id`). Before calling exchange_delivered_order_items, check that "
        "`order_id` meets this rule (look up the current details first) and pick the call "
        "that fits if not."
    )
    assert "W2378156" not in text


def test_a_not_found_pitfall_says_to_use_a_looked_up_value() -> None:
    text = guidance.pitfall_guidance(
        "find_user_id_by_email", "find_user_id_by_email: Error: User not found",
        '{"email": "alice@example.com"}',
    )
    assert "make sure `email` is an exact value you looked up or the user confirmed" in text
    assert "alice@example.com" not in text


@pytest.mark.parametrize("arguments", [None, '{"query": "x", "limit": 3}', "not json"])
def test_a_pitfall_never_says_avoid_the_call(arguments: str | None) -> None:
    """Old text: "avoid this call or check its arguments" -- wrong for a call the task needs."""
    text = guidance.pitfall_guidance("Search", QUOTED, arguments)
    assert "avoid" not in text.lower() and text.startswith("Search fails with")


def test_pitfall_without_arguments_or_signature() -> None:
    assert guidance.pitfall_guidance("Search", None).startswith("Search fails. Before calling")


def test_instance_guidance_says_where_the_value_comes_from() -> None:
    changes = [
        ArgumentChange("replace", "new_item_ids", value_json='["77"]',
                       rule="from_result:get_product_details"),
        ArgumentChange("replace", "order_id", value_json='"#W1"'),
    ]
    signature = "modify_items: Error: New item <num>"
    text = guidance.instance_guidance("modify_items", signature, changes)
    assert "use the `new_item_ids` value from get_product_details's result" in text
    assert "look the `order_id` value up first" in text
    assert "77" not in text and "#W1" not in text


def test_preference_quotes_and_attributes_the_user() -> None:
    text = guidance.preference_guidance("  use the order id,\n not the email ", "u7")
    assert text == 'User u7 asked: "use the order id, not the email". Follow this in u7\'s tasks.'


def test_long_errors_and_values_are_shortened() -> None:
    long_error = "Search: " + "x" * 500
    assert len(guidance.error_text(long_error, "Search")) == guidance.MAX_ERROR_CHARS
    example = guidance.value_example('"' + "v" * 100 + '"')
    assert example.startswith('"vvv') and example.endswith("...")
    assert len(example) == guidance.MAX_VALUE_CHARS


def test_unknown_op_fails_loudly() -> None:
    with pytest.raises(ValueError, match="unknown argument change op"):
        guidance.change_clause(ArgumentChange("explode", "x"))


NAMES = st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True)
CHANGES = st.builds(
    ArgumentChange,
    op=st.sampled_from(["rename", "add", "remove", "reformat", "replace"]),
    argument=NAMES,
    new_argument=NAMES,
    value_json=st.none() | st.integers().map(str),
    rule=st.sampled_from(["strip_quotes", "lowercase", "date:%d/%m/%Y->%Y-%m-%d", None]),
)


@given(changes=st.lists(CHANGES, min_size=1, max_size=4), tool=NAMES)
def test_every_patch_reads_as_one_sentence_naming_tool_and_arguments(
    changes: list[ArgumentChange], tool: str
) -> None:
    text = guidance.recovery_guidance(ToolCallPatch(tool, changes), f"{tool}: bad request")
    assert tool in text
    assert all(f"`{c.argument}`" in text for c in changes)
    assert text.endswith(".") and "\n" not in text
    assert text == guidance.recovery_guidance(ToolCallPatch(tool, changes), f"{tool}: bad request")
