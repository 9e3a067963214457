"""Human actions on behavior snapshots, shared by the CLI and the HTTP API.

Every action is one or two new events on the snapshot log; nothing is edited. Rollback targets are
resolved by replaying the log: by snapshot id, by time, or "the behavior as of offset N".
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Request", "behavior_digest", "diff", "events_for", "read_log"]

from kaizen.client.snapshot_log import read_log
from kaizen.processors.learning import snapshots
from kaizen.processors.learning.snapshots import SnapshotLog, scope_of
from kaizen.schemas import model


@dataclass(frozen=True)
class Request:
    action: str  # approve | reject | activate | rollback
    tenant: str
    agent: str
    snapshot_id: str | None = None
    to_time_ms: int | None = None
    to_offset: int | None = None
    actor: str = "cli"
    reason: str | None = None


def events_for(state: SnapshotLog, request: Request, now_ms: int | None = None
               ) -> list[model.SnapshotEvent]:
    """The events that carry out a request; ValueError with a clear message if it cannot be."""
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    scope = scope_of(request.tenant, request.agent)
    active = state.active(scope)
    sid = request.snapshot_id
    t, a = request.tenant, request.agent
    if request.action == "rollback":
        target = snapshots.rollback_target(state, scope, to_snapshot=sid,
                                           to_time_ms=request.to_time_ms,
                                           to_offset=request.to_offset)
        return [snapshots.rolled_back_event(t, a, target, replaced=active, occurred_at=now,
                                            actor=request.actor,
                                            reason=request.reason or "rollback requested")]
    if sid is None or state.members(sid) is None:
        raise ValueError(f"unknown snapshot {sid!r} in scope {scope}")
    if request.action == "approve":
        return [snapshots.approved_event(t, a, sid, actor=request.actor, occurred_at=now,
                                         reason=request.reason),
                snapshots.activated_event(t, a, sid, replaced=active, occurred_at=now,
                                          actor=request.actor, reason="approved")]
    if request.action == "reject":
        return [snapshots.rejected_event(t, a, sid, actor=request.actor, occurred_at=now,
                                         reason=request.reason)]
    if request.action == "activate":
        return [snapshots.activated_event(t, a, sid, replaced=active, occurred_at=now,
                                          actor=request.actor, reason=request.reason)]
    raise ValueError(f"unknown action {request.action!r}")


def diff(state: SnapshotLog, a: str, b: str) -> dict[str, Sequence[str]]:
    """Lessons only in A, only in B, and in both with different content."""
    left = {m.experience_id: m.content_hash for m in state.members(a) or []}
    right = {m.experience_id: m.content_hash for m in state.members(b) or []}
    return {
        "only_in_a": sorted(left.keys() - right.keys()),
        "only_in_b": sorted(right.keys() - left.keys()),
        "changed": sorted(k for k in left.keys() & right.keys() if left[k] != right[k]),
    }


def behavior_digest(state: SnapshotLog, as_of_offset: int | None = None) -> str:
    """A digest of the behavior in force: each scope's active snapshot and its members' content
    hashes, from the snapshot log up to (excluding) `as_of_offset`. Equal digest, equal behavior."""
    active = state.as_of_offset(as_of_offset) if as_of_offset is not None else {
        scope: sid for scope in state.scopes if (sid := state.active(scope))}
    content = {
        scope: [sid, sorted((m.experience_id, m.content_hash) for m in state.members(sid) or [])]
        for scope, sid in sorted(active.items())
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:32]
