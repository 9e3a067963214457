"""What became of each lesson at the end of a backtest: its status, support, and the gate's doing.

Pure: reads the lessons, the snapshot log and the per-lesson recall figures. The `gate` label of a
lesson is the furthest its snapshots got:
`active` (a member of the active snapshot), `activated, then removed`, `awaiting approval` (only in
candidates the policy left for a human), `rejected` (only in rejected candidates), `blamed` (a
rejection or rollback named it), `quarantined` (harmful by per-lesson effect), or `not in a
candidate` (never proposed for a snapshot: still a candidate lesson, or no gate ran since).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence

from kaizen.backtest.report import LessonRow
from kaizen.backtest.tally import LessonFigures
from kaizen.processors.learning.snapshots import SnapshotLog, scope_of
from kaizen.schemas.model import Experience


def gate_counts(log: SnapshotLog) -> dict[str, int]:
    """How many snapshot events of each action the backtest produced (plus the waits)."""
    counts: Counter[str] = Counter()
    for items in log.scopes.values():
        for item in items:
            counts[item.event.action] += 1
            if item.event.action == "proposed" and item.event.verdict == "await_approval":
                counts["awaiting approval"] += 1
    return dict(counts)


def lesson_rows(scope_lessons: Mapping[tuple[str, str], Sequence[Experience]], log: SnapshotLog,
                figures: Mapping[str, LessonFigures], *, blamed: Collection[str],
                quarantined: Collection[str]) -> list[LessonRow]:
    rows = []
    for (tenant, agent), lessons in sorted(scope_lessons.items()):
        scope = scope_of(tenant, agent)
        labels = _labels(log, scope)
        active = log.active(scope)
        active_ids = {m.experience_id for m in (log.members(active) or [])} if active else set()
        for x in sorted(lessons, key=lambda e: e.experience_id):
            gate = _gate(x.experience_id, labels, active_ids, blamed, quarantined)
            f = figures.get(x.experience_id, LessonFigures())
            rows.append(LessonRow(
                experience_id=x.experience_id, scope=scope, kind=x.kind, tool=x.tool,
                signature=x.trigger.signature,
                status="active" if x.experience_id in active_ids else x.status, gate=gate,
                support_episodes=x.support_episodes, support_users=x.support_users,
                guidance=x.guidance, recalled=f.recalled, relevant=f.relevant,
                off_target=f.off_target))
    return rows


def _labels(log: SnapshotLog, scope: str) -> dict[str, set[str]]:
    """Lesson id -> the fates of the snapshots it was a member of."""
    members: dict[str, set[str]] = {}
    fates: dict[str, set[str]] = {}
    for item in log.history(scope):
        event = item.event
        if event.action == "proposed":
            members[event.snapshot_id] = {m.experience_id for m in event.members}
            if event.verdict == "await_approval":
                fates.setdefault(event.snapshot_id, set()).add("awaiting approval")
        elif event.action in ("activated", "rolled_back"):
            fates.setdefault(event.snapshot_id, set()).add("activated")
        elif event.action == "rejected":
            fates.setdefault(event.snapshot_id, set()).add("rejected")
    labels: dict[str, set[str]] = {}
    for sid, ids in members.items():
        for lesson in ids:
            labels.setdefault(lesson, set()).update(fates.get(sid, {"proposed"}))
    return labels


def _gate(lesson: str, labels: Mapping[str, set[str]], active: Collection[str],
          blamed: Collection[str], quarantined: Collection[str]) -> str:
    if lesson in active:
        return "active"
    fates = labels.get(lesson, set())
    if "activated" in fates:
        return "activated, then removed"
    if lesson in blamed:
        return "blamed"
    if lesson in quarantined:
        return "quarantined"
    if "awaiting approval" in fates:
        return "awaiting approval"
    if "rejected" in fates:
        return "rejected"
    return "in a candidate" if fates else "not in a candidate"
