"""One way to turn a record a component could not process into a dead letter.

A dead letter is itself a record and must fit the broker's message limit whatever it rejects: a
large value is cut to `MAX_LETTER_VALUE` bytes and the letter says so and where the whole record
is (source topic / partition / offset, still in the log for its retention), which is what
`kaizen deadletters replay` reads back. The id depends on the record's position and the rejecting
component only, so a letter written again after a crash is the same letter.
"""

from __future__ import annotations

import traceback
import uuid

from kaizen.schemas.model import DeadLetter

#: Namespace of dead-letter ids (uuid5): the same bad record rejected twice is one dead letter.
DEAD_LETTER_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "kaizen:deadletter:v1")

MAX_LETTER_VALUE = 64 * 1024  # bytes of the rejected value kept in the letter
MAX_LETTER_KEY = 1024
MAX_REASON = 16 * 1024  # room for a traceback; its end (where it was raised) is kept
CUT_MARKER = "[value cut:"


def _cut_reason(text: str) -> str:
    if len(text) <= MAX_REASON:
        return text
    return text[: MAX_REASON // 4] + "\n...\n" + text[-(MAX_REASON * 3 // 4):]


def dead_letter(component: str, topic: str, partition: int, offset: int, error: BaseException, *,
                key: bytes | None, value: bytes | None, occurred_at: int,
                reason: str | None = None) -> DeadLetter:
    """The record, cut to a bounded size, with the reason (`reason`, else the error's text)
    and its log position."""
    text = reason if reason is not None else str(error)
    if value is not None and len(value) > MAX_LETTER_VALUE:
        text += (f"\n{CUT_MARKER} {MAX_LETTER_VALUE} of {len(value)} bytes kept; the whole "
                 f"record is {topic}/{partition}/{offset}]")
        value = value[:MAX_LETTER_VALUE]
    return DeadLetter(
        event_id=str(uuid.uuid5(DEAD_LETTER_NAMESPACE,
                                f"{component}/{topic}/{partition}/{offset}")),
        occurred_at=occurred_at,
        component=component,
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        reason=_cut_reason(text),
        error_type=type(error).__name__,
        key=None if key is None else key[:MAX_LETTER_KEY],
        value=value,
    )


def failure_reason(component: str, attempts: int, error: BaseException) -> str:
    """The reason of a letter for a record a fold kept failing on: with the traceback."""
    trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return f"{component}: the fold raised on {attempts} attempts\n{trace}"


def is_cut(letter: DeadLetter) -> bool:
    """True when the letter holds only the start of the rejected value."""
    return CUT_MARKER in letter.reason


def dead_letter_key(topic: str, partition: int, offset: int) -> bytes:
    return f"{topic}/{partition}/{offset}".encode()
