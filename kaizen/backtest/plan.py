"""Which episodes are in flight together, and what the pipeline has seen before each recall.

Episodes are taken in start order, `window` at a time. Before a window's recalls, the pipeline is
fed every earlier episode that had ENDED by the window's first start (in end order), and nothing
else: an episode still running then is fed at a later window, once it has ended. So a recall never
sees a lesson from an episode that had not finished when the agent started, as in a live fleet;
what it may miss is what episodes of its own window taught (the price of batching, bounded by
`window`). Logs without times have their episodes one after the other, so each window sees
everything before it. Pure: indices in, steps out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """An episode's place on the time line (`index`: its position in start order)."""

    index: int
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class Step:
    """Feed these episodes (and wait for the pipeline), then recall for those."""

    feed: tuple[int, ...]
    recall: tuple[int, ...]


def plan(spans: Sequence[Span], window: int) -> list[Step]:
    """The backtest's steps; the last one feeds what is left and recalls nothing."""
    if window < 1:
        raise ValueError("window must be >= 1")
    ordered = sorted(spans, key=lambda s: (s.start_ms, s.index))
    pending: list[Span] = []
    steps = []
    for first in range(0, len(ordered), window):
        chunk = ordered[first : first + window]
        start = chunk[0].start_ms
        ready = sorted((s for s in pending if s.end_ms <= start),
                       key=lambda s: (s.end_ms, s.index))
        pending = [s for s in pending if s.end_ms > start]
        steps.append(Step(tuple(s.index for s in ready), tuple(s.index for s in chunk)))
        pending += chunk
    rest = sorted(pending, key=lambda s: (s.end_ms, s.index))
    steps.append(Step(tuple(s.index for s in rest), ()))
    return steps
