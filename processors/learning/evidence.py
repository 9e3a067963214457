"""What a recovery's evidence says about the lesson it can teach (issue 10, curation rules).

Three questions curation and extraction ask of the raw facts of an episode:

- Is a value a patch set INSTANCE data (an id, a code, a number, a date, an amount; or a value
  the agent took from the task text or an earlier tool result)? Then it is no constant a patch
  can carry to other tasks: the lesson says where to get the value instead. Extraction marks a
  change whose value came from the episode with the rule `from_result:<tool>` or `from_task`;
  `is_instance_value` recognises the rest by its form (its normalised text has a placeholder).
- Does a substitute tool serve the failed tool's purpose? A failed `modify_pending_order_items`
  followed by a successful `cancel_pending_order` shares `order_id` but is the agent giving up on
  the change, not a better way to make it: the verbs differ. A substitute must do the same kind
  of thing: both read (get / find / search ..., or a tool named by a noun), or the same write
  verb. Extraction also requires a shared argument, and curation a successful episode.
- Which arguments is an error about? The words of the normalised error against the words of the
  argument names (`Non-delivered order cannot be exchanged` -> `order_id`).

Pure: no I/O, no clock.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from kaizen.processors.learning.signatures import normalize_error

FROM_RESULT = "from_result:"
FROM_TASK = "from_task"
#: Shortest string worth looking for in task texts and tool results (shorter ones match by chance).
MIN_SOURCE_CHARS = 4
READ_VERBS = frozenset({"get", "find", "search", "lookup", "list", "fetch", "query", "read",
                        "retrieve", "show", "check", "describe"})
WRITE_VERBS = frozenset({"update", "modify", "cancel", "create", "delete", "remove", "exchange",
                         "return", "add", "set", "send", "transfer", "book", "pay", "refund",
                         "change", "insert", "put", "post", "write", "submit", "approve",
                         "reject", "toggle", "enable", "disable", "reset", "suspend", "resume"})
_WORD = re.compile(r"[A-Za-z]+")
_STOP = frozenset({"by", "the", "a", "an", "of", "to", "for", "and", "or", "id", "ids", "is",
                   "be", "not", "should", "cannot", "error", "with", "in", "on", "at", "new"})


def is_instance_value(value_json: str | None) -> bool:
    """True for a JSON value that names one instance: numbers, ids, codes, dates, amounts,
    emails, urls (anything `normalize_error` replaces by a placeholder), or lists of them."""
    if value_json is None:
        return False
    try:
        value = json.loads(value_json)
    except ValueError:
        return False
    return _is_instance(value)


def _is_instance(value: Any) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, str):
        return "<" in normalize_error(value) and "<" not in value
    if isinstance(value, list):
        return any(_is_instance(v) for v in value)
    if isinstance(value, dict):
        return any(_is_instance(v) for v in value.values())
    return False


def is_instance_rule(rule: str | None) -> bool:
    """True for the marks extraction puts on a value taken from the episode itself."""
    return bool(rule) and (rule == FROM_TASK or str(rule).startswith(FROM_RESULT))


def value_source(
    value_json: str | None, task: str, results: Sequence[tuple[str, str]]
) -> str | None:
    """`from_result:<tool>` (latest result that contains the value), `from_task`, or None.

    `results` are (tool, output text) of the episode's earlier successful calls, oldest first.
    A list value counts when every string in it is found in one place."""
    needles = _strings(value_json)
    if not needles:
        return None
    for tool, output in reversed(results):
        if all(n in output for n in needles):
            return FROM_RESULT + tool
    if task and all(n in task for n in needles):
        return FROM_TASK
    return None


def _strings(value_json: str | None) -> list[str]:
    try:
        value = json.loads(value_json) if value_json is not None else None
    except ValueError:
        return []
    items = value if isinstance(value, list) else [value]
    found = [str(v) for v in items if isinstance(v, str | int) and not isinstance(v, bool)]
    if len(found) != len(items) or any(len(s) < MIN_SOURCE_CHARS for s in found):
        return []
    return found


def name_words(name: str) -> list[str]:
    """Lower-case words of an identifier: `find_user_id_by_email` -> find, user, id, by, email."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return [w.lower() for w in _WORD.findall(spaced)]


def same_purpose(failed_tool: str, substitute: str) -> bool:
    """True when `substitute` can do `failed_tool`'s job: both read (a read verb anywhere in the
    name, or no known write verb: `wiki`, `calculator`), or both make the same change (the same
    write verb). `modify_pending_order_items` -> `cancel_pending_order` is not."""
    return failed_tool != substitute and _purpose(failed_tool) == _purpose(substitute)


def _purpose(tool: str) -> str:
    words = name_words(tool)
    if any(w in READ_VERBS for w in words):
        return "read"
    return next((w for w in words if w in WRITE_VERBS), "read")


def _stem(word: str) -> str:
    word = word.lower()
    for suffix in ("ies", "es", "s", "ed"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def fault_arguments(error: str | None, argument_names: Iterable[str]) -> list[str]:
    """The arguments whose names share a word with the error text, best first (sorted)."""
    words = {_stem(w) for w in _WORD.findall(error or "")} - _STOP
    scored = []
    for name in argument_names:
        parts = {_stem(w) for w in name_words(name)} - _STOP
        overlap = len(parts & words)
        if overlap:
            scored.append((-overlap, name))
    return [name for _, name in sorted(scored)]
