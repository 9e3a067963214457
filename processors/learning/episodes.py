"""Episode assembly and signal extraction: a fold over the events of one episode.

The processor keys state by episode id and calls, for every event read from `kaizen.episodes`:

    state, signals = apply_event(state, PositionedEvent(event, partition, offset))

and, with the stream's watermark (the largest `occurred_at` it has seen), now and then:

    state, signals = close_if_idle(state, watermark, idle_ms)
    if is_finished(state, watermark, linger_ms): delete the state

Delivery is at-least-once and the Recorder's spool can reorder, so the fold puts events back in
`seq` order itself: a duplicate (a known event id, or a seq already processed or waiting) changes
nothing; an early event waits in a bounded buffer; a gap that outlives `reorder_window` waiting
events is given up on (its events, should they come, count as already processed).

Signals are emitted as soon as they are complete, except that failures and recoveries are HELD
until the episode ends (or goes idle) and then go out, in order, stamped with its `outcome`,
just before the outcome signal: curation must know whether the evidence comes from an episode
that failed. At most HELD_LIMIT wait; older ones go out early without an outcome.
  * failure  -- a ToolResult with ok=False, with the arguments of the call it answers;
  * recovery -- a later successful call of the same tool (or, when the very next call after the
    failure used another tool that serves the same purpose -- `evidence.same_purpose`: same
    verb and a shared object word, plus a shared argument -- and worked, that substitute) after
    an unrecovered failure. A value the working call set that the agent took from the task
    text or from an earlier successful result is marked in the patch (`from_task`,
    `from_result:<tool>`): instance data, not a constant. One
    recovery per failure, with the patch from `patches.diff_arguments`. When the same call simply
    worked on a later try (a transient error) the recovery has `patch=None`: that is the marker
    of a *retry lesson* ("retry, the error is transient"), see `is_retry_recovery`;
  * correction / rating -- Feedback, also after the episode ended (users rate later);
  * outcome  -- EpisodeEnded, or `abandoned` when the episode went idle.

Signal ids are uuid5 (SIGNAL_NAMESPACE) over `"{tenant/agent/episode_id}/{kind}/{seq of the
source event}"` (for a recovery the seq of the failure it recovers, since one success can
recover several failures), so re-extraction after a crash or a replay yields the same ids, which
the sinks' idempotent writes absorb; the scope is in it because episode ids are the agents' own
(two tenants may both have an "ep-1"). Pure: no clock, no randomness, no Kafka or store imports.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import operator
import uuid
from dataclasses import dataclass, field
from typing import Any

from kaizen.processors.learning.evidence import same_purpose, value_source
from kaizen.processors.learning.patches import diff_arguments, patch_is_empty
from kaizen.processors.learning.signatures import error_signature
from kaizen.schemas import model
from kaizen.schemas.ids import uuid5_text
from kaizen.schemas.model import ArgumentChange, EpisodeEvent, Signal, ToolCallPatch
from kaizen.schemas.records import from_record, to_record
from kaizen.schemas.scope import scope_key

STATE_VERSION = 2
HELD_LIMIT = 64  # signals held for the outcome; beyond, the oldest go out without one
RESULT_LIMIT = 16  # earlier successful results kept to tell where a fixed value came from
RESULT_CHARS = 4096  # of each result's output
SEEN_LIMIT = 256  # event ids remembered for duplicate detection (seq catches older ones)
OPEN_CALL_LIMIT = 256  # calls still waiting for a result; the oldest are forgotten first
FAILURE_LIMIT = 64  # unrecovered failures kept per episode; the oldest are forgotten first
NO_ERROR_TEXT = "(no error text)"
SIGNAL_TEXT_LIMIT = 32 * 1024  # characters of each text a signal carries (task, error, ...)
#: Namespace of signal event ids (uuid5), fixed forever: replays must give the same ids.
SIGNAL_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "kaizen:signals:v1")
_signal_uuid = uuid5_text(SIGNAL_NAMESPACE)


@dataclass(frozen=True)
class PositionedEvent:
    """An episode event and where it sits in `kaizen.episodes` (for lineage)."""

    event: EpisodeEvent
    partition: int
    offset: int


@dataclass(frozen=True)
class OpenCall:
    """A tool call still waiting for its result."""

    tool: str
    arguments_json: str
    seq: int


@dataclass(frozen=True)
class PendingFailure:
    """A failed call no later call has recovered yet."""

    tool: str
    arguments_json: str
    signature: str
    error: str | None
    seq: int
    next_call_id: str | None = None  # the first call made after it: a possible substitute


@dataclass
class EpisodeState:
    """What extraction needs to remember about one episode between events.

    Never mutated by the functions of this module, each returns a new state (except
    `apply_event(..., in_place=True)`, for a caller that owns the state)."""

    episode_id: str
    tenant: str
    agent: str
    user: str | None = None
    snapshot_id: str | None = None
    task: str = ""
    task_type: str = ""
    task_id: str = ""
    next_seq: int = 0
    buffer: dict[int, PositionedEvent] = field(default_factory=dict)
    seen_ids: list[str] = field(default_factory=list)
    open_calls: dict[str, OpenCall] = field(default_factory=dict)
    failures: list[PendingFailure] = field(default_factory=list)
    recalled_ids: list[str] = field(default_factory=list)
    held: list[Signal] = field(default_factory=list)  # failures/recoveries awaiting the outcome
    results: list[tuple[str, str]] = field(default_factory=list)  # (tool, output) of ok calls
    active: bool = False  # saw more than feedback: a real episode, not late feedback alone
    closed: bool = False
    outcome: str | None = None
    last_event_at: int = 0
    last_partition: int = -1
    last_offset: int = -1

    def copy(self) -> EpisodeState:
        """A copy that can be changed without touching this one (the records are immutable).

        Every field copied as it is, then each container copied: once per event, and
        `dataclasses.replace` (which calls `__init__` with every field) cost 2.5x this."""
        copied = object.__new__(type(self))
        copied.__dict__.update(self.__dict__)
        copied.buffer = dict(self.buffer)
        copied.seen_ids = list(self.seen_ids)
        copied.open_calls = dict(self.open_calls)
        copied.failures = list(self.failures)
        copied.recalled_ids = list(self.recalled_ids)
        copied.held = list(self.held)
        copied.results = list(self.results)
        return copied

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form, stored in the processor's table changelog."""
        plain = {name: getattr(self, name) for name in _field_names(type(self))}
        plain.update(
            version=STATE_VERSION,
            buffer=[_positioned_to_dict(p) for _, p in sorted(self.buffer.items())],
            seen_ids=list(self.seen_ids),
            open_calls={k: _as_dict(v) for k, v in self.open_calls.items()},
            failures=[_as_dict(f) for f in self.failures],
            recalled_ids=list(self.recalled_ids),
            held=[_as_dict(x) for x in self.held],
            results=[list(r) for r in self.results],
        )
        return plain

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpisodeState:
        """Inverse of `to_dict`; reads version 1 (nothing held then); refuses any other."""
        if data.get("version") not in (1, STATE_VERSION):
            raise ValueError(f"episode state version {data.get('version')!r} != {STATE_VERSION}")
        values = {k: v for k, v in data.items() if k != "version"}
        buffered = [_positioned_from_dict(p) for p in data["buffer"]]
        values.update(
            buffer={p.event.seq: p for p in buffered},
            seen_ids=list(data["seen_ids"]),
            open_calls={k: OpenCall(**v) for k, v in data["open_calls"].items()},
            failures=[PendingFailure(**f) for f in data["failures"]],
            recalled_ids=list(data["recalled_ids"]),
            held=[signal_from_dict(x) for x in data.get("held", [])],
            results=[(t, o) for t, o in data.get("results", [])],
        )
        return cls(**values)


def apply_event(
    state: EpisodeState | None, item: PositionedEvent, *, reorder_window: int = 64,
    in_place: bool = False,
) -> tuple[EpisodeState, list[Signal]]:
    """Fold one event into the episode's state; returns the new state and the completed signals.

    `in_place`: the caller owns `state` (nobody else holds it, e.g. the processors load a copy
    of it for each batch) and keeps only the returned state, so `state` is changed instead of
    copied first: copying a state for every event was a twentieth of assembling."""
    event = item.event
    if state is None:
        state = EpisodeState(event.episode_id, event.tenant, event.agent, event.user)
    elif _is_duplicate(state, event):
        return state, []
    elif not in_place:
        state = state.copy()
    state.seen_ids.append(event.event_id)
    del state.seen_ids[:-SEEN_LIMIT]
    state.last_event_at = max(state.last_event_at, event.occurred_at)
    state.buffer[event.seq] = item
    return state, _drain(state, reorder_window)


def close_if_idle(
    state: EpisodeState, now_ms: int, idle_ms: int
) -> tuple[EpisodeState, list[Signal]]:
    """Close an episode with no event for `idle_ms` as `abandoned`, processing what still waits.

    `now_ms` must be the stream's watermark (the largest `occurred_at` the processor has seen),
    never the wall clock: then the decision depends only on the log, and a replay closes the same
    episodes at the same point with the same signals -- provided the processor calls this at
    points fixed by the stream (after each event, or every N events), not on a timer. Agents'
    clocks should agree to well within `idle_ms`. The outcome's time and lineage are those of the
    episode's last event; an EpisodeEnded arriving after this is ignored (one outcome per episode).
    """
    if now_ms - state.last_event_at < idle_ms or (state.closed and not state.buffer):
        return state, []
    state = state.copy()
    signals = _drain(state, 0)  # nothing will fill the gaps now: process what is there
    if not state.closed:
        state.closed = True
        state.failures.clear()
        state.open_calls.clear()
        signals += _release(state, "abandoned" if state.active else None)
        if state.active:  # a state holding only late feedback is no abandoned episode
            state.outcome = "abandoned"
            last = (state.last_event_at, state.last_partition, state.last_offset)
            recalled = list(state.recalled_ids)
            signals.append(
                _signal(state, "outcome", last, "idle", outcome="abandoned", recalled_ids=recalled)
            )
    return state, signals


def is_finished(state: EpisodeState, now_ms: int, linger_ms: int) -> bool:
    """True when the state may be deleted: closed, nothing waiting, and quiet for `linger_ms`
    (event time, as in `close_if_idle`), long enough to absorb duplicates and late feedback."""
    return state.closed and not state.buffer and now_ms - state.last_event_at >= linger_ms


def is_retry_recovery(signal: Signal) -> bool:
    """A recovery without a patch: the identical call worked on a later try (transient error)."""
    return signal.kind == "recovery" and signal.patch is None


# --- ordering -------------------------------------------------------------------------------


def _is_duplicate(state: EpisodeState, event: EpisodeEvent) -> bool:
    return (
        event.seq < state.next_seq or event.seq in state.buffer or event.event_id in state.seen_ids
    )


def _drain(state: EpisodeState, window: int) -> list[Signal]:
    """Process the contiguous run of waiting events; skip a gap once too many wait behind it."""
    signals: list[Signal] = []
    while state.buffer:
        if state.next_seq not in state.buffer:
            if len(state.buffer) <= window:
                break
            state.next_seq = min(state.buffer)
        item = state.buffer.pop(state.next_seq)
        state.next_seq += 1
        signals += _process(state, item)
    return signals


# --- extraction -----------------------------------------------------------------------------


def _process(state: EpisodeState, item: PositionedEvent) -> list[Signal]:
    event, payload = item.event, item.event.payload
    state.last_partition, state.last_offset = item.partition, item.offset
    state.user = state.user or event.user
    state.snapshot_id = state.snapshot_id or event.snapshot_id
    if isinstance(payload, model.Feedback):
        return _on_feedback(state, item, payload)
    if state.closed:
        return []  # after the end only feedback counts
    state.active = True
    if isinstance(payload, model.EpisodeStarted):
        state.task, state.task_type = payload.task, payload.task_type
        state.task_id = payload.task_id
        state.snapshot_id = event.snapshot_id or state.snapshot_id
    elif isinstance(payload, model.ToolCall):
        _on_call(state, event.seq, payload)
    elif isinstance(payload, model.ToolResult):
        return _on_result(state, item, payload)
    elif isinstance(payload, model.Recall):
        state.recalled_ids += [i for i in payload.experience_ids if i not in state.recalled_ids]
    elif isinstance(payload, model.EpisodeEnded):
        return _on_end(state, item, payload)
    return []


def _on_call(state: EpisodeState, seq: int, call: model.ToolCall) -> None:
    state.failures = [
        f if f.next_call_id is not None else dataclasses.replace(f, next_call_id=call.call_id)
        for f in state.failures
    ]
    state.open_calls.pop(call.call_id, None)
    state.open_calls[call.call_id] = OpenCall(call.tool_name, call.arguments_json, seq)
    while len(state.open_calls) > OPEN_CALL_LIMIT:
        del state.open_calls[next(iter(state.open_calls))]


def _take_call(state: EpisodeState, result: model.ToolResult) -> OpenCall | None:
    """The call a result answers: by call id, else the latest open call of the same tool."""
    call = state.open_calls.pop(result.call_id, None)
    if call is not None:
        return call
    for call_id, candidate in reversed(state.open_calls.items()):
        if candidate.tool == result.tool_name:
            return state.open_calls.pop(call_id)
    return None


def _on_result(
    state: EpisodeState, item: PositionedEvent, result: model.ToolResult
) -> list[Signal]:
    call = _take_call(state, result)
    if result.ok:
        signals = _recoveries(state, item, result, call) if call is not None else []
        if result.output:
            state.results.append((result.tool_name, result.output[:RESULT_CHARS]))
            del state.results[:-RESULT_LIMIT]
        return _hold(state, signals)
    signature = error_signature(result.tool_name, result.error or NO_ERROR_TEXT)
    arguments = call.arguments_json if call is not None else None
    if arguments is not None:  # a failure whose arguments are unknown cannot teach a patch
        state.failures.append(
            PendingFailure(result.tool_name, arguments, signature, result.error, item.event.seq)
        )
        del state.failures[:-FAILURE_LIMIT]
    fields = {"tool": result.tool_name, "signature": signature, "error": result.error}
    return _hold(state, [_signal(state, "failure", item, arguments_json=arguments, **fields)])


def _hold(state: EpisodeState, signals: list[Signal]) -> list[Signal]:
    """Keep failures and recoveries until the episode's outcome is known (curation weighs
    evidence by it); returns the oldest held ones beyond HELD_LIMIT, which go out without it."""
    state.held += signals
    overflow = state.held[:-HELD_LIMIT]
    del state.held[:-HELD_LIMIT]
    return overflow


def _release(state: EpisodeState, outcome: str | None) -> list[Signal]:
    """The held signals, stamped with the episode's outcome, in the order they were made."""
    released = [_with_outcome(x, outcome) for x in state.held]
    state.held = []
    return released


def _with_outcome(signal: Signal, outcome: str | None) -> Signal:
    """`dataclasses.replace(signal, outcome=outcome)`: the same Signal, built from its values
    in field order (replace walks the fields' metadata for every signal released)."""
    values = list(_signal_values(signal))
    values[_OUTCOME_AT] = outcome
    return Signal(*values)


def _recoveries(
    state: EpisodeState, item: PositionedEvent, result: model.ToolResult, call: OpenCall
) -> list[Signal]:
    """Recover every pending failure of the same tool, and those this call substituted for."""
    signals: list[Signal] = []
    remaining: list[PendingFailure] = []
    for failure in state.failures:
        same_tool = failure.tool == result.tool_name
        substitute = (
            failure.next_call_id == result.call_id
            and _shares_arguments(failure, call)
            and same_purpose(failure.tool, result.tool_name)
        )
        if not same_tool and not substitute:
            remaining.append(failure)
            continue
        patch = diff_arguments(
            failure.tool,
            _arguments(failure.arguments_json),
            _arguments(call.arguments_json),
            working_tool=result.tool_name,
        )
        fields: dict[str, Any] = {"tool": failure.tool, "signature": failure.signature}
        fields.update(error=failure.error, arguments_json=failure.arguments_json)
        fields["patch"] = None if patch_is_empty(patch) else _mark_sources(state, patch)
        signals.append(_signal(state, "recovery", item, key=failure.seq, **fields))
    state.failures = remaining
    return signals


def _mark_sources(state: EpisodeState, patch: ToolCallPatch) -> ToolCallPatch:
    """Mark each set value the agent took from the task or an earlier result (evidence.py)."""
    changes = [
        dataclasses.replace(c, rule=source)
        if c.op in ("replace", "add") and c.rule is None
        and (source := value_source(c.value_json, state.task, state.results))
        else c
        for c in patch.changes
    ]
    return dataclasses.replace(patch, changes=changes)


def _shares_arguments(failure: PendingFailure, call: OpenCall) -> bool:
    """A substitute tool does the failed tool's job, so it takes some of the same arguments (by
    name or by value); a call that shares none (e.g. `Finish[answer]` after a failed `Search`) is
    the agent moving on, not a recovery."""
    failed, working = _arguments(failure.arguments_json), _arguments(call.arguments_json)
    values = {json.dumps(v, sort_keys=True) for v in failed.values()}
    return bool(failed.keys() & working.keys()) or any(
        json.dumps(v, sort_keys=True) in values for v in working.values()
    )


def _on_feedback(
    state: EpisodeState, item: PositionedEvent, feedback: model.Feedback
) -> list[Signal]:
    signals: list[Signal] = []
    if feedback.correction and feedback.correction.strip():
        signals.append(_signal(state, "correction", item, correction=feedback.correction))
    if feedback.rating is not None:
        signals.append(_signal(state, "rating", item, rating=feedback.rating))
    return signals


def _on_end(state: EpisodeState, item: PositionedEvent, end: model.EpisodeEnded) -> list[Signal]:
    state.closed, state.outcome = True, end.outcome
    state.failures.clear()
    state.open_calls.clear()
    recalled = list(state.recalled_ids)
    held = _release(state, end.outcome)
    return [*held, _signal(state, "outcome", item, outcome=end.outcome, recalled_ids=recalled)]


# --- helpers --------------------------------------------------------------------------------

Position = tuple[int, int, int]  # occurred_at, partition, offset of the source event


def _signal(
    state: EpisodeState,
    kind: str,
    source: PositionedEvent | Position,
    key: int | str | None = None,
    **fields: Any,
) -> Signal:
    """A signal of this episode; `key` (default: the source event's seq) makes its id unique."""
    if isinstance(source, PositionedEvent):
        key = source.event.seq if key is None else key
        source = (source.event.occurred_at, source.partition, source.offset)
    occurred_at, partition, offset = source
    fields = {k: _cut(v) if isinstance(v, str) else v for k, v in fields.items()}
    if fields.get("arguments_json") is not None:
        fields["arguments_json"] = _readable_json(fields["arguments_json"])
    return Signal(
        event_id=signal_id(state.tenant, state.agent, state.episode_id, kind, key),
        occurred_at=occurred_at,
        tenant=state.tenant,
        agent=state.agent,
        episode_id=state.episode_id,
        kind=kind,
        user=state.user,
        snapshot_id=state.snapshot_id,
        task=_cut(state.task),
        task_type=state.task_type,
        task_id=state.task_id,
        source_partition=partition,
        source_offset=offset,
        **fields,
    )


def _cut(text: str) -> str:
    """A text field of a signal, bounded: a signal carries texts of several events (task, error,
    arguments), and must stay far below the broker's record limit whatever they were."""
    if len(text) <= SIGNAL_TEXT_LIMIT:
        return text
    return text[:SIGNAL_TEXT_LIMIT] + f"…[kaizen: cut {len(text) - SIGNAL_TEXT_LIMIT} chars]"


def _readable_json(text: str) -> str:
    """Arguments as a signal carries them: JSON every reader can parse. Text that is not (cut,
    or nested too deeply for a parser's recursion) is kept as a JSON string under `_raw`, so
    no later fold (curation, the gate's evaluators) can be made to raise by it."""
    try:
        json.loads(text)
        return text
    except (ValueError, RecursionError):
        return json.dumps({"_raw": text[:SIGNAL_TEXT_LIMIT]})


def _arguments(arguments_json: str) -> dict[str, Any]:
    """Call arguments as a dict; text that is not a JSON object is kept whole under one key, so a
    malformed call still compares with the next one instead of stopping the processor."""
    try:
        parsed = json.loads(arguments_json)
    except ValueError:
        return {"_raw": arguments_json}
    return parsed if isinstance(parsed, dict) else {"_value": parsed}


_ATOMS = frozenset({str, int, float, bool, type(None)})
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def _as_dict(record: Any) -> dict[str, Any]:
    """`dataclasses.asdict` of a state's record: the same dict, without its reflection and deep
    copy of every value, which were half the cost of dumping a state (every state a batch
    touched is dumped once). Plain values are shared (immutable); records, lists, dicts and
    tuples in it are converted as asdict converts them."""
    names = _field_names(type(record))
    return {name: value if type(value) in _ATOMS else _plain(value)
            for name, value in zip(names, (getattr(record, name) for name in names), strict=True)}


def _plain(value: Any) -> Any:
    if type(value) in _ATOMS:
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _as_dict(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return copy.deepcopy(value)


_signal_values = operator.attrgetter(*_field_names(Signal))
_OUTCOME_AT = _field_names(Signal).index("outcome")


def signal_from_dict(d: dict[str, Any]) -> Signal:
    """A Signal from `dataclasses.asdict` (held signals in the state's changelog)."""
    patch = d.get("patch")
    if patch is not None:
        changes = [ArgumentChange(**c) for c in patch["changes"]]
        patch = ToolCallPatch(tool=patch["tool"], changes=changes, use_tool=patch["use_tool"])
    return Signal(**{**d, "patch": patch, "recalled_ids": list(d.get("recalled_ids", []))})


def _avro_name(cls: type) -> str:
    return cls.__name__


def signal_id(tenant: str, agent: str, episode_id: str, kind: str, key: object) -> str:
    """The deterministic id of an episode's signal (see the module doc)."""
    return _signal_uuid(f"{scope_key(tenant, agent, episode_id)}/{kind}/{key}")


def _positioned_to_dict(item: PositionedEvent) -> dict[str, Any]:
    record = to_record(item.event, _avro_name)
    record["payload"] = list(record["payload"])  # (branch name, fields): a JSON array
    return {"event": record, "partition": item.partition, "offset": item.offset}


def _positioned_from_dict(data: dict[str, Any]) -> PositionedEvent:
    event = from_record(EpisodeEvent, data["event"])
    return PositionedEvent(event, data["partition"], data["offset"])
