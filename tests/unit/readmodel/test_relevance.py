"""The point-of-use query and the relevance rule relative to the best hit (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kaizen.readmodel.relevance import call_query, near_best


def test_call_query_names_the_tool_and_sorted_argument_names_never_values() -> None:
    query = call_query("  Exchange my boots  ", "exchange_items",
                       {"order_id": "#W2378156", "item_ids": ["123"]})
    assert query == "Exchange my boots\nexchange_items(item_ids, order_id)"
    assert "#W2378156" not in query
    assert call_query("t", "get_user", ["user_id"]) == "t\nget_user(user_id)"


def test_near_best_keeps_what_is_within_the_margin_of_the_first() -> None:
    items, scores = ["a", "b", "c"], [0.6, 0.5, 0.3]
    assert near_best(items, scores, 0.15) == ["a", "b"]
    assert near_best(items, scores, 0.0) == ["a"]
    assert near_best(items, scores, None) == items
    assert near_best([], [], 0.1) == []


@given(st.lists(st.floats(-1, 2), min_size=1, max_size=12), st.floats(0, 1))
def test_near_best_keeps_the_best_and_a_prefix_of_a_best_first_list(
        raw: list[float], margin: float) -> None:
    scores = sorted(raw, reverse=True)
    kept = near_best(list(range(len(scores))), scores, margin)
    assert kept[0] == 0
    assert kept == list(range(len(kept)))  # a prefix: nothing below a dropped item comes back
    assert all(scores[i] >= scores[0] - margin for i in kept)
