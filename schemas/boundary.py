"""What a topic accepts: its record types, within size and event-time bounds (the trust boundary).

Agents and other producers are not trusted to be well-formed. Every consumer of a topic asks
`admit(...)` before it folds or stores a record, so the processors and the sinks decide alike:

    event = admit(record_value, record_timestamp_ms, topic_kind, limits)   # or raises Rejected

Rejected records become dead letters (`schemas/dead_letters.py`); they never reach a fold, so a
year-9999 timestamp cannot move a watermark and an Experience produced to the episodes topic is
never stored or recalled. The time bounds compare an event's own time with its record's timestamp
(set by the producer's clock, or by the broker with `message.timestamp.type=LogAppendTime`), so
the decision depends on the record alone: every consumer, and every replay, decides the same.

Pure: no Kafka, store or processor imports.
"""

from __future__ import annotations

from dataclasses import dataclass

from kaizen.schemas import model
from kaizen.schemas.codec import Codec, DecodeError

#: The record types each topic may carry, by catalog short name (`streams/topics.py`).
TOPIC_TYPES: dict[str, type] = {
    "episodes": model.EpisodeEvent,
    "signals": model.Signal,
    "patterns": model.Pattern,
    "experiences": model.Experience,
    "snapshots": model.SnapshotEvent,
    "deadletter": model.DeadLetter,
}


@dataclass(frozen=True)
class Limits:
    """Bounds of one deployment (`KAIZEN_MAX_RECORD_BYTES`, `KAIZEN_MAX_FUTURE_SKEW_SECONDS`,
    `KAIZEN_MAX_PAST_SKEW_SECONDS`). A past bound of 0 is off: backfilling old logs
    (`kaizen import`) writes events far older than their records, legitimately."""

    max_record_bytes: int = 512 * 1024  # twice the Recorder's event bound (streams/limits)
    max_future_skew_ms: int = 24 * 3600 * 1000
    max_past_skew_ms: int = 0


class Rejected(DecodeError):
    """A record its topic does not accept; the message says why."""


class Oversize(Rejected):
    """Larger than `Limits.max_record_bytes`."""


class WrongType(Rejected):
    """A valid Kaizen record of a type its topic does not carry."""


class OutOfTime(Rejected):
    """An event time too far ahead of (or behind) its record's timestamp."""


def check_size(value: bytes, limits: Limits) -> None:
    if len(value) > limits.max_record_bytes:
        raise Oversize(f"record of {len(value)} bytes exceeds the limit of "
                       f"{limits.max_record_bytes} bytes (KAIZEN_MAX_RECORD_BYTES)")


def check_type(event: model.Event, kind: str) -> None:
    expected = TOPIC_TYPES.get(kind)
    if expected is not None and not isinstance(event, expected):
        raise WrongType(f"the {kind} topic carries {expected.__name__} records, "
                        f"not {type(event).__name__}")


def event_time(event: model.Event) -> int | None:
    """The event time a record claims; None for records that carry no event time of their own."""
    return None if isinstance(event, model.DeadLetter) else event.occurred_at


def check_time(event: model.Event, record_timestamp_ms: int, limits: Limits) -> None:
    at = event_time(event)
    if at is None or record_timestamp_ms <= 0:
        return
    if limits.max_future_skew_ms and at > record_timestamp_ms + limits.max_future_skew_ms:
        raise OutOfTime(f"event time {at} is {at - record_timestamp_ms} ms after its record's "
                        f"timestamp {record_timestamp_ms} (KAIZEN_MAX_FUTURE_SKEW_SECONDS)")
    if limits.max_past_skew_ms and at < record_timestamp_ms - limits.max_past_skew_ms:
        raise OutOfTime(f"event time {at} is {record_timestamp_ms - at} ms before its record's "
                        f"timestamp {record_timestamp_ms} (KAIZEN_MAX_PAST_SKEW_SECONDS)")


def admit(codec: Codec, value: bytes, record_timestamp_ms: int, kind: str,
          limits: Limits, decoded: model.Event | None = None) -> model.Event:
    """The event of a record its topic accepts; raises `DecodeError` (a `Rejected` when the
    record decodes but is not acceptable) otherwise. Size first: nothing larger is decoded.
    `decoded`: what `codec.decode(value)` gives, when the caller has it already (a worker
    reading back what it forwarded, `processors/forwarded.py`); every check still runs."""
    check_size(value, limits)
    event = codec.decode(value) if decoded is None else decoded
    check_type(event, kind)
    check_time(event, record_timestamp_ms, limits)
    return event
