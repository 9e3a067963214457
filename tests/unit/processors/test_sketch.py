"""RecentIds in the changelog: the packed text is the one states were always stored with."""

from __future__ import annotations

import base64
from collections import deque

from hypothesis import given
from hypothesis import strategies as st

from kaizen.processors.learning.sketch import RecentIds

HASHES = st.lists(st.integers(0, 2**64 - 1), unique=True, max_size=300)


def _old_to_json(order: deque[int]) -> str:
    return base64.b64encode(b"".join(h.to_bytes(8, "big") for h in order)).decode()


def _old_from_json(data: str, capacity: int) -> tuple[list[int], set[int]]:
    order: deque[int] = deque()
    members: set[int] = set()
    packed = base64.b64decode(data)
    for i in range(0, len(packed), 8):
        h = int.from_bytes(packed[i:i + 8], "big")
        order.append(h)
        members.add(h)
    while len(order) > capacity:
        members.discard(order.popleft())
    return list(order), members


@given(HASHES, st.integers(1, 400))
def test_the_text_and_what_it_reads_back_are_as_before(hashes: list[int], capacity: int) -> None:
    ids = RecentIds(capacity)
    ids._order.extend(hashes)
    ids._members.update(hashes)
    text = ids.to_json()
    assert text == _old_to_json(ids._order)
    back = RecentIds.from_json(text, capacity)
    assert (list(back._order), back._members) == _old_from_json(text, capacity)


@given(st.binary(max_size=200), st.integers(1, 30))
def test_any_bytes_read_as_before(packed: bytes, capacity: int) -> None:
    text = base64.b64encode(packed).decode()
    back = RecentIds.from_json(text, capacity)
    assert (list(back._order), back._members) == _old_from_json(text, capacity)


@given(st.lists(st.text(max_size=8), max_size=100), st.integers(1, 50))
def test_ids_added_survive_a_round_trip(values: list[str], capacity: int) -> None:
    ids = RecentIds(capacity)
    for value in values:
        ids.add(value)
    assert RecentIds.from_json(ids.to_json(), capacity) == ids
