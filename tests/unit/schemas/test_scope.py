"""Scope keys: one injective encoding, plain names unchanged, and the name checks at boundaries."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaizen.processors.learning import snapshots
from kaizen.processors.learning.curation import curation_key
from kaizen.processors.learning.snapshots import Candidate, SnapshotLog, scope_of
from kaizen.schemas import model
from kaizen.schemas.scope import (
    MAX_NAME,
    InvalidName,
    check_name,
    check_scope,
    encode_part,
    name_problem,
    parse_scope_key,
    scope_key,
)
from kaizen.streams.snapshot_log import scope_key as kafka_key

T0 = 1_700_000_000_000
names = st.text(min_size=1, max_size=12)


def test_plain_names_keep_the_key_they_had() -> None:
    assert scope_key("acme", "support-bot") == "acme/support-bot"
    assert scope_of("acme", "bot") == "acme/bot"
    assert kafka_key("acme", "bot") == b"acme/bot"


def test_the_scopes_that_collided_have_different_keys_everywhere() -> None:
    assert scope_of("c/x", "y") != scope_of("c", "x/y")
    assert kafka_key("c/x", "y") != kafka_key("c", "x/y")
    signal = model.Signal("s", T0, "c/x", "y", "ep", "failure", tool="t", signature="t: e")
    other = model.Signal("s", T0, "c", "x/y", "ep", "failure", tool="t", signature="t: e")
    assert curation_key(signal) != curation_key(other)
    # a percent sign cannot forge an escape either
    assert scope_of("c%2Fx", "y") != scope_of("c/x", "y")


@given(st.lists(names, min_size=1, max_size=3), st.lists(names, min_size=1, max_size=3))
def test_scope_key_is_injective_and_reversible(a: list[str], b: list[str]) -> None:
    assert parse_scope_key(scope_key(*a)) == tuple(a)
    if a != b:
        assert scope_key(*a) != scope_key(*b)


@given(st.lists(st.text(alphabet="ab/%2F", min_size=0, max_size=6), min_size=0, max_size=4))
def test_the_shortcut_for_plain_names_gives_the_encoded_key(parts: list[str]) -> None:
    assert scope_key(*parts) == "/".join(encode_part(p) for p in parts)


def test_one_snapshot_timeline_per_scope() -> None:
    """A rollback of tenant c/x + agent y leaves tenant c + agent x/y's active snapshot alone."""
    log = SnapshotLog()
    first = Candidate({"a1": "h"}, ("a1",), (), (), frozenset(), ())
    second = Candidate({"b1": "h"}, ("b1",), (), (), frozenset(), ())
    a_id, b_id = first.snapshot_id("c/x", "y"), second.snapshot_id("c", "x/y")
    events = [
        snapshots.proposed_event("c/x", "y", first, parent_id=None, occurred_at=T0),
        snapshots.activated_event("c/x", "y", a_id, replaced=None, occurred_at=T0),
        snapshots.proposed_event("c", "x/y", second, parent_id=None, occurred_at=T0 + 1),
        snapshots.activated_event("c", "x/y", b_id, replaced=None, occurred_at=T0 + 1),
    ]
    for offset, event in enumerate(events):
        log = snapshots.apply(log, event, offset)
    assert log.active(scope_of("c/x", "y")) == a_id
    assert log.active(scope_of("c", "x/y")) == b_id
    assert [i.event.snapshot_id for i in log.scopes[scope_of("c", "x/y")]] == [b_id, b_id]


@pytest.mark.parametrize(("tenant", "agent", "user", "expected"), [
    ("", "bot", None, "tenant is empty"),
    ("acme", "b\x00t", None, "control character U+0000"),
    ("acme", "bot", "u\n1", "user 'u\\n1' holds control character U+000A"),
    ("acme", "x" * (MAX_NAME + 1), None, f"at most {MAX_NAME}"),
    ("*", "bot", None, "reserved"),
    (" acme", "bot", None, "white space"),
    ("acme", "bot\u202e", None, "U+202E"),
])
def test_absurd_names_are_refused_with_the_reason(tenant: str, agent: str, user: str | None,
                                                  expected: str) -> None:
    with pytest.raises(InvalidName, match=re.escape(expected)):
        check_scope(tenant, agent, user)


def test_ordinary_names_pass() -> None:
    for name in ("acme", "c/x", "support-bot", "Ünïcode 名前", "user@example.com", "a%b"):
        assert name_problem("tenant", name) is None
    check_scope("acme", "bot", "u1")


@given(kind=st.sampled_from(["tenant", "agent", "user"]),
       name=st.text(max_size=MAX_NAME + 2) | st.sampled_from(["ok", " ok", "a\x00b", ""]))
def test_a_remembered_check_answers_what_checking_afresh_does(kind: str, name: str) -> None:
    """check_name remembers its answers for names of a valid length: twice asked, the same
    answer as the uncached rule, valid or not."""
    problem = name_problem(kind, name)
    for _ in range(2):
        if problem is None:
            assert check_name(kind, name) == name
        else:
            with pytest.raises(InvalidName, match=re.escape(problem)):
                check_name(kind, name)
