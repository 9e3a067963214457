"""Adaptation figures from a demo run: how fast each fleet stopped hitting each novel failure.

Pure functions over timed episode results (no Kafka, no stores), shared by the demo's summary and
report and by `bench/drift.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kaizen.demo.fleet import EpisodeResult
from kaizen.demo.world import Drift


@dataclass(frozen=True)
class Timed:
    """An episode result with its wall-clock start (after recall) and end, in seconds."""

    result: EpisodeResult
    started: float
    ended: float


@dataclass(frozen=True)
class Adaptation:
    drift: str
    tool: str
    first_recovery_index: int | None
    in_flight: int  # learning episodes running when the first recovery ended
    repeats_after: int  # learning episodes started after it that still hit the failure
    static_repeats_after: int  # the same count for the static fleet, same episode indices
    avoided_after_s: float | None  # from the first recovery to the last repeat's start

    @property
    def within_target(self) -> bool:
        """The issue's target: no more repeats than episodes already in flight, plus one."""
        return self.first_recovery_index is None or self.repeats_after <= self.in_flight + 1


def _hits(timed: Timed, drift: Drift) -> bool:
    return timed.result.index >= drift.index and any(
        tool == drift.tool for tool, _ in timed.result.failures
    )


def adaptation(drift: Drift, learning: Sequence[Timed], static: Sequence[Timed]) -> Adaptation:
    """Figures for one tool drift (a preference drift has no tool failure: see `success_around`)."""
    recovered = sorted((t for t in learning if _hits(t, drift) and t.result.success),
                       key=lambda t: t.ended)
    if not recovered:
        repeats = sum(1 for t in learning if _hits(t, drift))
        static_repeats = sum(1 for t in static if _hits(t, drift))
        return Adaptation(drift.name, drift.tool, None, 0, repeats, static_repeats, None)
    first = recovered[0]
    in_flight = sum(1 for t in learning if t.started < first.ended < t.ended)
    after = [t for t in learning if t.started >= first.ended and _hits(t, drift)]
    indices = {t.result.index for t in learning if t.started >= first.ended}
    static_after = sum(1 for t in static if t.result.index in indices and _hits(t, drift))
    avoided = max((t.started for t in after), default=first.ended) - first.ended
    return Adaptation(drift.name, drift.tool, first.result.index, in_flight, len(after),
                      static_after, avoided)


def success_around(drift: Drift, timed: Sequence[Timed], window: int = 20
                   ) -> tuple[float | None, float | None]:
    """Success rate of the `window` episodes before the drift and of the `window` after it
    (skipping the first `window // 2`, the time any learner needs)."""
    before = [t.result.success for t in timed if drift.index - window <= t.result.index
              < drift.index]
    start = drift.index + window // 2
    after = [t.result.success for t in timed if start <= t.result.index < start + window]
    return (sum(before) / len(before) if before else None,
            sum(after) / len(after) if after else None)
