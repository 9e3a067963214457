"""A recalled lesson as agents see it, and its JSON form on the wire (`POST /recall`).

Light on purpose: the agent-side install (Recorder, recall client) imports this module, so it
needs nothing beyond the schema model (no NumPy, no store client).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kaizen.schemas.model import ToolCallPatch
from kaizen.schemas.records import from_record, to_json


@dataclass(frozen=True, slots=True)
class Recalled:
    """One recalled lesson, best first in a recall's result."""

    experience_id: str
    score: float
    guidance: str
    patch: ToolCallPatch | None
    kind: str
    tool: str | None


def lesson_to_json(lesson: Recalled) -> dict[str, Any]:
    """The wire form of one lesson (the HTTP API's `lessons[]` items)."""
    return {"experience_id": lesson.experience_id, "score": lesson.score,
            "guidance": lesson.guidance, "kind": lesson.kind, "tool": lesson.tool,
            "patch": to_json(lesson.patch) if lesson.patch else None}


def lesson_from_json(data: Mapping[str, Any]) -> Recalled:
    """Inverse of :func:`lesson_to_json`."""
    patch = from_record(ToolCallPatch, dict(data["patch"])) if data.get("patch") else None
    return Recalled(data["experience_id"], float(data["score"]), data["guidance"], patch,
                    data["kind"], data.get("tool"))
