"""Recall serves exactly what the snapshot log says, through the service's behavior manager and
through the embedded library's fold alike (issue 10 item 6): one log, the same answers."""

from __future__ import annotations

from kaizen.client.embedded import apply_snapshot_log
from kaizen.processors.learning import snapshots
from kaizen.processors.learning.snapshots import SnapshotLog
from kaizen.readmodel.embedding import HashingEmbedder
from kaizen.readmodel.index import RecallIndex
from kaizen.schemas.model import Experience, SnapshotEvent, Trigger
from kaizen.service.gate import Behavior

T, A = "acme", "shop-bot"
QUERIES = ["exchange the lamp of my order", "cancel my pending order", "find my user id"]


def lesson(eid: str, tool: str, text: str) -> Experience:
    return Experience(
        event_id=f"{eid}/1", occurred_at=1, tenant=T, agent=A, experience_id=eid, version=1,
        kind="pitfall", trigger=Trigger(f"{tool}: Error: x", "retail", text), guidance=text,
        evidence=[], support_episodes=3, support_users=2, tool=tool, status="proposed",
    )


LESSONS = [
    lesson("a", "exchange_delivered_order_items", "exchange the lamp: check the order status"),
    lesson("b", "cancel_pending_order", "cancel my pending order: give a valid reason"),
    lesson("c", "find_user_id_by_email", "find my user id: ask for the exact email"),
]


def log_events() -> list[SnapshotEvent]:
    candidate = snapshots.build_candidate({}, LESSONS, quarantined=set())
    assert candidate is not None
    sid = candidate.snapshot_id(T, A)
    return [
        snapshots.proposed_event(T, A, candidate, parent_id=None, occurred_at=10),
        snapshots.rejected_event(T, A, sid, actor="policy", occurred_at=11, reason="regressed",
                                 blamed=["b"]),
    ]


def served(index: RecallIndex) -> list[list[str]]:
    return [[x.experience_id for x in index.recall(q, agent=A, tenant=T, k=3, min_score=-1.0)]
            for q in QUERIES]


def both(events: list[SnapshotEvent]) -> tuple[list[list[str]], list[list[str]]]:
    service_index = RecallIndex(HashingEmbedder())
    service_index.load(LESSONS)
    behavior = Behavior(service_index, publish=lambda _: None)
    log = SnapshotLog()
    for offset, event in enumerate(events):
        behavior.on_snapshot_event(offset, event)
        log = snapshots.apply(log, event, offset)
    library_index = RecallIndex(HashingEmbedder())
    library_index.load(LESSONS)
    apply_snapshot_log(library_index, log, T, A)
    return served(service_index), served(library_index)


def test_a_rejected_lesson_is_not_recalled_before_any_activation() -> None:
    """Before: a rejection changed nothing until an activation; "b" was still recalled."""
    service, library = both(log_events())
    assert service == library
    assert all("b" not in answer for answer in service)
    assert any("a" in answer for answer in service) and any("c" in answer for answer in service)


def test_after_an_activation_both_serve_exactly_its_members() -> None:
    only_c = snapshots.build_candidate({}, [LESSONS[2]], quarantined=set(), min_change=1)
    assert only_c is not None
    sid = only_c.snapshot_id(T, A)
    events = [
        *log_events(),
        snapshots.proposed_event(T, A, only_c, parent_id=None, occurred_at=12),
        snapshots.activated_event(T, A, sid, replaced=None, occurred_at=13),
    ]
    service, library = both(events)
    assert service == library == [["c"], ["c"], ["c"]]


def test_the_relevance_floor_returns_nothing_rather_than_an_unrelated_lesson() -> None:
    index = RecallIndex(HashingEmbedder(), min_score=0.3)
    index.load(LESSONS)
    assert index.recall("what is the weather in Paris", agent=A, tenant=T) == []
    assert [x.experience_id for x in index.recall(QUERIES[0], agent=A, tenant=T, k=1)] == ["a"]
