"""Evaluating a candidate snapshot against historical edge cases before it may activate.

An *edge case* is a past episode with learning value: a failure (and its error signature), a
recovery (a failure and the changed call that worked), a corrected episode (a user correction) or a
plain success. `select_edge_cases` picks them from signals, leaving out the episodes the new
lessons were learned from (`lesson_episodes`), so a lesson is never graded on its own homework.

Evaluators are pluggable (the `Evaluator` protocol); two are built in:

* `CounterfactualEvaluator` -- offline, on recorded calls only. *Coverage*: the share of known
  failures (failure and recovery cases with a signature) for which the lessons recalled for the
  case include one triggered by exactly that signature. *Interference*: cases with a known call
  that worked (success cases with a tool; recovery cases with their patch, whose patched call is
  the one that worked) where a recalled lesson's patch would CHANGE that call. Only interference
  the active snapshot does not already cause counts against the candidate (otherwise one old
  disturbing lesson would block every later candidate); the total is reported too.
  It fails when the new interference exceeds `max_interference` (default 0) or coverage drops
  below the active snapshot's -- stricter: when it loses ANY known failure the active snapshot
  covered, even if it gains another (a traded case is still a regression for the policy). Lost
  cases, and disturbed cases beyond the tolerance, are listed as failing (the policy rejects
  any failing case, so tolerated interference must not be listed).
  A lesson removed on purpose (quarantined as harmful) would count as lost coverage: callers pass
  the active members WITHOUT quarantined lessons as the baseline.
* `ReplayEvaluator` -- runs each case's recorded task through a user-supplied agent callable once
  with the candidate's lessons and once with the active ones. It fails when the candidate
  succeeds on fewer cases or loses any case the active one won.

Signals do not carry the calls of successful episodes (only failures and recoveries carry
arguments), so success cases from `select_edge_cases` have no tool and are graded only by replay.
Corrected cases are likewise graded only by replay: a correction names no tool or signature.

Pure: no clock, no randomness, no Kafka or store imports. Evaluators call the injected callables
and nothing else; if those are deterministic, so is the evaluation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from kaizen.processors.learning.patches import apply_patch as default_apply_patch
from kaizen.schemas.model import Experience, Signal, ToolCallPatch

CaseKind = Literal["failure", "recovery", "success", "corrected"]
#: Order kinds take turns in when `select_edge_cases` must cut to `limit`: failures first.
KIND_ORDER: tuple[CaseKind, ...] = ("failure", "recovery", "corrected", "success")

Args = dict[str, Any]
RecallFn = Callable[["EdgeCase", list[Experience]], list[Experience]]
PatchFn = Callable[[ToolCallPatch, str, Args], tuple[str, Args]]
AgentFn = Callable[["EdgeCase", list[Experience]], bool]


@dataclass(frozen=True, slots=True)
class EdgeCase:
    """One past episode to grade a candidate on.

    `arguments` are the recorded call's (for failure and recovery cases: the call that FAILED);
    `patch` is set on recovery cases: applied to `arguments` it gives the call that worked.
    `outcome` is the episode's recorded outcome when its outcome signal was seen, else None.
    """

    episode_id: str
    task: str
    tool: str | None
    arguments: Args
    signature: str | None
    outcome: str | None
    kind: CaseKind
    patch: ToolCallPatch | None = None


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One evaluator's verdict on a candidate; maps onto an `evaluated` snapshot event."""

    evaluator: str
    verdict: Literal["pass", "fail"]
    scores: dict[str, float] = field(default_factory=dict)
    edge_cases: list[str] = field(default_factory=list)  # episode ids used
    failing: list[str] = field(default_factory=list)  # episode ids that regressed
    reason: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"


class Evaluator(Protocol):
    """Grades candidate lessons against the active ones on a set of edge cases."""

    @property
    def name(self) -> str:
        """Stable evaluator name: the `evaluator` of its snapshot events and policy entries."""
        ...

    def evaluate(
        self,
        candidate_members: list[Experience],
        active_members: list[Experience],
        cases: list[EdgeCase],
    ) -> Evaluation: ...


# --- edge case selection --------------------------------------------------------------------


def homework(lessons: Iterable[Experience]) -> set[str]:
    """The episodes to leave out of grading: those the lessons WITHOUT a patch were learned from.
    A patch's source episodes stay in, for interference only (a lesson's patch is never held
    against its own source, `CounterfactualEvaluator._disturbers`): left out, a harmful patch
    travelling in one candidate with a changed lesson of the same tool was graded on none of
    that tool's recoveries, and passed."""
    return lesson_episodes(x for x in lessons if x.patch is None)


def lesson_episodes(lessons: Iterable[Experience]) -> set[str]:
    """Episodes the given lessons were learned from (their evidence), to exclude from grading.

    An experience version carries only part of its lineage (see curation); pass every version
    you have of the added / changed lessons for the full set.
    """
    return {e.episode_id for lesson in lessons for e in lesson.evidence}


def select_edge_cases(
    signals: Iterable[Signal], exclude_episodes: set[str], limit: int
) -> list[EdgeCase]:
    """Up to `limit` edge cases from signals, the same list whatever order the signals came in.

    One case per (episode, signature) of a failure -- a recovery if that failure was recovered
    in the episode -- one per corrected episode, and one per successful episode with neither.
    When cutting to `limit`, the kinds take turns (KIND_ORDER), most recent first within a kind,
    so a flood of successes never crowds out the failures.
    """
    unique = {s.event_id: s for s in signals if s.episode_id not in exclude_episodes}
    ordered = sorted(unique.values(), key=lambda s: (s.occurred_at, s.event_id))
    outcomes = {s.episode_id: s.outcome for s in ordered if s.kind == "outcome"}
    cases: dict[tuple[str, str], tuple[int, EdgeCase]] = {}
    for s in ordered:
        case = _case_of(s, outcomes.get(s.episode_id))
        if case is None:
            continue
        key = (s.episode_id, case.kind if case.signature is None else case.signature)
        if case.kind == "failure" and key in cases:
            continue  # the first failure of a signature stands; a recovery replaces it
        cases[key] = (s.occurred_at, case)
    busy = {ep for (ep, _sig), (_t, c) in cases.items() if c.kind != "success"}
    kept = [(t, c) for (t, c) in cases.values() if c.kind != "success" or c.episode_id not in busy]
    return _take_turns(kept, limit)


def _case_of(signal: Signal, outcome: str | None) -> EdgeCase | None:
    args = _arguments(signal.arguments_json)
    if signal.kind in ("failure", "recovery") and signal.signature:
        kind: CaseKind = "failure" if signal.kind == "failure" else "recovery"
        return EdgeCase(signal.episode_id, signal.task, signal.tool, args, signal.signature,
                        outcome, kind, signal.patch if kind == "recovery" else None)
    if signal.kind == "correction" and (signal.correction or "").strip():
        return EdgeCase(signal.episode_id, signal.task, None, {}, None, outcome, "corrected")
    if signal.kind == "outcome" and signal.outcome == "success":
        return EdgeCase(signal.episode_id, signal.task, None, {}, None, "success", "success")
    return None


def _take_turns(cases: list[tuple[int, EdgeCase]], limit: int) -> list[EdgeCase]:
    by_kind: dict[str, list[EdgeCase]] = {k: [] for k in KIND_ORDER}
    for _t, case in sorted(cases, key=lambda tc: (-tc[0], tc[1].episode_id, tc[1].signature or "")):
        by_kind[case.kind].append(case)
    chosen: list[EdgeCase] = []
    depth = 0
    while len(chosen) < limit and any(depth < len(v) for v in by_kind.values()):
        chosen.extend(by_kind[k][depth] for k in KIND_ORDER if depth < len(by_kind[k]))
        depth += 1
    return chosen[: max(limit, 0)]


def _arguments(arguments_json: str | None) -> Args:
    if not arguments_json:
        return {}
    try:
        parsed = json.loads(arguments_json)
    except ValueError:
        return {"_raw": arguments_json}
    return parsed if isinstance(parsed, dict) else {"_value": parsed}


# --- built-in evaluators --------------------------------------------------------------------


def recall_by_trigger(case: EdgeCase, lessons: list[Experience]) -> list[Experience]:
    """A simple deterministic recall: lessons triggered by the case's signature or about its tool.

    Deliberately generous for interference checks (an agent about to call a tool may be shown any
    lesson about it); plug in the real recall for a closer counterfactual.
    """
    return [
        x for x in lessons
        if (case.signature and x.trigger.signature == case.signature)
        or (case.tool and (x.tool == case.tool or (x.patch and x.patch.tool == case.tool)))
    ]


@dataclass(frozen=True)
class CounterfactualEvaluator:
    """Coverage of known failures and interference with calls that worked (module docstring)."""

    recall: RecallFn
    apply_patch: PatchFn = default_apply_patch
    max_interference: int = 0
    name: str = "counterfactual"

    def evaluate(
        self,
        candidate_members: list[Experience],
        active_members: list[Experience],
        cases: list[EdgeCase],
    ) -> Evaluation:
        failures = [c for c in cases if c.kind in ("failure", "recovery") and c.signature]
        new_cov = [self._covers(c, candidate_members) for c in failures]
        old_cov = [self._covers(c, active_members) for c in failures]
        lost = {c.episode_id for c, n, o in zip(failures, new_cov, old_cov, strict=True) if o > n}
        total, disturbed_new = self._interference(candidate_members, active_members, cases)
        coverage = _share(sum(new_cov), len(failures))
        active_coverage = _share(sum(old_cov), len(failures))
        reasons = []
        too_many = len(disturbed_new) > self.max_interference
        if too_many:
            reasons.append(f"changes {len(disturbed_new)} call(s) that worked")
        if lost:  # implied by a coverage drop, but a traded case is a regression too
            reasons.append(f"no longer covers {len(lost)} known failure(s) "
                           f"(coverage {coverage:.3f}, active {active_coverage:.3f})")
        scores = {
            "coverage": coverage, "active_coverage": active_coverage,
            "failures": float(len(failures)), "interference": float(len(disturbed_new)),
            "interference_total": float(len(total)), "lost": float(len(lost)),
        }
        return Evaluation(
            self.name, "fail" if reasons else "pass", scores, _episodes(cases),
            sorted(lost | (disturbed_new if too_many else set())), "; ".join(reasons),
        )

    def _covers(self, case: EdgeCase, lessons: list[Experience]) -> bool:
        return any(x.trigger.signature == case.signature for x in self.recall(case, lessons))

    def _interference(
        self, candidate: list[Experience], active: list[Experience], cases: list[EdgeCase]
    ) -> tuple[set[str], set[str]]:
        total: set[str] = set()
        new: set[str] = set()
        for case in cases:
            call = self._working_call(case)
            if call is None:
                continue
            by_candidate = self._disturbers(case, call, candidate)
            if by_candidate:
                total.add(case.episode_id)
            if by_candidate - self._disturbers(case, call, active):
                new.add(case.episode_id)
        return total, new

    def _working_call(self, case: EdgeCase) -> tuple[str, Args] | None:
        if case.tool is None:
            return None
        if case.kind == "success":
            return case.tool, dict(case.arguments)
        if case.kind == "recovery" and case.patch is not None:
            return self._patched(case.patch, case.tool, case.arguments)
        return None

    def _disturbers(
        self, case: EdgeCase, call: tuple[str, Args], lessons: list[Experience]
    ) -> set[tuple[str, str]]:
        """Lessons (id, guidance+patch identity) whose patch would change the call that worked."""
        out: set[tuple[str, str]] = set()
        for lesson in self.recall(case, lessons):
            if lesson.patch is None or case.episode_id in lesson_episodes([lesson]):
                continue  # a lesson's patch on the very call it was learned from is its source
            patched = self._patched(lesson.patch, call[0], call[1])
            if patched is not None and patched != call:
                out.add((lesson.experience_id, repr(lesson.patch)))
        return out

    def _patched(self, patch: ToolCallPatch, tool: str, args: Args) -> tuple[str, Args] | None:
        try:
            return self.apply_patch(patch, tool, dict(args))
        except ValueError:  # a patch the runtime cannot apply changes nothing
            return None


@dataclass(frozen=True)
class ReplayEvaluator:
    """Replays recorded tasks through `agent(case, lessons) -> succeeded`, candidate vs active."""

    agent: AgentFn
    name: str = "replay"

    def evaluate(
        self,
        candidate_members: list[Experience],
        active_members: list[Experience],
        cases: list[EdgeCase],
    ) -> Evaluation:
        new_wins = {c.episode_id for c in cases if self.agent(c, list(candidate_members))}
        old_wins = {c.episode_id for c in cases if self.agent(c, list(active_members))}
        lost, gained = sorted(old_wins - new_wins), sorted(new_wins - old_wins)
        reasons = []
        if len(new_wins) < len(old_wins):
            reasons.append(f"succeeds on {len(new_wins)} case(s), active on {len(old_wins)}")
        if lost:
            reasons.append(f"loses {len(lost)} case(s) the active snapshot won")
        scores = {
            "cases": float(len(cases)), "candidate_successes": float(len(new_wins)),
            "active_successes": float(len(old_wins)), "lost": float(len(lost)),
            "gained": float(len(gained)),
        }
        verdict: Literal["pass", "fail"] = "fail" if reasons else "pass"
        return Evaluation(self.name, verdict, scores, _episodes(cases), lost, "; ".join(reasons))


# --- agreement ------------------------------------------------------------------------------


def latest_by_evaluator(evaluations: Sequence[Evaluation]) -> dict[str, Evaluation]:
    """The last evaluation per evaluator (a re-run replaces the earlier verdict)."""
    return {e.evaluator: e for e in evaluations}


def quorum(evaluations: Sequence[Evaluation], required: Iterable[str], k: int) -> bool:
    """True when every required evaluator passed and at least `k` evaluators passed in all."""
    latest = latest_by_evaluator(evaluations)
    if any(name not in latest or not latest[name].passed for name in required):
        return False
    return sum(e.passed for e in latest.values()) >= k


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 1.0


def _episodes(cases: Iterable[EdgeCase]) -> list[str]:
    return sorted({c.episode_id for c in cases})
