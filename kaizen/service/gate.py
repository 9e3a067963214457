"""The service's behavior manager: the snapshot log as state, the gate, the live monitor.

- Folds the snapshot log (followed from offset 0) and keeps the recall index of every scope on its
  active snapshot's members.
- The gate: now and then, for each scope whose lessons changed, builds a candidate from the
  proposed, non-quarantined lessons, evaluates it on historical edge cases (excluding the episodes
  its new lessons came from), and lets the policy activate it, reject it, or leave it waiting for a
  human (`kaizen snapshots approve`).
- The monitor and per-lesson effect: outcome signals of episodes stamped with a new snapshot are
  compared with its parent; a significant regression appends a rollback; lessons whose harm
  crosses the threshold are quarantined and dropped from the next candidate.
All decisions are the pure functions of `processors/learning/`; this module only feeds and
publishes. Everything it holds comes from the log: the snapshot log (including which lessons a
monitor rollback blamed) and the signals, which `kaizen serve` replays at start
(`KAIZEN_BEHAVIOR_REPLAY_HOURS`) to restore the monitor, the per-lesson effects and the edge cases.
Lessons blamed by a policy rejection are in the rejected event (`removed`), so recall leaves them
out at once (before any activation too) and a restart or rebuild restores them from the log
(`processors/learning/recallable.py`, the same fold the embedded library uses).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

import structlog

from kaizen.processors.learning import effects, monitor, snapshots
from kaizen.processors.learning.evaluation import (
    CounterfactualEvaluator,
    EdgeCase,
    Evaluator,
    homework,
    recall_by_trigger,
    select_edge_cases,
)
from kaizen.processors.learning.recallable import recall_view
from kaizen.processors.learning.snapshots import Policy, SnapshotLog, scope_of
from kaizen.readmodel.index import RecallIndex
from kaizen.schemas import model
from kaizen.service.snapshot_actions import behavior_digest

log = structlog.get_logger(__name__)
Publish = Callable[[Sequence[model.SnapshotEvent]], object]
EDGE_CASE_SIGNALS = 5000  # recent signals kept per scope to draw edge cases from
EDGE_CASES = 200


class Behavior:
    """Thread-safe: the snapshot tail, the sink runner and the gate thread all call in."""

    def __init__(self, index: RecallIndex, publish: Publish, *, policy: Policy | None = None,
                 evaluators: Sequence[Evaluator] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.index, self.publish, self.clock = index, publish, clock
        self.policy = policy or Policy()
        self.evaluators = list(evaluators or [CounterfactualEvaluator(recall=recall_by_trigger)])
        self.log = SnapshotLog()
        self.lock = threading.RLock()
        self.signals: dict[str, deque[model.Signal]] = {}
        self.effects: effects.EffectState | None = None
        self.monitor: monitor.MonitorState | None = None
        self.last_offset = -1
        self.digests: dict[int, str] = {}  # log position (next offset) -> behavior digest
        # lessons a rejection or a monitor rollback blamed: left out of later candidates, so one
        # bad lesson cannot hold back every good lesson learned after it
        self.blamed: set[str] = set()
        self.failing: dict[str, str] = {}  # scope -> why the gate could not decide it (health)

    # --- inputs -----------------------------------------------------------------------------

    def on_snapshot_event(self, offset: int, event: model.SnapshotEvent) -> None:
        with self.lock:
            self.log = snapshots.apply(self.log, event, offset)
            self.monitor = monitor.on_snapshot(self.monitor, event)
            self.last_offset = max(self.last_offset, offset)
            self.digests[offset + 1] = behavior_digest(self.log)
            view = recall_view(self.log, event.tenant, event.agent)
            self.blamed |= view.excluded  # rejections and monitor rollbacks, from the log
            if event.action in ("activated", "rolled_back", "rejected"):
                self.index.set_active(event.tenant, event.agent, view.active, view.excluded)
            if event.action in ("activated", "rolled_back"):
                log.info("behavior switched", scope=scope_of(event.tenant, event.agent),
                         snapshot=event.snapshot_id, action=event.action, offset=offset)

    def on_signal(self, signal: model.Signal) -> None:
        with self.lock:
            scope = scope_of(signal.tenant, signal.agent)
            self.signals.setdefault(scope, deque(maxlen=EDGE_CASE_SIGNALS)).append(signal)
            if signal.kind != "outcome":
                return
            self.effects, _ = effects.apply(self.effects, signal)
            self.monitor, request = monitor.observe(self.monitor, signal)
        if request is not None:  # its lessons are blamed when the rollback comes back in the log
            log.warning("live regression: rolling back", scope=scope, reason=request.reason)
            self.publish([request.to_event()])

    # --- the gate ---------------------------------------------------------------------------

    def quarantined(self) -> set[str]:
        """Lessons kept out of candidates: harmful by per-lesson effect, or blamed."""
        harmful = effects.quarantined(self.effects) if self.effects else set()
        return harmful | self.blamed

    def gate(self) -> list[model.SnapshotEvent]:
        """Propose, evaluate and decide a candidate for every scope that changed."""
        published: list[model.SnapshotEvent] = []
        for tenant, agent in self.index.scopes():
            try:  # one scope the gate cannot decide must not stop every other scope
                events = self._gate_scope(tenant, agent)
            except Exception as error:
                log.exception("gate failed for a scope", scope=scope_of(tenant, agent))
                self.failing[scope_of(tenant, agent)] = f"{type(error).__name__}: {error}"[:300]
                continue
            self.failing.pop(scope_of(tenant, agent), None)
            if events:
                self.publish(events)
                published += events
        return published

    def _gate_scope(self, tenant: str, agent: str) -> list[model.SnapshotEvent]:
        """One candidate; with `Policy.in_steps`, a change over the limit goes step by step, each
        step evaluated and decided on its own, until one does not activate or none is left."""
        with self.lock:
            active = self.log.active(scope_of(tenant, agent))
            members = {m.experience_id: m.content_hash
                       for m in (self.log.members(active) or [])} if active else {}
        events: list[model.SnapshotEvent] = []
        while True:
            step, after = self._gate_step(tenant, agent, active, members)
            events += step
            if after is None:
                return events
            active, members = after

    def _gate_step(self, tenant: str, agent: str, active: str | None,
                   active_members: dict[str, str]
                   ) -> tuple[list[model.SnapshotEvent], tuple[str, dict[str, str]] | None]:
        """Propose, evaluate and decide one candidate from `active`; the new active state when
        it activated and more changes were deferred to a next step, else None."""
        scope = scope_of(tenant, agent)
        with self.lock:
            lessons = self.index.experiences(tenant, agent)
            quarantined = self.quarantined()
            candidate = snapshots.build_candidate(
                active_members, lessons, quarantined=quarantined,
                max_change=self.policy.max_auto_change if self.policy.in_steps else None)
            if candidate is None:
                return [], None
            sid = candidate.snapshot_id(tenant, agent)
            if self.log.status(sid) is not None:
                return [], None  # proposed before: waits for a human, or was rejected
            signals = list(self.signals.get(scope, ()))
        by_id = {x.experience_id: x for x in lessons}
        new = [by_id[i] for i in [*candidate.added, *candidate.changed] if i in by_id]
        cases = select_edge_cases(signals, homework(new), EDGE_CASES)
        now = int(self.clock() * 1000)
        members = [by_id[m.experience_id] for m in candidate.member_list()
                   if m.experience_id in by_id]
        # the baseline leaves quarantined lessons out too: losing what they "covered" is the point
        current = [by_id[i] for i in active_members if i in by_id and i not in quarantined]
        evaluations = [e.evaluate(members, current, cases) for e in self.evaluators]
        decision = snapshots.decide(self.policy, candidate, evaluations)
        events = [snapshots.proposed_event(tenant, agent, candidate, parent_id=active,
                                           occurred_at=now, verdict=decision.action,
                                           reason=decision.reason)]
        events += [snapshots.evaluated_event(tenant, agent, sid, e, occurred_at=now)
                   for e in evaluations]
        if decision.action == "activate":
            events.append(snapshots.activated_event(tenant, agent, sid, replaced=active,
                                                    occurred_at=now, reason=decision.reason))
        elif decision.action == "reject":
            blamed = self._blame(new, current, cases)
            with self.lock:
                self.blamed |= blamed
            reason = f"{decision.reason}; blamed lesson(s): {', '.join(sorted(blamed))}"
            events.append(snapshots.rejected_event(tenant, agent, sid, actor="policy",
                                                   occurred_at=now, reason=reason,
                                                   edge_cases=decision.failing, blamed=blamed))
        log.info("candidate snapshot", scope=scope, snapshot=sid, decision=decision.action,
                 reason=decision.reason, size=candidate.size, deferred=candidate.deferred)
        if decision.action == "activate" and candidate.deferred:
            return events, (sid, dict(candidate.members))
        return events, None

    def _blame(self, new: list[model.Experience], current: list[model.Experience],
               cases: list[EdgeCase]) -> set[str]:
        """The new lessons that fail the evaluators on their own (all of them if none does)."""
        alone = {
            lesson.experience_id for lesson in new
            if not all(e.evaluate([*current, lesson], current, cases).passed
                       for e in self.evaluators)
        }
        return alone or {lesson.experience_id for lesson in new}
