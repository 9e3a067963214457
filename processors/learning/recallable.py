"""What recall serves in a scope, read from the snapshot log alone (issue 10 item 6).

- After an activation (or rollback): exactly the active snapshot's members.
- Before any activation: every proposed lesson MINUS the lessons the log excludes: those a
  rejection blamed (the `removed` ids of a `rejected` event; older rejections without them
  blame nothing) and those a monitor rollback blamed (members of the rolled-back snapshot that
  the target does not have). Without this, a rejection changed nothing until an activation.

The service's gate and the embedded library (no service running) both fold the same log with
`snapshots.apply` and ask `recall_view`, so they serve the same lessons by construction; a
congruence test checks it. Pure: no Kafka, no store.
"""

from __future__ import annotations

from dataclasses import dataclass

from kaizen.processors.learning.snapshots import SnapshotLog, scope_of


@dataclass(frozen=True, slots=True)
class RecallView:
    """`active`: the member ids to serve, or None for "proposed lessons"; `excluded`: ids the
    log blamed, left out of "proposed lessons" (and of later candidates)."""

    active: frozenset[str] | None
    excluded: frozenset[str]


def recall_view(log: SnapshotLog, tenant: str, agent: str) -> RecallView:
    scope = scope_of(tenant, agent)
    active = log.active(scope)
    excluded = blamed(log, scope)
    if active is not None:
        return RecallView(frozenset(m.experience_id for m in log.members(active) or []), excluded)
    return RecallView(None, excluded)


def blamed(log: SnapshotLog, scope: str) -> frozenset[str]:
    """Every lesson the scope's log blamed: by a rejection, or by a monitor rollback."""
    out: set[str] = set()
    for item in log.history(scope):
        event = item.event
        if event.action == "rejected":
            out |= set(event.removed)
        elif event.action == "rolled_back" and event.actor == "monitor" and event.parent_id:
            out |= _ids(log, event.parent_id) - _ids(log, event.snapshot_id)
    return frozenset(out)


def _ids(log: SnapshotLog, snapshot_id: str) -> set[str]:
    return {m.experience_id for m in log.members(snapshot_id) or []}
