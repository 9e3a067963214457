"""Snapshots: content-addressed ids, the log fold, rollback targets, candidates and the policy."""

from __future__ import annotations

import dataclasses
import json
import random
import re
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaizen.processors.learning.evaluation import Evaluation
from kaizen.processors.learning.snapshots import (
    Candidate,
    Policy,
    SnapshotLog,
    activated_event,
    apply,
    approved_event,
    build_candidate,
    content_hash,
    decide,
    evaluated_event,
    proposed_event,
    rejected_event,
    rollback_target,
    rolled_back_event,
    snapshot_id,
)
from kaizen.schemas.codec import Codec
from kaizen.schemas.model import (
    ArgumentChange,
    Evidence,
    Experience,
    Member,
    SnapshotEvent,
    ToolCallPatch,
    Trigger,
)

T0 = 1_700_000_000_000
SCOPE = "acme/bot"
STRIP = ToolCallPatch("search", [ArgumentChange("reformat", "q", rule="strip_quotes")])


def lesson(
    xid: str, *, guidance: str = "do it right", tool: str | None = "search",
    status: str = "proposed", version: int = 1, patch: ToolCallPatch | None = None,
    signature: str | None = None, user: str | None = None,
) -> Experience:
    return Experience(
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{xid}/{version}")), occurred_at=T0,
        tenant="acme", agent="bot", experience_id=xid, version=version, kind="recovery",
        trigger=Trigger(signature or f"{tool}: error {xid}", "qa", "a task"), guidance=guidance,
        evidence=[Evidence(f"ep-{xid}", 0, version)], support_episodes=1, support_users=1,
        user=user, tool=tool, patch=patch, status=status,
    )


def event(sid: str, action: str, *, at: int = T0, scope: tuple[str, str] = ("acme", "bot"),
          members: list[Member] | None = None, parent: str | None = None) -> SnapshotEvent:
    eid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{scope}/{sid}/{action}/{at}/{parent}"))
    return SnapshotEvent(eid, at, scope[0], scope[1], sid, action, parent_id=parent,
                         members=members or [])


def fold(events: list[SnapshotEvent]) -> SnapshotLog:
    state = None
    for offset, e in enumerate(events):
        state = apply(state, e, offset)
    assert state is not None
    return state


# --- content hash and ids -----------------------------------------------------------------


def test_content_hash_ignores_support_and_status_but_not_guidance() -> None:
    base = lesson("a")
    more = dataclasses.replace(base, support_episodes=9, status="candidate", version=4,
                               helpful=3, evidence=[])
    assert content_hash(more) == content_hash(base)
    assert content_hash(lesson("a", guidance="other")) != content_hash(base)


def test_snapshot_id_shape_scope_and_empty_set() -> None:
    empty = snapshot_id("acme", "bot", [])
    assert re.fullmatch(r"[0-9a-f]{32}", empty)
    assert snapshot_id("acme", "other", []) != empty
    one = snapshot_id("acme", "bot", [Member("a", "h1")])
    assert one != empty
    assert snapshot_id("acme", "bot", [Member("a", "h2")]) != one
    assert snapshot_id("acme", "bot", [Member("a", "h1"), Member("a", "h1")]) == one


def test_snapshot_id_rejects_two_hashes_for_one_experience() -> None:
    with pytest.raises(ValueError, match="one content hash"):
        snapshot_id("acme", "bot", [Member("a", "h1"), Member("a", "h2")])


@given(st.lists(st.tuples(st.text(min_size=1), st.text()), unique_by=lambda p: p[0]),
       st.randoms(use_true_random=False))
def test_snapshot_id_is_invariant_under_member_order(
    pairs: list[tuple[str, str]], rnd: random.Random
) -> None:
    members = [Member(i, h) for i, h in pairs]
    shuffled = list(members)
    rnd.shuffle(shuffled)
    assert snapshot_id("t", "a", shuffled) == snapshot_id("t", "a", members)


# --- the log fold -------------------------------------------------------------------------


def lifecycle() -> list[SnapshotEvent]:
    s1, s2 = snapshot_id("acme", "bot", []), snapshot_id("acme", "bot", [Member("a", "h")])
    return [
        event(s1, "proposed", at=T0), event(s1, "activated", at=T0 + 1),
        event(s2, "proposed", at=T0 + 10, members=[Member("a", "h")], parent=s1),
        event(s2, "evaluated", at=T0 + 11), event(s2, "approved", at=T0 + 12),
        event(s2, "activated", at=T0 + 20, parent=s1),
        event(s1, "rolled_back", at=T0 + 30, parent=s2),
    ]


def test_lifecycle_statuses_members_and_history() -> None:
    events = lifecycle()
    s1, s2 = events[0].snapshot_id, events[2].snapshot_id
    log = fold(events[:4])
    assert log.active(SCOPE) == s1
    assert log.status(s2) == "evaluated"
    assert fold(events[:5]).status(s2) == "approved"
    assert fold(events[:6]).status(s2) == "active"
    assert fold(events[:6]).status(s1) == "superseded"
    log = fold(events)
    assert (log.active(SCOPE), log.status(s1), log.status(s2)) == (s1, "active", "superseded")
    assert log.members(s2) == [Member("a", "h")]
    assert log.members(s1) == []
    assert log.members("nope") is None and log.status("nope") is None
    assert [i.offset for i in log.history(SCOPE)] == list(range(7))
    assert log.active("other/scope") is None


def test_rejected_then_a_late_evaluation_stays_rejected() -> None:
    sid = snapshot_id("acme", "bot", [Member("a", "h")])
    log = fold([event(sid, "proposed", members=[Member("a", "h")]),
                event(sid, "rejected", at=T0 + 1), event(sid, "evaluated", at=T0 + 2)])
    assert log.status(sid) == "rejected"


def test_duplicates_change_nothing_and_conflicting_offsets_fail() -> None:
    events = lifecycle()
    log = fold(events)
    before = log.to_dict()
    apply(log, events[3], 99)
    assert log.to_dict() == before
    with pytest.raises(ValueError, match="offset 2"):
        apply(log, event("x", "proposed", at=T0 + 99), 2)


def test_out_of_order_offsets_are_put_in_order() -> None:
    events = lifecycle()
    log = None
    for offset in (6, 0, 3, 5, 1, 4, 2):
        log = apply(log, events[offset], offset)
    assert log is not None
    assert log.to_dict() == fold(events).to_dict()
    assert log.active(SCOPE) == events[0].snapshot_id


def test_state_round_trips_through_json() -> None:
    log = fold(lifecycle())
    copy = SnapshotLog.from_dict(json.loads(json.dumps(log.to_dict())))
    assert copy == log
    with pytest.raises(ValueError, match="version"):
        SnapshotLog.from_dict({"version": 0, "events": []})


def test_as_of_offset_and_time() -> None:
    events = lifecycle()
    s1, s2 = events[0].snapshot_id, events[2].snapshot_id
    log = fold(events)
    assert log.as_of_offset(0) == {}
    assert log.as_of_offset(2) == {SCOPE: s1}
    assert log.as_of_offset(6) == {SCOPE: s2}
    assert log.as_of_offset(7) == {SCOPE: s1}
    assert log.as_of_time(T0) == {}
    assert log.as_of_time(T0 + 20) == {SCOPE: s2}
    assert log.as_of_time(T0 + 29) == {SCOPE: s2}


# --- rollback targets ---------------------------------------------------------------------


def test_rollback_target_by_id_time_and_offset() -> None:
    events = lifecycle()
    s2 = events[2].snapshot_id
    log = fold(events)  # s1 active again
    assert rollback_target(log, SCOPE, to_snapshot=s2) == s2
    assert rollback_target(log, SCOPE, to_time_ms=T0 + 25) == s2
    assert rollback_target(log, SCOPE, to_offset=6) == s2


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "exactly one"),
    ({"to_snapshot": "x", "to_offset": 3}, "exactly one"),
    ({"to_snapshot": "f" * 32}, "not a snapshot proposed in scope"),
    ({"to_time_ms": T0 - 1}, "no snapshot was active"),
    ({"to_offset": 1}, "no snapshot was active"),
    ({"to_offset": 3}, "already active"),
])
def test_rollback_target_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rollback_target(fold(lifecycle()), SCOPE, **kwargs)  # type: ignore[arg-type]


def test_rollback_target_must_belong_to_the_scope() -> None:
    other = event(snapshot_id("acme", "x", []), "proposed", scope=("acme", "x"))
    log = fold([*lifecycle(), other])
    with pytest.raises(ValueError, match="not a snapshot proposed in scope acme/bot"):
        rollback_target(log, SCOPE, to_snapshot=other.snapshot_id)


# --- properties ---------------------------------------------------------------------------

SIDS = ["s0", "s1", "s2", "s3"]
SCOPES = [("acme", "bot"), ("acme", "other")]
ACTIONS = ["proposed", "evaluated", "approved", "rejected", "activated", "rolled_back"]
lifecycle_events = st.lists(
    st.tuples(st.sampled_from(SIDS), st.sampled_from(ACTIONS), st.sampled_from(SCOPES),
              st.integers(0, 50)),
    max_size=40,
).map(lambda rows: [event(f"{sc[1]}-{sid}", a, at=T0 + t, scope=sc, parent=str(i))
                    for i, (sid, a, sc, t) in enumerate(rows)])


def last_activation(events: list[SnapshotEvent], scope: tuple[str, str]) -> str | None:
    hits = [e.snapshot_id for e in events if (e.tenant, e.agent) == scope
            and e.action in ("activated", "rolled_back")]
    return hits[-1] if hits else None


@settings(max_examples=200)
@given(lifecycle_events)
def test_active_is_the_last_activation(events: list[SnapshotEvent]) -> None:
    log = fold(events) if events else SnapshotLog()
    for scope in SCOPES:
        assert log.active("/".join(scope)) == last_activation(events, scope)


@settings(max_examples=200)
@given(lifecycle_events, st.integers(0, 45))
def test_as_of_offset_equals_the_truncated_log(events: list[SnapshotEvent], n: int) -> None:
    log = fold(events) if events else SnapshotLog()
    truncated = fold(events[:n]) if events[:n] else SnapshotLog()
    expected = {"/".join(s): truncated.active("/".join(s)) for s in SCOPES}
    assert log.as_of_offset(n) == {k: v for k, v in expected.items() if v is not None}


@given(lifecycle_events, st.randoms(use_true_random=False))
def test_arrival_order_does_not_matter(events: list[SnapshotEvent], rnd: random.Random) -> None:
    pairs = list(enumerate(events))
    rnd.shuffle(pairs)
    log = SnapshotLog()
    for offset, e in pairs:
        apply(log, e, offset)
    assert log.to_dict() == (fold(events) if events else SnapshotLog()).to_dict()


# --- candidates ---------------------------------------------------------------------------


def test_build_candidate_from_nothing() -> None:
    a, b = lesson("a"), lesson("b", status="candidate")
    cand = build_candidate({}, [a, b], quarantined=set())
    assert cand is not None
    assert cand.members == {"a": content_hash(a)}
    assert (cand.added, cand.removed, cand.changed) == (("a",), (), ())
    assert cand.lessons == (a,)


def test_build_candidate_diff_quarantine_and_latest_version() -> None:
    a1, a2 = lesson("a", version=1), lesson("a", version=2, guidance="better", patch=STRIP)
    b, c, q = lesson("b", tool="email"), lesson("c", tool="db"), lesson("q", tool="pay")
    active = {"a": content_hash(a1), "b": content_hash(b), "gone": "h", "q": content_hash(q)}
    cand = build_candidate(active, [a2, a1, b, c, q], quarantined={"q"})
    assert cand is not None
    assert cand.members == {"a": content_hash(a2), "b": content_hash(b), "c": content_hash(c)}
    assert (cand.added, cand.removed, cand.changed) == (("c",), ("gone", "q"), ("a",))
    assert cand.size == 4
    assert cand.tools == {"search", "db", "pay"}  # the removed lesson q's tool counts too


def test_build_candidate_below_min_change_is_none() -> None:
    a, b = lesson("a"), lesson("b")
    active = {"a": content_hash(a)}
    assert build_candidate(active, [a], quarantined=set()) is None
    assert build_candidate(active, [a, b], quarantined=set(), min_change=2) is None
    assert build_candidate(active, [a, b], quarantined=set(), min_change=1) is not None
    assert build_candidate({}, [], quarantined=set()) is None


def test_a_change_over_max_change_comes_in_steps_removals_first_then_most_support() -> None:
    """The counter-example of the old rule: 5 new lessons with a limit of 3 made one candidate
    that waited for a human, and every later candidate (a superset) waited with it."""
    old = lesson("old")
    new = [dataclasses.replace(lesson(x), support_episodes=n)
           for x, n in (("n1", 2), ("n2", 9), ("n3", 5), ("n4", 5), ("n5", 1))]
    active = {"old": content_hash(old), "gone": "h"}
    whole = build_candidate(active, [old, *new], quarantined=set())
    assert whole is not None and whole.size == 6 and whole.deferred == 0
    first = build_candidate(active, [old, *new], quarantined=set(), max_change=3)
    assert first is not None
    assert (first.removed, first.added, first.changed, first.deferred) == (
        ("gone",), ("n2", "n3"), (), 3)  # n3 before n4: equal support, by id
    assert first.members == {"old": content_hash(old), "n2": content_hash(new[1]),
                             "n3": content_hash(new[2])}
    assert [x.experience_id for x in first.lessons] == ["n2", "n3", "old"]
    second = build_candidate(first.members, [old, *new], quarantined=set(), max_change=3)
    assert second is not None and (second.added, second.deferred) == (("n1", "n4", "n5"), 0)
    assert second.members == whole.members  # the steps end where the whole change would


@given(st.integers(0, 8), st.integers(0, 4), st.integers(1, 4))
def test_steps_never_exceed_the_limit_and_always_reach_the_whole_change(
        n_new: int, n_gone: int, limit: int) -> None:
    lessons = [dataclasses.replace(lesson(f"x{i}"), support_episodes=i % 3) for i in range(n_new)]
    active = {f"gone{i}": "h" for i in range(n_gone)}
    target = build_candidate(active, lessons, quarantined=set())
    steps = 0
    while (step := build_candidate(active, lessons, quarantined=set(), max_change=limit)):
        assert step.size <= limit
        active, steps = step.members, steps + 1
    assert active == (target.members if target else {})
    assert steps == (-(-(n_new + n_gone) // limit))


def test_candidate_id_is_the_snapshot_id_of_its_members() -> None:
    cand = build_candidate({}, [lesson("b"), lesson("a")], quarantined=set())
    assert cand is not None
    members = [Member("a", content_hash(lesson("a"))), Member("b", content_hash(lesson("b")))]
    assert cand.snapshot_id("acme", "bot") == snapshot_id("acme", "bot", members[::-1])


# --- policy -------------------------------------------------------------------------------


def cand(size: int = 1, tools: frozenset[str] = frozenset({"search"})) -> Candidate:
    ids = tuple(f"x{i}" for i in range(size))
    return Candidate({i: "h" for i in ids}, ids, (), (), tools, ())


def ok(name: str = "counterfactual") -> Evaluation:
    return Evaluation(name, "pass", {}, ["ep1"], [])


def bad(name: str, failing: list[str] | None = None) -> Evaluation:
    return Evaluation(name, "fail", {}, ["ep1"], failing or [])


@pytest.mark.parametrize(("policy", "candidate", "evals", "action", "why"), [
    (Policy(), cand(), [ok()], "activate", "agree"),
    (Policy(), cand(), [bad("counterfactual")], "reject", "counterfactual"),
    (Policy(), cand(), [ok(), bad("replay", ["ep9"])], "reject", "regressed"),
    (Policy(), cand(), [ok(), bad("replay")], "await_approval", "disagree"),
    (Policy(), cand(), [], "await_approval", "not evaluated by counterfactual"),
    (Policy(), cand(4), [ok()], "await_approval", "4 changes > 3"),
    (Policy(high_risk_tools=frozenset({"search"})), cand(), [ok()], "await_approval", "high-risk"),
    (Policy(quorum=2), cand(), [ok()], "await_approval", "quorum is 2"),
    (Policy(quorum=2), cand(), [ok(), ok("replay")], "activate", "agree"),
    (Policy(), cand(), [bad("counterfactual"), ok()], "activate", "agree"),  # the re-run counts
])
def test_decide(policy: Policy, candidate: Candidate, evals: list[Evaluation], action: str,
                why: str) -> None:
    decision = decide(policy, candidate, evals)
    assert decision.action == action
    assert why in decision.reason


def test_reject_lists_failing_cases() -> None:
    decision = decide(Policy(), cand(), [bad("counterfactual", ["ep2", "ep1"]), bad("r", ["ep2"])])
    assert decision.failing == ("ep1", "ep2")


# --- event builders -----------------------------------------------------------------------


def test_event_builders_are_deterministic_valid_avro_and_fold() -> None:
    a = lesson("a")
    c = build_candidate({}, [a], quarantined=set())
    assert c is not None
    sid = c.snapshot_id("acme", "bot")
    evaluation = Evaluation("counterfactual", "pass", {"coverage": 1.0}, ["ep1"], [], "fine")
    built = [
        proposed_event("acme", "bot", c, parent_id=None, occurred_at=T0, verdict="auto"),
        evaluated_event("acme", "bot", sid, evaluation, occurred_at=T0 + 1),
        approved_event("acme", "bot", sid, actor="ana", occurred_at=T0 + 2),
        activated_event("acme", "bot", sid, replaced=None, occurred_at=T0 + 3),
    ]
    again = proposed_event("acme", "bot", c, parent_id=None, occurred_at=T0, verdict="auto")
    assert again.event_id == built[0].event_id
    later = proposed_event("acme", "bot", c, parent_id=None, occurred_at=T0 + 9)
    assert later.event_id != built[0].event_id
    codec = Codec()
    assert [codec.decode(codec.encode(e)) for e in built] == built
    assert built[0].members == [Member("a", content_hash(a))] and built[0].added == ["a"]
    assert (built[1].evaluator, built[1].verdict, built[1].scores) == (
        "counterfactual", "pass", {"coverage": 1.0})
    log = fold(built)
    assert log.active(SCOPE) == sid and log.members(sid) == c.member_list()


def test_reactivation_gets_a_new_event_id() -> None:
    first = activated_event("acme", "bot", "s2", replaced="s1", occurred_at=T0)
    back = rolled_back_event("acme", "bot", "s1", replaced="s2", occurred_at=T0 + 5,
                             actor="monitor", reason="regression", scores={"p": 0.99},
                             edge_cases=["ep1"])
    second = activated_event("acme", "bot", "s2", replaced="s1", occurred_at=T0 + 9)
    assert len({first.event_id, back.event_id, second.event_id}) == 3
    assert (back.action, back.parent_id, back.scores, back.actor) == (
        "rolled_back", "s2", {"p": 0.99}, "monitor")
    rejected = rejected_event("acme", "bot", "s3", actor="policy", occurred_at=T0, reason="no",
                              edge_cases=["ep4"])
    assert (rejected.action, rejected.edge_cases, rejected.reason) == ("rejected", ["ep4"], "no")
