"""Option parsing shared by several commands (times given on the command line)."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_time_ms(text: str | None) -> int | None:
    """ISO 8601 to UTC ms; a time without a zone is taken as UTC."""
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
