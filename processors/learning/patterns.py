"""Cross-session patterns: how often an error signature occurs, per agent, per tumbling window.

One `PatternState` holds the recent windows of ONE agent (the processor keys its table by agent).
`apply_tool_result` folds every tool result of that agent into the state and, for each failure,
emits the updated `Pattern` of its signature and window: counts, distinct sessions /
users / tenants, the failure rate against all calls of the tool, the baseline rate of the previous
windows, and a status (`new`, `spiking` or `steady`) that flags an API that just changed.

Time is event time (`occurred_at`), never the wall clock, and every id is derived from content, so
replaying the log produces exactly the patterns live processing produced. Re-delivered events are
recognised by their event id and change nothing. Recent event ids are kept, not a smaller
per-episode "highest seq seen": the assemble step forwards each tool result as it ARRIVES
(`processors/folding.py`), duplicates and out-of-seq arrivals included (the Recorder's spool can
reorder; only `episodes.apply_event` restores seq order, internally), so a max-seq check would
drop late-but-new results.

Cost and size. Folding one event is O(1): a handful of hashes and dict updates; only moving the
watermark walks the windows, of which at most `history_windows + 1` exist. The state is O(1) in
the number of events, far below the changelog's ~1 MB message limit whatever the traffic (a
property test drives one window with a million results): distinct sessions / users / tenants
are `sketch.Distinct` counts (exact up to 32, then a HyperLogLog of 128 registers), duplicates
are recognised among the last `RECENT_IDS` event ids of the agent (a re-delivery comes back soon
after its original), and a window keeps at most `MAX_WINDOW_TOOLS` tools and
`MAX_WINDOW_SIGNATURES` signatures (failures of further signatures count as calls, and in
`overflow`, but make no pattern: a window with that many distinct errors is noise, not one API
that changed).

Windows and lateness. The watermark is the newest window seen. Events of the watermark window and
of the `late_windows` windows before it are accepted ("open" windows keep the sketches needed to
count distinct values). Older windows are "closed": their sketches are dropped, only the counts
the baseline needs remain, and events that still arrive for them are ignored. At most
`history_windows` windows before the watermark are kept.

This module must stay pure: no Kafka, faust or store imports (an import-linter contract checks it).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kaizen.processors.learning.sketch import Distinct, RecentIds
from kaizen.schemas.ids import uuid5_text
from kaizen.schemas.model import EpisodeEvent, Pattern, ToolResult
from kaizen.schemas.scope import scope_key

#: Namespace of pattern event ids (uuid5), fixed forever: replays must give the same ids.
PATTERN_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "kaizen:patterns:v1")
_pattern_uuid = uuid5_text(PATTERN_NAMESPACE)

#: The baseline a spike is measured against is never taken below this rate, so a signature that
#: was (almost) absent does not count as spiking on its first stray failures.
BASELINE_FLOOR = 0.01

#: Signatures whose first/last-seen times are remembered per agent. Beyond it the signature seen
#: longest ago is forgotten (and would be reported `new` again if it came back).
MAX_SIGNATURES = 1000

#: Bounds of one window (see "Cost and size" above).
MAX_WINDOW_TOOLS = 64
MAX_WINDOW_SIGNATURES = 32

#: Event ids remembered to recognise re-delivered tool results.
RECENT_IDS = 4096

STATE_VERSION = 2

SignatureOf = Callable[[str, str], str]


@dataclass
class SignatureWindow:
    """One signature in one window: failures and, while the window is open, who saw them."""

    tool: str
    failures: int = 0
    episodes: Distinct = field(default_factory=Distinct)
    users: Distinct = field(default_factory=Distinct)
    tenants: Distinct = field(default_factory=Distinct)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "failures": self.failures,
            "episodes": self.episodes.to_json(),
            "users": self.users.to_json(),
            "tenants": self.tenants.to_json(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], version: int = STATE_VERSION) -> SignatureWindow:
        load = Distinct.from_json if version >= 2 else Distinct.of  # v1 kept the values
        return cls(tool=d["tool"], failures=d["failures"], episodes=load(d["episodes"]),
                   users=load(d["users"]), tenants=load(d["tenants"]))


@dataclass
class Window:
    """One tumbling window: calls per tool, failures per signature (sketches while open)."""

    tool_calls: dict[str, int] = field(default_factory=dict)
    signatures: dict[str, SignatureWindow] = field(default_factory=dict)
    closed: bool = False
    overflow: int = 0  # failures of signatures beyond MAX_WINDOW_SIGNATURES (or of extra tools)

    def close(self) -> None:
        """Drop the sketches: a closed window only serves the baseline, which needs counts."""
        self.closed = True
        for sig in self.signatures.values():
            sig.episodes, sig.users, sig.tenants = Distinct(), Distinct(), Distinct()

    def rate(self, signature: str, tool: str) -> float | None:
        """Failure rate of `signature` among calls of `tool`; None if the tool was not called."""
        calls = self.tool_calls.get(tool, 0)
        if calls == 0:
            return None
        sig = self.signatures.get(signature)
        return (sig.failures if sig else 0) / calls

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool_calls": dict(sorted(self.tool_calls.items())),
            "signatures": {k: v.to_dict() for k, v in sorted(self.signatures.items())},
            "closed": self.closed,
            "overflow": self.overflow,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], version: int = STATE_VERSION) -> Window:
        return cls(
            tool_calls=dict(d["tool_calls"]),
            signatures={k: SignatureWindow.from_dict(v, version)
                        for k, v in d["signatures"].items()},
            closed=d["closed"],
            overflow=d.get("overflow", 0),
        )


@dataclass
class PatternState:
    """Recent windows of one agent, when each signature was first and last seen, and the most
    recent event ids (duplicates)."""

    window_ms: int
    watermark: int | None = None
    windows: dict[int, Window] = field(default_factory=dict)
    first_seen: dict[str, int] = field(default_factory=dict)
    last_seen: dict[str, int] = field(default_factory=dict)
    recent: RecentIds = field(default_factory=lambda: RecentIds(RECENT_IDS))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "window_ms": self.window_ms,
            "watermark": self.watermark,
            "windows": {str(k): w.to_dict() for k, w in sorted(self.windows.items())},
            "first_seen": dict(sorted(self.first_seen.items())),
            "last_seen": dict(sorted(self.last_seen.items())),
            "recent": self.recent.to_json(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PatternState:
        version = d.get("version", 1)
        recent = RecentIds(RECENT_IDS)
        if version >= 2:
            recent = RecentIds.from_json(d["recent"], RECENT_IDS)
        else:  # v1 kept the ids per open window
            for _, w in sorted(d["windows"].items(), key=lambda kv: int(kv[0])):
                for event_id in w.get("event_ids", []):
                    recent.add(event_id)
        return cls(
            window_ms=d["window_ms"],
            watermark=d["watermark"],
            windows={int(k): Window.from_dict(w, version) for k, w in d["windows"].items()},
            first_seen=dict(d["first_seen"]),
            last_seen=dict(d["last_seen"]),
            recent=recent,
        )


def apply_tool_result(
    state: PatternState | None,
    event: EpisodeEvent,
    *,
    signature_of: SignatureOf,
    window_seconds: int = 60,
    spike_factor: float = 3.0,
    min_failures: int = 3,
    history_windows: int = 10,
    late_windows: int = 1,
) -> tuple[PatternState, list[Pattern]]:
    """Fold one episode event of an agent; emit the Pattern update if it is a tool failure.

    Every ToolResult counts as a call of its tool (the rate's denominator). Other payloads leave
    the state as it is, so the processor may feed every episode event. The state is updated in
    place and returned: callers keep only the returned reference.

    >>> sig = lambda tool, error: f"{tool}: {error}"
    >>> from kaizen.schemas.model import ToolResult
    >>> ev = EpisodeEvent("e1", 60_000, "acme", "bot", "ep1", 3, ToolResult("c", "search", False,
    ...                   "timeout"), user="u1")
    >>> state, [p] = apply_tool_result(None, ev, signature_of=sig)
    >>> (p.signature, p.failures, p.tool_calls, p.status)
    ('search: timeout', 1, 1, 'new')
    """
    if late_windows > history_windows:
        raise ValueError("late_windows must not exceed history_windows")
    window_ms = window_seconds * 1000
    if state is None:
        state = PatternState(window_ms=window_ms)
    elif state.window_ms != window_ms:
        raise ValueError(
            f"state was built with {state.window_ms} ms windows, not {window_ms}: "
            "a new window length needs a new, separately named table"
        )
    payload = event.payload
    if not isinstance(payload, ToolResult):
        return state, []
    start = event.occurred_at - event.occurred_at % window_ms
    window = _open_window(state, start, history_windows, late_windows)
    if window is None or not state.recent.add(event.event_id):
        return state, []
    tool = payload.tool_name
    if tool not in window.tool_calls and len(window.tool_calls) >= MAX_WINDOW_TOOLS:
        window.overflow += not payload.ok
        return state, []
    window.tool_calls[tool] = window.tool_calls.get(tool, 0) + 1
    if payload.ok:
        return state, []
    signature = signature_of(tool, payload.error or "")
    if signature not in window.signatures and len(window.signatures) >= MAX_WINDOW_SIGNATURES:
        window.overflow += 1
        return state, []
    _count_failure(state, window, event, tool, signature)
    pattern = _pattern(
        state, event, tool, signature, start, spike_factor=spike_factor, min_failures=min_failures
    )
    return state, [pattern]


def _open_window(
    state: PatternState, start: int, history_windows: int, late_windows: int
) -> Window | None:
    """The open window starting at `start` (created if needed); None if it is already closed."""
    if state.watermark is not None and start < state.watermark - late_windows * state.window_ms:
        return None  # too late: its window is closed, a duplicate could no longer be recognised
    if state.watermark is None or start > state.watermark:
        _advance(state, start, history_windows, late_windows)
    return state.windows.setdefault(start, Window())


def _advance(state: PatternState, watermark: int, history_windows: int, late_windows: int) -> None:
    """Move the watermark: close windows past the lateness bound, evict those past the history."""
    state.watermark = watermark
    close_before = watermark - late_windows * state.window_ms
    evict_before = watermark - history_windows * state.window_ms
    for start in sorted(state.windows):
        if start < evict_before:
            del state.windows[start]
        elif start < close_before and not state.windows[start].closed:
            state.windows[start].close()


def _count_failure(
    state: PatternState, window: Window, event: EpisodeEvent, tool: str, signature: str
) -> None:
    sig = window.signatures.setdefault(signature, SignatureWindow(tool=tool))
    sig.failures += 1
    sig.episodes.add(event.episode_id)
    sig.tenants.add(event.tenant)
    if event.user is not None:
        sig.users.add(event.user)
    at = event.occurred_at
    state.first_seen[signature] = min(state.first_seen.get(signature, at), at)
    state.last_seen[signature] = max(state.last_seen.get(signature, at), at)
    _forget_old_signatures(state, keep=signature)


def _forget_old_signatures(state: PatternState, keep: str) -> None:
    """Bound the first/last-seen maps: forget the signature seen longest ago (ties by name)."""
    while len(state.first_seen) > MAX_SIGNATURES:
        oldest = min(
            (s for s in state.last_seen if s != keep), key=lambda s: (state.last_seen[s], s)
        )
        del state.first_seen[oldest], state.last_seen[oldest]


def baseline_rate(state: PatternState, signature: str, tool: str, start: int) -> float:
    """Mean failure rate of `signature` over the kept windows before `start` that called `tool`.

    Windows in which the tool was called but the signature did not occur count as rate 0, so a
    rare signature has a low baseline. 0.0 when there is no such window.
    """
    rates = [
        rate
        for ws, window in state.windows.items()
        if ws < start and (rate := window.rate(signature, tool)) is not None
    ]
    return sum(rates) / len(rates) if rates else 0.0


def _pattern(
    state: PatternState,
    event: EpisodeEvent,
    tool: str,
    signature: str,
    start: int,
    *,
    spike_factor: float,
    min_failures: int,
) -> Pattern:
    window = state.windows[start]
    sig = window.signatures[signature]
    calls = window.tool_calls[tool]
    rate = sig.failures / calls
    baseline = baseline_rate(state, signature, tool, start)
    first_seen = state.first_seen[signature]
    if start <= first_seen < start + state.window_ms:
        status = "new"
    elif sig.failures >= min_failures and rate >= spike_factor * max(baseline, BASELINE_FLOOR):
        status = "spiking"
    else:
        status = "steady"
    key = f"{scope_key(event.agent)}/{signature}/{start}/{sig.failures}"
    return Pattern(
        event_id=_pattern_uuid(key),
        occurred_at=event.occurred_at,
        tenant="*",
        agent=event.agent,
        tool=tool,
        signature=signature,
        window_start=start,
        window_seconds=state.window_ms // 1000,
        failures=sig.failures,
        sessions=sig.episodes.count(),
        users=sig.users.count(),
        tenants=sig.tenants.count(),
        tool_calls=calls,
        rate=rate,
        baseline_rate=baseline,
        first_seen=first_seen,
        last_seen=state.last_seen[signature],
        status=status,
    )
