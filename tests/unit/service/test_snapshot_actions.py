"""Human snapshot actions as events, on a snapshot log folded in memory (no broker)."""

from __future__ import annotations

import pytest

from kaizen.processors.learning import snapshots
from kaizen.processors.learning.snapshots import SnapshotLog, scope_of
from kaizen.schemas import model
from kaizen.service.snapshot_actions import Request, behavior_digest, diff, events_for
from tests.unit.service.test_gate import lesson

SCOPE = scope_of("acme", "bot")


def _log_with_two_activations() -> tuple[SnapshotLog, str, str]:
    state, offset, active, sids = SnapshotLog(), 0, None, []
    members: dict[str, str] = {}
    for i, lessons in enumerate(([lesson("x1")], [lesson("x1"), lesson("x2", "t2")])):
        candidate = snapshots.build_candidate(members, lessons, quarantined=set())
        assert candidate is not None
        sid = candidate.snapshot_id("acme", "bot")
        for event in (snapshots.proposed_event("acme", "bot", candidate, parent_id=active,
                                               occurred_at=1000 * (i + 1)),
                      snapshots.activated_event("acme", "bot", sid, replaced=active,
                                                occurred_at=1000 * (i + 1) + 1)):
            state = snapshots.apply(state, event, offset)
            offset += 1
        members, active = dict(candidate.members), sid
        sids.append(sid)
    return state, sids[0], sids[1]


def _apply(state: SnapshotLog, events: list[model.SnapshotEvent], offset: int) -> SnapshotLog:
    for event in events:
        state = snapshots.apply(state, event, offset)
        offset += 1
    return state


def test_rollback_by_offset_restores_the_behavior_as_of_that_offset() -> None:
    state, first, second = _log_with_two_activations()
    assert state.active(SCOPE) == second
    events = events_for(state, Request("rollback", "acme", "bot", to_offset=2), now_ms=5000)
    assert [(e.action, e.snapshot_id, e.parent_id) for e in events] == [
        ("rolled_back", first, second)]
    after = _apply(state, events, 4)
    assert after.active(SCOPE) == first
    assert behavior_digest(after) == behavior_digest(state, as_of_offset=2)


def test_rollback_by_time_and_by_id_pick_the_same_snapshot() -> None:
    state, first, _ = _log_with_two_activations()
    by_time = events_for(state, Request("rollback", "acme", "bot", to_time_ms=1500), now_ms=9)
    by_id = events_for(state, Request("rollback", "acme", "bot", snapshot_id=first), now_ms=9)
    assert by_time[0].snapshot_id == by_id[0].snapshot_id == first


def test_approve_is_an_approval_then_an_activation_by_the_actor() -> None:
    state, first, _ = _log_with_two_activations()
    events = events_for(state, Request("approve", "acme", "bot", snapshot_id=first,
                                       actor="alice"), now_ms=7)
    assert [(e.action, e.actor) for e in events] == [("approved", "alice"), ("activated", "alice")]


def test_an_unknown_snapshot_or_action_is_a_clear_error() -> None:
    state, first, _ = _log_with_two_activations()
    with pytest.raises(ValueError, match="unknown snapshot"):
        events_for(state, Request("approve", "acme", "bot", snapshot_id="nope"))
    with pytest.raises(ValueError, match="unknown action"):
        events_for(state, Request("promote", "acme", "bot", snapshot_id=first))


def test_diff_names_what_each_snapshot_has_alone() -> None:
    state, first, second = _log_with_two_activations()
    assert diff(state, first, second) == {"only_in_a": [], "only_in_b": ["x2"], "changed": []}
