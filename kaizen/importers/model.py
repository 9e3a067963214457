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
EVENT_SPACING_MS = 1000  # synthetic time between two events of a log that has no times

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
    called_ms: int | None = None  # when the log says the call / its result happened, if it does
    answered_ms: int | None = None


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
    task_id: str = ""  # the task across attempts (a benchmark task id), empty if unknown
    agent_version: str = ""  # the model or prompt version that ran it, empty if unknown
    started_ms: int | None = None  # event times from the log; None: synthetic times are used
    ended_ms: int | None = None
    tools: tuple[str, ...] = ()  # the tools the agent had, when the log lists them
    agent: str = ""  # the agent name the log suggests (e.g. tau2-retail); empty: the default

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {self.outcome!r}")


@dataclass(frozen=True)
class Skipped:
    """An entry of the source that was not imported, and why (grouped by `reason` in reports)."""

    source: str
    reason: str


@dataclass(frozen=True)
class ReadError(Skipped):
    """The rest of a file could not be read (truncated, malformed): `source` names the file and
    `reason` the position. Episodes yielded before it are complete and stay imported."""


def episode_id_for(*parts: str) -> str:
    """A deterministic episode id from stable source coordinates, so a re-import is idempotent."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join(parts)))


def truncate(text: str, limit: int) -> str:
    """Cut `text` to `limit` characters, marking the cut so a reader knows it is not the whole."""
    return text if len(text) <= limit else text[:limit] + "…"
