"""Spans buffered per trace until their episode is complete. Pure: the clock is injected.

Exporters send a trace's spans as they end, in batches, so children usually arrive before their
parent and one trace can span several requests (or arrive out of order across them). A trace's
episode is closed when its root agent span arrives, or when no span of it arrived for
`idle_seconds` by the injected clock (`expire`, called by the receiver's ticker). Everything is
bounded: open traces (the oldest is closed early), spans per trace, and the memory of closed
traces (a late span of a closed trace is rejected with that reason, never recorded twice).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kaizen.integrations.otlp_mapping import (
    EpisodePlan,
    Rejected,
    Span,
    classify,
    conversation_id,
    is_root_agent,
    plan_episode,
)


@dataclass
class _Open:
    spans: list[Span] = field(default_factory=list)
    span_ids: set[str] = field(default_factory=set)
    header_tenant: str | None = None
    last_seen: float = 0.0
    root_seen: bool = False


@dataclass
class Added:
    """What one `add` produced: finished episodes and the spans rejected, with reasons."""

    plans: list[EpisodePlan] = field(default_factory=list)
    rejected: list[tuple[Span, str]] = field(default_factory=list)
    accepted: int = 0


class TraceBuffer:
    """Open traces by trace id; not thread-safe (the receiver holds a lock around it)."""

    def __init__(self, clock: Callable[[], float], idle_seconds: float = 30.0, *,
                 max_open: int = 10_000, max_spans: int = 20_000,
                 closed_memory: int = 100_000) -> None:
        self.clock, self.idle_seconds = clock, idle_seconds
        self.max_open, self.max_spans, self.closed_memory = max_open, max_spans, closed_memory
        self._open: OrderedDict[str, _Open] = OrderedDict()  # least recently touched first
        self._closed: OrderedDict[str, None] = OrderedDict()
        self._conversations: OrderedDict[str, str] = OrderedDict()  # conversation -> trace id

    def __len__(self) -> int:
        return len(self._open)

    def add(self, spans: Sequence[Span], header_tenant: str | None = None) -> Added:
        added, now, roots = Added(), self.clock(), []
        for span in spans:
            reason = self._admit(span, header_tenant, now)
            if reason is not None:
                added.rejected.append((span, reason))
                continue
            added.accepted += 1
            if self._open[span.trace_id].root_seen:
                roots.append(span.trace_id)
        for trace_id in dict.fromkeys(roots):
            if trace_id in self._open:
                added.plans.append(self._close(trace_id, closed=True))
        while len(self._open) > self.max_open:
            added.plans.append(self._close(next(iter(self._open)), closed=False))
        return added

    def expire(self) -> list[EpisodePlan]:
        """Close the traces idle for `idle_seconds` (their root agent span never came)."""
        deadline = self.clock() - self.idle_seconds
        idle = [t for t, o in self._open.items() if o.last_seen <= deadline]
        return [self._close(trace_id, closed=False) for trace_id in idle]

    def drain(self) -> list[EpisodePlan]:
        """Close everything still open (the receiver is stopping)."""
        return [self._close(trace_id, closed=False) for trace_id in list(self._open)]

    def _admit(self, span: Span, header_tenant: str | None, now: float) -> str | None:
        try:
            role = classify(span)
        except Rejected as error:
            return str(error)
        if span.trace_id in self._closed:
            return "late span: the episode of its trace was already recorded"
        entry = self._open.get(span.trace_id)
        if entry is None:
            entry = self._open[span.trace_id] = _Open(header_tenant=header_tenant)
        if span.span_id in entry.span_ids:
            return "duplicate span id within its trace"
        if len(entry.spans) >= self.max_spans:
            return f"trace over {self.max_spans} spans"
        entry.spans.append(span)
        entry.span_ids.add(span.span_id)
        entry.last_seen = now
        entry.root_seen = entry.root_seen or is_root_agent(span, role)
        self._open.move_to_end(span.trace_id)
        return None

    def _close(self, trace_id: str, closed: bool) -> EpisodePlan:
        entry = self._open.pop(trace_id)
        self._remember(self._closed, trace_id, None)
        return plan_episode(self._episode_id(trace_id, entry.spans), entry.spans,
                            entry.header_tenant, closed)

    def _episode_id(self, trace_id: str, spans: Sequence[Span]) -> str:
        """The conversation id, unless another trace already used it; else the trace id."""
        conversation = conversation_id(spans)
        if not conversation:
            return trace_id
        if self._conversations.get(conversation, trace_id) != trace_id:
            return f"{conversation}#{trace_id[:16]}"
        self._remember(self._conversations, conversation, trace_id)
        return conversation

    def _remember(self, memory: OrderedDict[str, str] | OrderedDict[str, None], key: str,
                  value: str | None) -> None:
        memory[key] = value  # type: ignore[assignment]
        while len(memory) > self.closed_memory:
            memory.popitem(last=False)
