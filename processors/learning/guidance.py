"""Guidance text for lessons, written from structured facts without an LLM.

An agent reads this text in its prompt and an operator reads it when approving a snapshot, so it
must say plainly what to do, on which tool and argument, and why (the error it avoids). Every
sentence here is a template over a `ToolCallPatch` and an error signature: the same facts always
give the same text, which keeps experience versions stable across replays.

Argument VALUES of failed calls are never quoted (they may hold personal data); the values a fix
set (`add`, `replace`) are shown as short examples because they are what made the call work.

This module must stay pure: no Kafka, faust or store imports.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from kaizen.processors.learning.evidence import FROM_RESULT, FROM_TASK, fault_arguments
from kaizen.schemas.model import ArgumentChange, ToolCallPatch

MAX_ERROR_CHARS = 160
MAX_VALUE_CHARS = 40
MAX_CORRECTION_CHARS = 500

_DATE_RULE = re.compile(r"^date:(?P<old>.+?)->(?P<new>.+)$")
_SIMPLE_RULES = {
    "strip_quotes": "do not wrap `{a}` in quotes",
    "lowercase": "write `{a}` in lower case",
    "uppercase": "write `{a}` in upper case",
    "strip": "trim the spaces around `{a}`",
}


def error_text(signature: str | None, tool: str | None = None) -> str:
    """The normalized error of a signature (`"{tool}: {error}"`), shortened for a prompt."""
    if not signature:
        return ""
    text = signature
    if tool and text.startswith(f"{tool}: "):
        text = text[len(tool) + 2 :]
    text = " ".join(text.split()).rstrip(". ")
    if text[:7].casefold() == "error: ":  # the tool's own prefix says nothing
        text = text[7:]
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 3].rstrip() + "..."
    return text


def value_example(value_json: str | None) -> str:
    """A short rendering of a JSON value: strings in double quotes, others as compact JSON."""
    if value_json is None:
        return ""
    try:
        value = json.loads(value_json)
    except ValueError:
        text = value_json
    else:
        text = f'"{value}"' if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 3] + "..."


def change_clause(change: ArgumentChange) -> str:
    """What one argument change asks of the agent, as an imperative clause."""
    a = change.argument
    example = value_example(change.value_json)
    if change.op == "reformat":
        return _reformat_clause(a, change.rule)
    if change.op == "rename":
        return f"pass `{change.new_argument}` instead of `{a}`"
    if change.op == "add":
        return f"always pass `{a}`" + (f" (e.g. {example})" if example else "")
    if change.op == "remove":
        return f"do not pass `{a}`"
    if change.op == "replace":
        worked = f" (one that worked: {example})" if example else ""
        return f"use another value for `{a}`{worked}"
    raise ValueError(f"unknown argument change op {change.op!r}")


def _reformat_clause(argument: str, rule: str | None) -> str:
    if rule in _SIMPLE_RULES:
        return _SIMPLE_RULES[rule].format(a=argument)
    date = _DATE_RULE.match(rule or "")
    if date:
        return f"write `{argument}` as {date['new']} (not {date['old']})"
    return f"reformat `{argument}`" + (f" ({rule})" if rule else "")


def recovery_guidance(patch: ToolCallPatch, signature: str | None) -> str:
    """Guidance for a failure that a changed call recovered from.

    A patch without changes or substitute tool means the same call worked again: a retry.
    """
    tool, changes = patch.tool, patch.changes
    failed = _failed_with(error_text(signature, tool))
    if patch.use_tool:
        extra = f", and {_join(change_clause(c) for c in changes)}" if changes else ""
        return (
            f"Use {patch.use_tool} instead of {tool}{extra}: calls to {tool}{failed} "
            f"and succeeded with {patch.use_tool}."
        )
    if not changes:
        return retry_guidance(tool, signature)
    if len(changes) == 1 and changes[0].op == "rename":
        old, new = changes[0].argument, changes[0].new_argument
        return f"{tool} now expects `{new}` instead of `{old}`: calls with `{old}`{failed}."
    if len(changes) == 1 and changes[0].op == "add":
        clause = change_clause(changes[0])
        return f"{clause[0].upper()}{clause[1:]} to {tool}: calls without it{failed}."
    return (
        f"When calling {tool}, {_join(change_clause(c) for c in changes)}: "
        f"calls like that{failed} and succeeded {_after(changes)}."
    )


def _after(changes: list[ArgumentChange]) -> str:
    if len(changes) > 1:
        return "after these changes"
    if changes[0].op == "reformat" and changes[0].rule == "strip_quotes":
        return "without them"
    if changes[0].op == "remove":
        return "without it"
    return "after the change"


def retry_guidance(tool: str, signature: str | None) -> str:
    """Guidance for a failure that the very same call, repeated, got past."""
    err = error_text(signature, tool)
    failed = f"failed transiently with '{err}'" if err else "failed transiently"
    return (
        f"Calls to {tool} {failed} and worked when repeated unchanged; "
        "retry after a short back-off."
    )


def pitfall_guidance(tool: str, signature: str | None, arguments_json: str | None = None) -> str:
    """Guidance for a failure nobody recovered from yet: the error (it often states the rule),
    the argument it is about, and what to check before the call. Never "avoid this call": the
    task may need it."""
    err = error_text(signature, tool)
    names = _argument_names(arguments_json)
    fault = fault_arguments(err, names) or (names if len(names) == 1 else [])
    head = f"{tool} fails with '{err}'" if err else f"{tool} fails"
    about = f" (about {_join(f'`{a}`' for a in fault[:2])})" if fault else ""
    return f"{head}{about}. Before calling {tool}, {_check_clause(err, fault)}."


def _check_clause(err: str, fault: list[str]) -> str:
    """What to verify first: a value that must exist, or the rule the error states."""
    subject = _join(f"`{a}`" for a in fault[:2]) if fault else "the arguments"
    plural = len(fault[:2]) != 1
    if _NOT_FOUND.search(err):
        what = "exact values" if plural else "an exact value"
        return (f"make sure {subject} {'are' if plural else 'is'} {what} you looked up or the "
                "user confirmed (do not guess or reformat)")
    return (f"check that {subject} {'meet' if plural else 'meets'} this rule (look up the "
            "current details first) and pick the call that fits if not")


_NOT_FOUND = re.compile(r"(?i)\b(not found|no such|does not exist|unknown|invalid)\b")


def instance_guidance(tool: str, signature: str | None, changes: list[ArgumentChange]) -> str:
    """Guidance for a recovery whose new values are instance data (ids, values from the task or
    an earlier result): no constant to copy, so say where the right value comes from."""
    err = error_text(signature, tool)
    failed = _failed_with(err)
    names = _join(f"`{c.argument}`" for c in changes)
    clauses = _join(_source_clause(c) for c in changes)
    return (f"When calling {tool}, {clauses}: calls{failed} and worked with another {names}. "
            f"Check the value before calling {tool}.")


def _source_clause(change: ArgumentChange) -> str:
    rule, a = change.rule or "", change.argument
    if rule.startswith(FROM_RESULT):
        return f"use the `{a}` value from {rule[len(FROM_RESULT):]}'s result"
    if rule == FROM_TASK:
        return f"take `{a}` exactly as the task states it"
    return f"look the `{a}` value up first (it differs per task: do not guess or reuse one)"


def preference_guidance(correction: str, user: str | None) -> str:
    """A user's own correction, quoted and attributed: it is their preference, not a fact."""
    text = normalize_text(correction)
    if len(text) > MAX_CORRECTION_CHARS:
        text = text[: MAX_CORRECTION_CHARS - 3].rstrip() + "..."
    who = f"User {user}" if user else "A user"
    whose = f"{user}'s" if user else "their"
    return f'{who} asked: "{text}". Follow this in {whose} tasks.'


def normalize_text(text: str) -> str:
    """Collapse whitespace, so re-typed copies of the same text compare equal."""
    return " ".join(text.split())


def _argument_names(arguments_json: str | None) -> list[str]:
    if not arguments_json:
        return []
    try:
        arguments = json.loads(arguments_json)
    except ValueError:
        return []
    return sorted(arguments) if isinstance(arguments, dict) else []


def _failed_with(err: str) -> str:
    return f" failed with '{err}'" if err else " failed"


def _join(parts: Iterable[str]) -> str:
    items = list(parts)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
