"""Render recalled lessons as a block an agent pastes into its system prompt.

The block is plain text, numbered best first, so a person reading a transcript
sees what the agent was told, and an episode's ``Recall`` event (experience ids)
maps to it line by line. A tool-call patch is summarised in words; programs that
apply patches use ``Recalled.patch`` itself, not this text.

Example::

    Lessons learned from earlier tasks (apply them when relevant):
    1. Do not wrap the search query in quotes.
       Fix for `search` calls: reformat `q` (strip_quotes).
"""

from __future__ import annotations

from collections.abc import Sequence

from kaizen.readmodel.lesson import Recalled
from kaizen.schemas.model import ArgumentChange, ToolCallPatch

__all__ = ["HEADER", "render_lessons", "summarise_patch"]

HEADER = "Lessons learned from earlier tasks (apply them when relevant):"
_MAX_VALUE = 80
_INDENT = "   "


def render_lessons(recalled: Sequence[Recalled]) -> str:
    """The prompt block for ``recalled`` (in the order given); "" when there is none.

    An empty string rather than a header with no lessons, so an agent can always
    append the result to its prompt.
    """
    if not recalled:
        return ""
    lines = [HEADER]
    for number, lesson in enumerate(recalled, start=1):
        guidance = lesson.guidance.strip().splitlines() or [""]
        lines.append(f"{number}. {guidance[0].strip()}")
        lines.extend(f"{_INDENT}{line.strip()}" for line in guidance[1:] if line.strip())
        if lesson.patch is not None:
            lines.append(f"{_INDENT}{summarise_patch(lesson.patch)}")
    return "\n".join(lines)


def summarise_patch(patch: ToolCallPatch) -> str:
    """One sentence saying what the patch changes in a call of ``patch.tool``."""
    steps = [_change(c) for c in patch.changes]
    if patch.use_tool is not None and patch.use_tool != patch.tool:
        steps.insert(0, f"call `{patch.use_tool}` instead")
    body = "; ".join(steps) if steps else "no argument changes"
    return f"Fix for `{patch.tool}` calls: {body}."


def _change(change: ArgumentChange) -> str:
    name = f"`{change.argument}`"
    if change.op == "rename":
        return f"rename {name} to `{change.new_argument}`"
    if change.op == "add":
        return f"add {name} = {_value(change.value_json)}"
    if change.op == "remove":
        return f"remove {name}"
    if change.op == "reformat":
        return f"reformat {name}" + (f" ({change.rule})" if change.rule else "")
    if change.op == "replace":
        return f"set {name} to {_value(change.value_json)}"
    return f"{change.op} {name}"


def _value(value_json: str | None) -> str:
    """The JSON value as written, shortened: a prompt needs the gist, not a whole document."""
    text = (value_json or "null").replace("\n", " ")
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 3] + "..."
