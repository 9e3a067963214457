"""Size limits for what an agent emits, and a rate-limited warning, so a bad record never hurts it.

Kafka refuses a record over ``message.max.bytes`` (about 1 MB) and every consumer downstream pays
for each byte of an episode event, so the Recorder cuts an oversize event before it is queued: the
longest text fields are cut (the head is kept, which holds the error's type and message) and end
with a marker that says how much was cut. Only the event's payload texts and lists are cut; ids,
times and the scope stay intact, so ordering and de-duplication are unchanged.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import structlog

from kaizen.schemas import model

#: Default bound of one encoded episode event; far below Kafka's ~1 MB record limit.
MAX_EVENT_BYTES = 256 * 1024
MARKER = "…[kaizen: truncated {cut} of {total} bytes]"
_SMALLEST_FIELD = 64


def cut_text(text: str, limit: int) -> str:
    """`text` if it fits in `limit` UTF-8 bytes, else its head and a marker saying what was cut."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    head = data[:limit].decode("utf-8", "ignore")
    return head + MARKER.format(cut=len(data) - len(head.encode()), total=len(data))


def _cut_value(value: Any, limit: int) -> Any:
    if isinstance(value, str):
        return cut_text(value, limit)
    if isinstance(value, list):
        kept, used = [], 0
        for item in value:
            used += len(str(item)) + 1
            if used > limit:
                break
            kept.append(_cut_value(item, limit))
        return kept
    return value


def _cut_payload(payload: Any, limit: int) -> Any:
    changes = {f.name: _cut_value(getattr(payload, f.name), limit)
               for f in dataclasses.fields(payload)}
    return dataclasses.replace(payload, **changes)


def fit_event(
    event: model.EpisodeEvent, max_bytes: int, encode: Callable[[model.EpisodeEvent], bytes]
) -> tuple[model.EpisodeEvent, bytes] | None:
    """The event with its payload's texts cut until its encoding fits `max_bytes`, and that
    encoding; None if even tiny fields do not fit (then the ids themselves are too large)."""
    limit = max_bytes // 2
    while limit >= _SMALLEST_FIELD:
        candidate = dataclasses.replace(
            event, payload=_cut_payload(event.payload, limit),
            user=cut_text(event.user, limit) if event.user else event.user,
        )
        value = encode(candidate)
        if len(value) <= max_bytes:
            return candidate, value
        limit //= 2
    return None


class LogLimiter:
    """At most one warning per `every` seconds per reason; the rest are counted and reported with
    the next one. A fault that repeats for each event must not flood the agent's logs."""

    def __init__(self, logger: Any, every: float = 60.0) -> None:
        self._log = logger
        self._every = every
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, reason: str, **fields: Any) -> bool:
        """Log `reason` unless it was logged less than `every` seconds ago; True if logged."""
        now = time.monotonic()
        last = self._last.get(reason)
        if last is not None and now - last < self._every:
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
            return False
        self._last[reason] = now
        suppressed = self._suppressed.pop(reason, 0)
        self._log.warning(reason, **fields, **({"suppressed": suppressed} if suppressed else {}))
        return True


def limiter(name: str, every: float = 60.0) -> LogLimiter:
    """A `LogLimiter` over the structlog logger `name`."""
    return LogLimiter(structlog.get_logger(name), every)
