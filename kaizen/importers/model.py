"""The neutral shape every importer produces, so emitting events is written once.

A parser turns a foreign log (ReAct text, OpenAI chat messages, ...) into `ImportedEpisode`s, or
`Skipped` records that say why an entry was left out. Parsers never talk to Kafka and never raise
for bad input: a malformed entry is a `Skipped`, so one broken line cannot stop a backfill.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

OUTCOMES = ("success", "failure", "abandoned")
OUTPUT_LIMIT = 500  # tool outputs are context, not evidence: keep events small
ERROR_LIMIT = 2000  # error text is evidence (signatures are built from it): keep more of it

# Fixed namespace so episode ids derived from the same source are the same on every import.
_NAMESPACE = uuid.UUID("5b0c8f8e-3c1d-4e0a-9a57-6b1f4c2d7e10")


@dataclass(frozen=True)
class ImportedStep:
    """One tool call and what it returned."""

    tool: str
    arguments: dict[str, object]
    ok: bool
    error: str | None
    output: str | None
    thought: str | None


@dataclass(frozen=True)
class ImportedEpisode:
    """One task attempt, ready to be emitted through a Recorder."""

    episode_id: str
    task: str
    task_type: str
    user: str | None
    steps: list[ImportedStep]
    outcome: str
    reward: float | None
    reflections: list[str]
    source: str

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {self.outcome!r}")


@dataclass(frozen=True)
class Skipped:
    """An entry of the source that was not imported, and why (grouped by `reason` in reports)."""

    source: str
    reason: str


def episode_id_for(*parts: str) -> str:
    """A deterministic episode id from stable source coordinates, so a re-import is idempotent."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join(parts)))


def truncate(text: str, limit: int) -> str:
    """Cut `text` to `limit` characters, marking the cut so a reader knows it is not the whole."""
    return text if len(text) <= limit else text[:limit] + "…"
