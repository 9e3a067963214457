"""Behavior snapshots: content-addressed ids, the snapshot-log fold, candidates and promotion.

A snapshot is the set of (experience id, content hash) pairs an agent scope (tenant/agent) runs
with. Its id hashes the scope and the sorted members, so the same behaviour always has the same id
and a rollback to it is a pointer move. The log `kaizen.snapshots` (one partition, so offsets
order every scope) holds lifecycle events; `SnapshotLog` folds all of them:

    log = apply(log, event, offset)       # duplicates (same event id) change nothing
    log.active("acme/bot")                # target of the scope's last activated / rolled_back
    log.as_of_offset(n)                   # the behaviour of every scope as of offset n

Cadence is the processor's business: it calls `build_candidate` when the scope's proposed lessons
changed (debounced, e.g. at most once a minute of event time per scope) and when quarantine
changes; `min_change` keeps it from proposing a snapshot for every single new lesson.
The policy (`decide`) then says activate, wait for a human, or reject.

Mutation: `apply` updates the state in place and returns it (the faust table stores `to_dict`).
Pure: no clock (event time and offsets come from the caller), no randomness, no Kafka or store
imports; event ids are uuid5, so a replay emits the same events.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from kaizen.processors.learning.evaluation import Evaluation, latest_by_evaluator
from kaizen.schemas.content import content_hash
from kaizen.schemas.model import Experience, Member, SnapshotEvent
from kaizen.schemas.records import from_record, to_record
from kaizen.schemas.scope import scope_key

#: Namespace of snapshot event ids (uuid5), fixed forever: replays must give the same ids.
SNAPSHOT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "kaizen:snapshots:v1")
STATE_VERSION = 1
ACTIVATING = ("activated", "rolled_back")
DECISIONS = ("approved", "rejected")


def scope_of(tenant: str, agent: str) -> str:
    """The key of a scope on `kaizen.snapshots` and in every per-scope table (`scope_key`)."""
    return scope_key(tenant, agent)


def snapshot_id(tenant: str, agent: str, members: Iterable[Member]) -> str:
    """32 hex chars of sha256 over the scope and the sorted member pairs; order-independent.

    The empty set has an id too (a scope running with no lessons). One experience id with two
    content hashes is not a snapshot: ValueError.
    """
    pairs = sorted({(m.experience_id, m.content_hash) for m in members})
    ids = [p[0] for p in pairs]
    if len(ids) != len(set(ids)):
        raise ValueError("a snapshot holds one content hash per experience id")
    text = json.dumps({"scope": [tenant, agent], "members": pairs}, separators=(",", ":"),
                      ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# --- the snapshot log -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Logged:
    offset: int
    event: SnapshotEvent


@dataclass
class SnapshotLog:
    """Every snapshot event of every scope, by offset. Small: a few events per snapshot."""

    scopes: dict[str, list[Logged]] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)  # event id -> offset
    where: dict[str, str] = field(default_factory=dict)  # snapshot id -> scope

    def active(self, scope: str) -> str | None:
        return _active_in(self.scopes.get(scope, []))

    def members(self, snapshot_id: str) -> list[Member] | None:
        """Members from the snapshot's `proposed` event; None if it was never proposed."""
        for item in self.scopes.get(self.where.get(snapshot_id, ""), []):
            if item.event.action == "proposed" and item.event.snapshot_id == snapshot_id:
                return list(item.event.members)
        return None

    def status(self, snapshot_id: str) -> str | None:
        """active / superseded / rejected / approved / evaluated / proposed; None if unknown."""
        scope = self.where.get(snapshot_id)
        if scope is None:
            return None
        if self.active(scope) == snapshot_id:
            return "active"
        actions = [i.event.action for i in self.scopes[scope] if i.event.snapshot_id == snapshot_id]
        if any(a in ACTIVATING for a in actions):
            return "superseded"
        decisions = [a for a in actions if a in DECISIONS]  # the last decision wins
        if decisions:
            return decisions[-1]
        return "evaluated" if "evaluated" in actions else "proposed"

    def history(self, scope: str) -> list[Logged]:
        return list(self.scopes.get(scope, []))

    def as_of_offset(self, n: int) -> dict[str, str]:
        """Active snapshot per scope counting only events with offset < n."""
        return _active_per_scope(self.scopes, lambda i: i.offset < n)

    def as_of_time(self, ms: int) -> dict[str, str]:
        """Active snapshot per scope counting only events with occurred_at <= ms (log order)."""
        return _active_per_scope(self.scopes, lambda i: i.event.occurred_at <= ms)

    def to_dict(self) -> dict[str, Any]:
        items = sorted((i for events in self.scopes.values() for i in events),
                       key=lambda i: i.offset)  # log order: the same log gives the same dict
        events = [[i.offset, to_record(i.event, _avro_name)] for i in items]
        return {"version": STATE_VERSION, "events": events}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SnapshotLog:
        if d.get("version") != STATE_VERSION:
            raise ValueError(f"snapshot log state version {d.get('version')!r} != {STATE_VERSION}")
        state = cls()
        for offset, record in d["events"]:
            apply(state, from_record(SnapshotEvent, record), offset)
        return state


def apply(state: SnapshotLog | None, event: SnapshotEvent, offset: int) -> SnapshotLog:
    """Add one event read at `offset`; a known event id changes nothing.

    Two different events at one offset mean the caller mixed up logs: ValueError (fail loudly).
    """
    state = state if state is not None else SnapshotLog()
    if event.event_id in state.seen:
        return state
    events = state.scopes.setdefault(scope_of(event.tenant, event.agent), [])
    at = bisect.bisect_left([i.offset for i in events], offset)
    if at < len(events) and events[at].offset == offset:
        raise ValueError(f"offset {offset} already holds event {events[at].event.event_id}")
    events.insert(at, Logged(offset, event))
    state.seen[event.event_id] = offset
    state.where.setdefault(event.snapshot_id, scope_of(event.tenant, event.agent))
    return state


def rollback_target(
    state: SnapshotLog,
    scope: str,
    *,
    to_snapshot: str | None = None,
    to_time_ms: int | None = None,
    to_offset: int | None = None,
) -> str:
    """The snapshot to roll `scope` back to, chosen by exactly one of id, time or offset.

    By time / offset: the snapshot active then. The target must be a snapshot proposed in this
    scope (so its members are known) and must not be the active one. ValueError otherwise.
    """
    chosen = [x is not None for x in (to_snapshot, to_time_ms, to_offset)]
    if sum(chosen) != 1:
        raise ValueError("give exactly one of to_snapshot, to_time_ms, to_offset")
    if to_snapshot is not None:
        target: str | None = to_snapshot
        where = f"snapshot {to_snapshot}"
    elif to_time_ms is not None:
        target, where = state.as_of_time(to_time_ms).get(scope), f"time {to_time_ms}"
    else:
        assert to_offset is not None
        target, where = state.as_of_offset(to_offset).get(scope), f"offset {to_offset}"
    if target is None:
        raise ValueError(f"no snapshot was active in scope {scope} at {where}")
    if state.where.get(target) != scope or state.members(target) is None:
        raise ValueError(f"{where} is not a snapshot proposed in scope {scope}")
    if state.active(scope) == target:
        raise ValueError(f"snapshot {target} is already active in scope {scope}")
    return target


def _active_in(events: Iterable[Logged]) -> str | None:
    active = None
    for item in events:
        if item.event.action in ACTIVATING:
            active = item.event.snapshot_id
    return active


def _active_per_scope(
    scopes: dict[str, list[Logged]], keep: Callable[[Logged], bool]
) -> dict[str, str]:
    out = {scope: _active_in(i for i in events if keep(i)) for scope, events in scopes.items()}
    return {scope: sid for scope, sid in out.items() if sid is not None}


def _avro_name(cls: type) -> str:
    return f"kaizen.snapshots.{cls.__name__}"


# --- candidates -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A proposed member set and how it differs from the active one."""

    members: dict[str, str]  # experience id -> content hash
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]  # same id, new content hash
    tools: frozenset[str]  # tools the added, removed and changed lessons are about
    lessons: tuple[Experience, ...]  # the member experiences, by id
    deferred: int = 0  # changes left for a later step (`build_candidate(max_change=)`)

    @property
    def size(self) -> int:
        return len(self.added) + len(self.removed) + len(self.changed)

    def member_list(self) -> list[Member]:
        return [Member(i, h) for i, h in sorted(self.members.items())]

    def snapshot_id(self, tenant: str, agent: str) -> str:
        return snapshot_id(tenant, agent, self.member_list())


def build_candidate(
    active_members: dict[str, str],
    experiences: Iterable[Experience],
    *,
    quarantined: set[str],
    min_change: int = 1,
    max_change: int | None = None,
) -> Candidate | None:
    """The scope's proposed, non-quarantined lessons as a candidate; None below `min_change`.

    `experiences` are the scope's lessons (the highest version of an id wins if several come).
    With `max_change`, a larger change is cut to a step of at most that many changes
    (`_first_step`): removals first, then changed lessons, then added ones by most support; the
    rest (`deferred`) comes in later candidates. Why: on real logs the learnt lessons pile up
    faster than any human approves, and one candidate over the limit waited for a human while
    every later one, a superset, waited too: nothing more was learnt, ever (README, Gate).
    """
    latest: dict[str, Experience] = {}
    for x in experiences:
        if x.experience_id not in latest or x.version >= latest[x.experience_id].version:
            latest[x.experience_id] = x
    chosen = {
        i: x for i, x in sorted(latest.items()) if x.status == "proposed" and i not in quarantined
    }
    members = {i: content_hash(x) for i, x in chosen.items()}
    added = tuple(sorted(members.keys() - active_members.keys()))
    removed = tuple(sorted(active_members.keys() - members.keys()))
    changed = tuple(sorted(i for i in members.keys() & active_members.keys()
                           if members[i] != active_members[i]))
    if len(added) + len(removed) + len(changed) < min_change:
        return None
    deferred = 0
    if max_change is not None and len(added) + len(removed) + len(changed) > max_change:
        members, added, removed, changed, deferred = _first_step(
            active_members, members, latest, added, removed, changed, max(max_change, 1))
        chosen = {i: latest[i] for i in members if i in latest}
    touched = [latest[i] for i in (*added, *removed, *changed) if i in latest]
    return Candidate(members, added, removed, changed, _tools(touched),
                     tuple(chosen[i] for i in sorted(chosen)), deferred)


def _first_step(active: dict[str, str], target: dict[str, str], latest: dict[str, Experience],
                added: tuple[str, ...], removed: tuple[str, ...], changed: tuple[str, ...],
                size: int) -> tuple[dict[str, str], tuple[str, ...], tuple[str, ...],
                                    tuple[str, ...], int]:
    """The first `size` changes from `active` towards `target`, and how many are left."""
    by_support = sorted(added, key=lambda i: (-latest[i].support_episodes, i))
    order = [("removed", i) for i in removed] + [("changed", i) for i in changed] + [
        ("added", i) for i in by_support]
    step, left = order[:size], len(order) - size
    members = dict(active)
    for kind, i in step:
        if kind == "removed":
            members.pop(i, None)
        else:
            members[i] = target[i]
    pick = {kind: tuple(sorted(i for k, i in step if k == kind))
            for kind in ("added", "removed", "changed")}
    return members, pick["added"], pick["removed"], pick["changed"], left


def _tools(lessons: Iterable[Experience]) -> frozenset[str]:
    tools: set[str] = set()
    for x in lessons:
        tools.update(t for t in (x.tool, x.patch and x.patch.tool, x.patch and x.patch.use_tool)
                     if t)
    return frozenset(tools)


# --- promotion policy -----------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """What may activate without a human."""

    max_auto_change: int = 3
    in_steps: bool = False  # a bigger change is proposed in steps of max_auto_change
    high_risk_tools: frozenset[str] = frozenset()
    required_evaluators: tuple[str, ...] = ("counterfactual",)
    quorum: int | None = None  # at least this many evaluators must pass


@dataclass(frozen=True)
class Decision:
    action: Literal["activate", "await_approval", "reject"]
    reason: str
    failing: tuple[str, ...] = ()  # edge cases (episode ids) behind a rejection


def decide(policy: Policy, candidate: Candidate, evaluations: list[Evaluation]) -> Decision:
    """Reject on a failed required evaluator or any regressed edge case; wait for a human on a
    big change, a high-risk tool, a missing required evaluation, a missed quorum or evaluators
    that disagree; otherwise activate. The last evaluation per evaluator counts."""
    latest = latest_by_evaluator(evaluations)
    failing = tuple(sorted({ep for e in latest.values() for ep in e.failing}))
    failed = [n for n in policy.required_evaluators if n in latest and not latest[n].passed]
    if failed:
        return Decision("reject", f"required evaluator(s) failed: {', '.join(failed)}", failing)
    if failing:
        return Decision("reject", f"{len(failing)} edge case(s) regressed", failing)
    waits = _reasons_to_wait(policy, candidate, latest)
    if waits:
        return Decision("await_approval", "; ".join(waits))
    return Decision("activate", f"{candidate.size} change(s), evaluations agree")


def _reasons_to_wait(
    policy: Policy, candidate: Candidate, latest: dict[str, Evaluation]
) -> list[str]:
    waits = [f"not evaluated by {n}" for n in policy.required_evaluators if n not in latest]
    passed = sum(e.passed for e in latest.values())
    if policy.quorum is not None and passed < policy.quorum:
        waits.append(f"{passed} evaluator(s) passed, quorum is {policy.quorum}")
    if len({e.verdict for e in latest.values()}) > 1:
        waits.append("evaluators disagree")
    if candidate.size > policy.max_auto_change:
        waits.append(f"{candidate.size} changes > {policy.max_auto_change}")
    risky = sorted(candidate.tools & policy.high_risk_tools)
    if risky:
        waits.append(f"touches high-risk tool(s): {', '.join(risky)}")
    return waits


# --- event builders -------------------------------------------------------------------------


def _event(tenant: str, agent: str, sid: str, action: str, occurred_at: int, discriminator: str,
           **fields: Any) -> SnapshotEvent:
    """A snapshot event whose id is uuid5 over scope, snapshot, action, discriminator and time."""
    key = f"{scope_key(tenant, agent)}/{sid}/{action}/{discriminator}/{occurred_at}"
    eid = str(uuid.uuid5(SNAPSHOT_NAMESPACE, key))
    return SnapshotEvent(eid, occurred_at, tenant, agent, sid, action, **fields)


def proposed_event(tenant: str, agent: str, candidate: Candidate, *, parent_id: str | None,
                   occurred_at: int, verdict: str | None = None, actor: str = "policy",
                   reason: str | None = None) -> SnapshotEvent:
    """`verdict`: the policy's auto / needs_approval, if decided at proposal time."""
    return _event(tenant, agent, candidate.snapshot_id(tenant, agent), "proposed", occurred_at,
                  parent_id or "", parent_id=parent_id, members=candidate.member_list(),
                  added=list(candidate.added), removed=list(candidate.removed), verdict=verdict,
                  actor=actor, reason=reason)


def evaluated_event(tenant: str, agent: str, sid: str, evaluation: Evaluation, *,
                    occurred_at: int) -> SnapshotEvent:
    return _event(tenant, agent, sid, "evaluated", occurred_at, evaluation.evaluator,
                  evaluator=evaluation.evaluator, verdict=evaluation.verdict,
                  scores=dict(evaluation.scores), edge_cases=list(evaluation.edge_cases),
                  actor=evaluation.evaluator, reason=evaluation.reason or None)


def approved_event(tenant: str, agent: str, sid: str, *, actor: str, occurred_at: int,
                   reason: str | None = None) -> SnapshotEvent:
    return _event(tenant, agent, sid, "approved", occurred_at, actor, actor=actor, reason=reason)


def rejected_event(tenant: str, agent: str, sid: str, *, actor: str, occurred_at: int,
                   reason: str | None = None, edge_cases: Iterable[str] = (),
                   blamed: Iterable[str] = ()) -> SnapshotEvent:
    """`blamed`: the lessons the rejection holds responsible (in `removed`): recall and later
    candidates leave them out (`recallable.py`), also after a restart or a rebuild."""
    return _event(tenant, agent, sid, "rejected", occurred_at, actor, actor=actor, reason=reason,
                  edge_cases=list(edge_cases), removed=sorted(blamed))


def activated_event(tenant: str, agent: str, sid: str, *, replaced: str | None, occurred_at: int,
                    actor: str = "policy", reason: str | None = None) -> SnapshotEvent:
    """`replaced`: the snapshot active until now (the event's parent_id)."""
    return _event(tenant, agent, sid, "activated", occurred_at, replaced or "",
                  parent_id=replaced, actor=actor, reason=reason)


def rolled_back_event(tenant: str, agent: str, target: str, *, replaced: str | None,
                      occurred_at: int, actor: str, reason: str,
                      scores: dict[str, float] | None = None,
                      edge_cases: Iterable[str] = ()) -> SnapshotEvent:
    """Makes `target` active again; `replaced` is the snapshot being rolled back."""
    return _event(tenant, agent, target, "rolled_back", occurred_at, replaced or "",
                  parent_id=replaced, actor=actor, reason=reason, scores=dict(scores or {}),
                  edge_cases=list(edge_cases))
