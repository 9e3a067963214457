"""What each processor step does with one record, without faust: decode or dead-letter, fold,
and the records to send. The faust agents in `processors/app.py` only move bytes and state.
"""

from __future__ import annotations

from typing import NamedTuple, TypeVar

from kaizen.processors import bundles
from kaizen.processors.config import CURATION_TOPIC, TOOL_RESULTS_TOPIC, ProcessorConfig
from kaizen.processors.forwarded import Forwarded
from kaizen.processors.learning import curation, episodes, patterns
from kaizen.processors.learning.signatures import error_signature
from kaizen.processors.sealing import StateSealer
from kaizen.schemas import model
from kaizen.schemas.boundary import admit
from kaizen.schemas.codec import Codec, DecodeError
from kaizen.schemas.dead_letters import dead_letter, dead_letter_key
from kaizen.schemas.scope import InvalidName, check_scope, scope_key
from kaizen.streams.personal import CipherCodec, codec_with_keys
from kaizen.streams.topics import Topics

T = TypeVar("T")


class Record(NamedTuple):
    """A record as read from Kafka. A named tuple, not a frozen dataclass: one is made for
    every record a worker reads, and a frozen dataclass's `__init__` cost three times more."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int = 0


class Outgoing(NamedTuple):
    """A record to send (a named tuple for the same reason as `Record`)."""

    topic: str
    key: bytes
    value: bytes


class RecordFolds:
    """One record at a time: decode it or dead-letter it, fold it into its state through the
    pure learning modules, and say what to send where (encoded). One per worker."""

    def __init__(self, config: ProcessorConfig, codec: Codec | None = None) -> None:
        self.config = config
        self.topics = Topics(config.prefix)
        self.codec = codec or codec_with_keys(config.keys_path)
        cipher = self.codec.cipher if isinstance(self.codec, CipherCodec) else None
        self.sealer = StateSealer(cipher)  # table states of users under their keys
        # what this worker forwards to its next steps, decoded (plain codec only: see there)
        self.forwarded = Forwarded() if type(self.codec) is Codec else None

    def dead_letter(self, record: Record, component: str, error: BaseException,
                    reason: str | None = None) -> Outgoing:
        """Bad input goes to the dead-letter topic (cut to a bounded size, referenced by its
        position) with the reason; processing goes on."""
        letter = dead_letter(component, record.topic, record.partition, record.offset, error,
                             key=record.key, value=record.value, occurred_at=record.timestamp_ms,
                             reason=reason)
        key = dead_letter_key(record.topic, record.partition, record.offset)
        return Outgoing(self.topics.deadletter, key, self.codec.encode(letter))

    def decode_episode_event(self, record: Record, component: str, forwarded: bool = False
                             ) -> model.EpisodeEvent | Outgoing:
        """The episode event of a record its topic accepts (`schemas/boundary.py`: type, size,
        event time), or its dead letter. `forwarded`: the record is one this worker may have
        forwarded (a tool result read by the aggregate step)."""
        admitted = self._admit(record, component, "episodes", model.EpisodeEvent, forwarded)
        if not isinstance(admitted, model.EpisodeEvent):
            return admitted
        try:  # names no scope can hold (control chars, absurd length) never reach a key
            check_scope(admitted.tenant, admitted.agent, admitted.user)
        except InvalidName as error:
            return self.dead_letter(record, component, error)
        return admitted

    def bundled(self, outgoing: list[Outgoing]) -> list[Outgoing]:
        """The records for the worker's own next steps (tool results, signals to curate) packed
        into bundles per topic and key, in order (`processors/bundles.py`), after the others."""
        internal = {self.config.internal(TOOL_RESULTS_TOPIC), self.config.internal(CURATION_TOPIC)}
        kept: list[Outgoing] = []
        forwarded: dict[tuple[str, bytes], list[bytes]] = {}
        for item in outgoing:
            if item.topic in internal:
                forwarded.setdefault((item.topic, item.key), []).append(item.value)
            else:
                kept.append(item)
        return kept + [Outgoing(topic, key, bundle)
                       for (topic, key), values in forwarded.items()
                       for bundle in bundles.pack_bounded(values)]

    def unbundle(self, record: Record, component: str) -> list[Record] | Outgoing:
        """The records a bundle carries (at the bundle's position), or its dead letter."""
        try:
            values = bundles.unpack(record.value)
        except DecodeError as error:
            return self.dead_letter(record, component, error)
        return [Record(record.topic, record.partition, record.offset, record.key, value,
                       record.timestamp_ms) for value in values]

    def decode_signal(self, record: Record, component: str) -> model.Signal | Outgoing:
        """A signal the assemble step forwarded to curation, or its dead letter."""
        return self._admit(record, component, "signals", model.Signal, forwarded=True)

    def _admit(self, record: Record, component: str, kind: str, cls: type[T],
               forwarded: bool = False) -> T | Outgoing:
        memo = self.forwarded if forwarded else None
        known = memo.take(record.value) if memo is not None else None
        try:
            event = admit(self.codec, record.value, record.timestamp_ms, kind, self.config.limits,
                          known)
        except DecodeError as error:
            return self.dead_letter(record, component, error)
        assert isinstance(event, cls)
        return event

    def assemble(self, state: episodes.EpisodeState | None, record: Record,
                 event: model.EpisodeEvent) -> tuple[episodes.EpisodeState, list[Outgoing]]:
        """Fold one episode event; emit its signals and forward tool results for patterns.
        `state` is changed in place: the steps load their own copy of each state for a batch
        (`steps.StateCache`), and keep only the returned one."""
        positioned = episodes.PositionedEvent(event, record.partition, record.offset)
        new_state, signals = episodes.apply_event(state, positioned, in_place=True)
        out = self.signal_outputs(signals)
        if isinstance(event.payload, model.ToolResult):
            # Forwarded as it arrives (duplicates, out-of-seq order): patterns dedupe by event id.
            out.append(Outgoing(self.config.internal(TOOL_RESULTS_TOPIC), event.agent.encode(),
                                record.value))
            if self.forwarded is not None:
                self.forwarded.keep(record.value, event)
        return new_state, out

    def close_idle(self, state: episodes.EpisodeState, watermark_ms: int
                   ) -> tuple[episodes.EpisodeState | None, list[Outgoing]]:
        """Abandon an idle episode; None once it has lingered long enough (drop its state)."""
        new_state, signals = episodes.close_if_idle(state, watermark_ms, self.config.idle_ms)
        if episodes.is_finished(new_state, watermark_ms, self.config.linger_ms):
            return None, self.signal_outputs(signals)
        return new_state, self.signal_outputs(signals)

    def signal_outputs(self, signals: list[model.Signal]) -> list[Outgoing]:
        out = []
        for signal in signals:
            value = self.codec.encode(signal)
            out.append(Outgoing(self.topics.signals, signal.episode_id.encode(), value))
            key = curation.curation_key(signal)
            if key is not None:
                out.append(Outgoing(self.config.internal(CURATION_TOPIC), key.encode(), value))
                if self.forwarded is not None:
                    self.forwarded.keep(value, signal)
        return out

    def aggregate(self, state: patterns.PatternState | None, event: model.EpisodeEvent
                  ) -> tuple[patterns.PatternState, list[Outgoing]]:
        """Fold one tool result into its agent's windowed patterns (in place)."""
        # Every kept window accepts late events: the repartition topic interleaves the episode
        # partitions in no fixed order, so closing windows early would make counts depend on it.
        new_state, updates = patterns.apply_tool_result(
            state, event, signature_of=error_signature,
            window_seconds=self.config.window_seconds, history_windows=10, late_windows=10,
        )
        out = [Outgoing(self.topics.patterns, f"{scope_key(p.agent)}/{p.signature}".encode(),
                        self.codec.encode(p)) for p in updates]
        return new_state, out

    def curate(self, state: curation.CurationState | None, signal: model.Signal
               ) -> tuple[curation.CurationState, list[Outgoing]]:
        """Fold one signal into the lessons of its curation key (in place)."""
        new_state, experiences = curation.apply_signal(
            state, signal, min_support=self.config.min_support
        )
        out = [Outgoing(self.topics.experiences, x.experience_id.encode(), self.codec.encode(x))
               for x in experiences]
        return new_state, out
