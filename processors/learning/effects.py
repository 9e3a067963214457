"""Per-lesson effect: how often the episodes a lesson was recalled in succeeded or failed.

Folds outcome signals (they carry `recalled_ids`, the lessons injected into the episode): a
`success` counts as helpful for every recalled lesson, a `failure` as harmful. `abandoned` counts
as neither: an idle episode says more about the agent process than about a lesson.

This is association, not causation: a lesson recalled for hard tasks collects failures it did not
cause. So a lesson is only quarantined (left out of the next candidate snapshot) after
`min_episodes` recalls and with a harmful share ABOVE `harm_ratio`; the candidate still goes
through evaluation and the policy like any other change, and a human can see why in the counts.

Keyed per scope (tenant/agent) by the processor. Duplicated signals (same event id, within the
last SEEN_LIMIT) change nothing. Pure: no clock, no randomness, no Kafka or store imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kaizen.schemas.model import Signal

HELPFUL_OUTCOMES = frozenset({"success"})
HARMFUL_OUTCOMES = frozenset({"failure"})
SEEN_LIMIT = 10_000  # signal ids remembered for duplicate detection
STATE_VERSION = 1


@dataclass
class EffectState:
    helpful: dict[str, int] = field(default_factory=dict)  # experience id -> episodes
    harmful: dict[str, int] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)  # most recent signal ids, oldest first

    def to_dict(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "helpful": dict(self.helpful),
                "harmful": dict(self.harmful), "seen": list(self.seen)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EffectState:
        if d.get("version") != STATE_VERSION:
            raise ValueError(f"effect state version {d.get('version')!r} != {STATE_VERSION}")
        return cls(dict(d["helpful"]), dict(d["harmful"]), list(d["seen"]))


def apply(state: EffectState | None, signal: Signal) -> tuple[EffectState, list[str]]:
    """Count one outcome signal; returns the experience ids whose counts changed."""
    state = state if state is not None else EffectState()
    if signal.kind != "outcome" or signal.event_id in state.seen:
        return state, []
    state.seen.append(signal.event_id)
    del state.seen[:-SEEN_LIMIT]
    if signal.outcome in HELPFUL_OUTCOMES:
        counts = state.helpful
    elif signal.outcome in HARMFUL_OUTCOMES:
        counts = state.harmful
    else:
        return state, []
    recalled = sorted(set(signal.recalled_ids))  # one episode counts once per lesson
    for xid in recalled:
        counts[xid] = counts.get(xid, 0) + 1
    return state, recalled


def quarantined(state: EffectState, *, min_episodes: int = 5, harm_ratio: float = 0.5) -> set[str]:
    """Lessons recalled in >= min_episodes counted episodes, harmful in more than harm_ratio."""
    out = set()
    for xid in state.helpful.keys() | state.harmful.keys():
        helpful, harmful = state.helpful.get(xid, 0), state.harmful.get(xid, 0)
        total = helpful + harmful
        if total >= min_episodes and harmful / total > harm_ratio:
            out.add(xid)
    return out
