"""Live regression monitor: does a newly activated snapshot do worse than its parent?

Per scope, the monitor counts episode outcomes (outcome signals; success = 1, failure or abandoned
= 0) stamped with the newly activated snapshot and with its parent. The parent's baseline is the
last PARENT_WINDOW outcomes stamped with it, most of them gathered while it was still active.

The test: Bayesian beta-binomial. With uniform Beta(1, 1) priors, the success rates have
posteriors Beta(1 + successes, 1 + failures); the monitor requests a rollback to the parent once

    P(p_new < p_parent - MARGIN | data) > THRESHOLD     (with >= MIN_EPISODES on each side)

Why this and not a repeated fixed-sample test: the monitor looks after EVERY episode. Re-running a
z-test or chi-square test at each look inflates its false-alarm rate far above the nominal 5%
(optional stopping). A posterior probability means the same thing whenever one stops to look
(the likelihood principle), and it handles unequal, unplanned sample sizes on the two sides,
which Wald's SPRT for two proportions (built on paired observations) does not. Its frequentist
false-alarm rate under continuous looking is still above 1 - THRESHOLD; MARGIN (only a drop of
more than 5 points counts) and MIN_EPISODES (no verdict on a handful of episodes) keep it low,
and the worst outcome of a false alarm is a rollback a human can undo.

The probability is computed on a fixed grid of GRID_POINTS with NumPy (no sampling; ~0.2 ms per
outcome), so it is exact enough (~1e-3) and deterministic: the same outcomes give the same
decision, live or replayed.

After WATCH_LIMIT episodes of the new snapshot without a regression, the monitor accepts it and
stops watching (a stale baseline would otherwise be compared forever). A rollback is requested
once; the `rolled_back` event (fed back through `on_snapshot`) ends the watch.
Duplicated signals (same event id, within the last SEEN_LIMIT) change nothing.
Pure: no clock, no randomness, no Kafka or store imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from kaizen.processors.learning.snapshots import rolled_back_event
from kaizen.schemas.model import Signal, SnapshotEvent

MIN_EPISODES = 30  # per side, before any verdict
MARGIN = 0.05  # a drop in success rate smaller than this is not a regression
THRESHOLD = 0.95  # posterior probability of a regression that triggers a rollback
PARENT_WINDOW = 500  # most recent parent outcomes kept as the baseline
WATCH_LIMIT = 1000  # new-snapshot episodes after which, without a regression, it is accepted
SEEN_LIMIT = 4096  # signal ids remembered for duplicate detection
GRID_POINTS = 2001  # grid on [0, 1] for the posterior integral
STATE_VERSION = 1


@dataclass
class MonitorState:
    """One scope: the snapshot under watch, its parent, and their recent outcomes (1 / 0)."""

    active: str | None = None  # the active snapshot of the scope
    watching: str | None = None  # the newly activated snapshot under test, if any
    parent: str | None = None  # the one it replaced
    outcomes: dict[str, list[int]] = field(default_factory=dict)  # snapshot id -> outcomes
    seen: list[str] = field(default_factory=list)
    requested: bool = False  # a rollback was requested for `watching`

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION, "active": self.active, "watching": self.watching,
            "parent": self.parent, "outcomes": {k: list(v) for k, v in self.outcomes.items()},
            "seen": list(self.seen), "requested": self.requested,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MonitorState:
        if d.get("version") != STATE_VERSION:
            raise ValueError(f"monitor state version {d.get('version')!r} != {STATE_VERSION}")
        return cls(d["active"], d["watching"], d["parent"],
                   {k: list(v) for k, v in d["outcomes"].items()}, list(d["seen"]), d["requested"])


@dataclass(frozen=True)
class RollbackRequest:
    """The monitor's decision: roll `snapshot_id` back to `to_snapshot`, with the evidence."""

    tenant: str
    agent: str
    snapshot_id: str
    to_snapshot: str
    occurred_at: int  # event time of the outcome that tipped the balance
    scores: dict[str, float]
    reason: str

    def to_event(self) -> SnapshotEvent:
        return rolled_back_event(self.tenant, self.agent, self.to_snapshot,
                                 replaced=self.snapshot_id, occurred_at=self.occurred_at,
                                 actor="monitor", reason=self.reason, scores=self.scores)


def on_snapshot(state: MonitorState | None, event: SnapshotEvent) -> MonitorState:
    """Follow the scope's snapshot log: an activation with a parent starts a watch."""
    state = state if state is not None else MonitorState()
    if event.action not in ("activated", "rolled_back") or event.snapshot_id == state.active:
        return state
    state.active = event.snapshot_id
    state.requested = False
    if event.action == "activated" and event.parent_id is not None:
        state.watching, state.parent = event.snapshot_id, event.parent_id
        state.outcomes[event.snapshot_id] = []  # a re-activation is tested afresh
    else:  # a rollback (or a first activation): nothing to compare, the active one is baseline
        state.watching = state.parent = None
    keep = {s for s in (state.active, state.parent) if s is not None}
    state.outcomes = {k: v for k, v in state.outcomes.items() if k in keep}
    return state


def observe(
    state: MonitorState | None, signal: Signal
) -> tuple[MonitorState, RollbackRequest | None]:
    """Count one outcome signal; a RollbackRequest when the new snapshot regressed."""
    state = state if state is not None else MonitorState()
    sid = signal.snapshot_id
    if signal.kind != "outcome" or sid is None or signal.event_id in state.seen:
        return state, None
    if sid not in (state.active, state.parent):
        return state, None  # a straggler of an older snapshot
    state.seen = [*state.seen, signal.event_id][-SEEN_LIMIT:]
    outcomes = state.outcomes.setdefault(sid, [])
    outcomes.append(1 if signal.outcome == "success" else 0)
    if sid != state.watching:
        del outcomes[:-PARENT_WINDOW]
    return state, _check(state, signal)


def _check(state: MonitorState, signal: Signal) -> RollbackRequest | None:
    if state.watching is None or state.parent is None or state.requested:
        return None
    new, old = state.outcomes.get(state.watching, []), state.outcomes.get(state.parent, [])
    if len(new) < MIN_EPISODES or len(old) < MIN_EPISODES:
        return None
    p = prob_worse(sum(new), len(new), sum(old), len(old), MARGIN)
    if p <= THRESHOLD:
        if len(new) >= WATCH_LIMIT:  # enough evidence it is no worse: accept it
            state.watching = state.parent = None
            state.outcomes = {k: v for k, v in state.outcomes.items() if k == state.active}
        return None
    state.requested = True
    scores = _evidence(new, old, p)
    reason = (f"success rate {scores['new_rate']:.3f} vs parent {scores['parent_rate']:.3f} "
              f"over {len(new)}/{len(old)} episodes; P(drop > {MARGIN}) = {p:.3f}")
    return RollbackRequest(signal.tenant, signal.agent, state.watching, state.parent,
                           signal.occurred_at, scores, reason)


def _evidence(new: Sequence[int], old: Sequence[int], p: float) -> dict[str, float]:
    return {
        "new_episodes": float(len(new)), "new_successes": float(sum(new)),
        "new_rate": sum(new) / len(new), "parent_episodes": float(len(old)),
        "parent_successes": float(sum(old)), "parent_rate": sum(old) / len(old),
        "prob_regression": p, "margin": MARGIN, "threshold": THRESHOLD,
    }


def prob_worse(s_new: int, n_new: int, s_old: int, n_old: int, margin: float = 0.0) -> float:
    """P(p_new < p_old - margin) under independent Beta(1 + s, 1 + n - s) posteriors.

    = integral of f_old(y) * F_new(y - margin) dy, on a uniform grid (trapezoid rule).
    """
    step = 1.0 / (GRID_POINTS - 1)
    f_new, f_old = _density(s_new, n_new), _density(s_old, n_old)
    cdf_new = np.concatenate(([0.0], np.cumsum((f_new[1:] + f_new[:-1]) * step / 2)))
    shift = round(margin / step)
    y = np.arange(max(shift, 0), GRID_POINTS)
    weights = np.where((y == 0) | (y == GRID_POINTS - 1), 0.5, 1.0)
    total = float(np.sum(f_old[y] * cdf_new[y - shift] * weights)) * step
    return min(max(total, 0.0), 1.0)


def _density(successes: int, n: int) -> npt.NDArray[np.float64]:
    """Beta(1 + s, 1 + n - s) density on the grid, normalised to integrate to 1 on it."""
    a, b = 1 + successes, 1 + n - successes
    x = _GRID[1:-1]
    inner = (a - 1) * np.log(x) + (b - 1) * np.log1p(-x)
    ends = [0.0 if a == 1 else -np.inf, 0.0 if b == 1 else -np.inf]  # log kernel at 0 and 1
    logs = np.concatenate(([ends[0]], inner, [ends[1]]))
    values = np.exp(logs - logs.max())
    area = (values.sum() - (values[0] + values[-1]) / 2) / (GRID_POINTS - 1)
    return values / area


_GRID = np.linspace(0.0, 1.0, GRID_POINTS)
