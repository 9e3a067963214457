"""The gate (`Behavior`) without a broker: an injected clock and a list as the publisher.

What goes out is what the snapshot log will hold; feeding the published events back in (as the
snapshot tail does in the service) must switch the recall index to the activated members.
"""

from __future__ import annotations

import uuid

from kaizen.processors.learning.snapshots import Policy, scope_of
from kaizen.readmodel.embedding import HashingEmbedder
from kaizen.readmodel.index import RecallIndex
from kaizen.schemas import model
from kaizen.service.gate import Behavior

T0 = 1_700_000_000.0


def lesson(eid: str, tool: str = "orders.get", status: str = "proposed") -> model.Experience:
    return model.Experience(
        str(uuid.uuid4()), 1, "acme", "bot", eid, 1, "recovery",
        model.Trigger(f"{tool}: unknown field <str>", "orders", "look up an order"),
        f"When calling {tool}, use `id` instead of `order_id` ({eid}).",
        [model.Evidence(f"ep-{eid}", 0, 1, "u1")], 3, 2, tool=tool, status=status,
    )


class Gate:
    """A Behavior wired to a list publisher; `cycle` gates once and applies what was published."""

    def __init__(self, policy: Policy | None = None) -> None:
        self.index = RecallIndex(HashingEmbedder())
        self.published: list[model.SnapshotEvent] = []
        self.behavior = Behavior(self.index, self.published.extend, policy=policy,
                                 clock=lambda: T0)
        self.offset = 0

    def cycle(self) -> list[model.SnapshotEvent]:
        events = self.behavior.gate()
        for event in events:
            self.behavior.on_snapshot_event(self.offset, event)
            self.offset += 1
        return events


def test_a_small_change_is_proposed_evaluated_and_activated_with_the_clocks_time() -> None:
    gate = Gate()
    gate.index.upsert(lesson("x1"))
    events = gate.cycle()
    assert [e.action for e in events] == ["proposed", "evaluated", "activated"]
    assert {e.occurred_at for e in events} == {int(T0 * 1000)}
    active = gate.behavior.log.active(scope_of("acme", "bot"))
    assert active == events[0].snapshot_id
    assert [x.experience_id for x in gate.index.recall("look up an order", agent="bot",
                                                       tenant="acme")] == ["x1"]


def test_nothing_changed_means_nothing_is_published_again() -> None:
    gate = Gate()
    gate.index.upsert(lesson("x1"))
    gate.cycle()
    assert gate.cycle() == []


def test_a_change_larger_than_the_policy_allows_waits_for_a_human() -> None:
    gate = Gate(Policy(max_auto_change=1))
    for eid in ("x1", "x2"):
        gate.index.upsert(lesson(eid, tool=f"tool{eid}"))
    events = gate.cycle()
    assert [e.action for e in events] == ["proposed", "evaluated"]
    assert events[0].verdict == "await_approval"
    assert gate.behavior.log.active(scope_of("acme", "bot")) is None
    assert gate.cycle() == []  # proposed once: it waits, it is not proposed again


def test_a_monitor_rollback_blames_the_lessons_it_removed() -> None:
    gate = Gate()
    gate.index.upsert(lesson("good"))
    parent = gate.cycle()[0].snapshot_id
    gate.index.upsert(lesson("bad", tool="payments.charge"))
    child = gate.cycle()[0].snapshot_id
    rollback = model.SnapshotEvent(str(uuid.uuid4()), int(T0 * 1000) + 1, "acme", "bot", parent,
                                   "rolled_back", parent_id=child, actor="monitor",
                                   reason="regression")
    gate.behavior.on_snapshot_event(gate.offset, rollback)
    assert gate.behavior.quarantined() == {"bad"}
    assert gate.behavior.log.active(scope_of("acme", "bot")) == parent
    assert gate.cycle() == []  # the blamed lesson is left out, so nothing new to propose
