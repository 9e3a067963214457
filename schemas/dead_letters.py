"""One way to turn a record a component could not process into a dead letter."""

from __future__ import annotations

import uuid

from kaizen.schemas.model import DeadLetter

#: Namespace of dead-letter ids (uuid5): the same bad record rejected twice is one dead letter.
DEAD_LETTER_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "kaizen:deadletter:v1")


def dead_letter(component: str, topic: str, partition: int, offset: int, error: Exception, *,
                key: bytes | None, value: bytes | None, occurred_at: int) -> DeadLetter:
    """The record kept whole, with the reason and its log position."""
    return DeadLetter(
        event_id=str(uuid.uuid5(DEAD_LETTER_NAMESPACE,
                                f"{component}/{topic}/{partition}/{offset}")),
        occurred_at=occurred_at,
        component=component,
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        reason=str(error)[:2000],
        error_type=type(error).__name__,
        key=key,
        value=value,
    )


def dead_letter_key(topic: str, partition: int, offset: int) -> bytes:
    return f"{topic}/{partition}/{offset}".encode()
