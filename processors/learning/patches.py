"""Tool-call patches: how a call that worked differed from the one that failed, as data.

`diff_arguments` describes the difference between the failed call's arguments and the working
call's as a list of `ArgumentChange`s; `apply_patch` replays that description on a *new* call, so
an agent can fix its next call before making it:

    >>> p = diff_arguments("Search", {"query": '"Milhouse"'}, {"query": "Milhouse"})
    >>> [(c.op, c.argument, c.rule) for c in p.changes]
    [('reformat', 'query', 'strip_quotes')]
    >>> apply_patch(p, "Search", {"query": '"Bart Simpson"'})
    ('Search', {'query': 'Bart Simpson'})

Operations (applied in order): `rename` (the same value under another key, possibly followed by a
`reformat` of the new key), `reformat` (the same key, the value transformed by a named rule),
`replace` (the same key, another value), `remove`, `add`. Rules are what makes a patch general:
`strip_quotes`, `strip`, `lowercase`, `uppercase`, `to_number`, `to_string`, and date format
changes `date:<from>-><to>` in strftime codes (e.g. `date:%d/%m/%Y->%Y-%m-%d`). A rule is applied to
the new call's own value; a value it does not fit (a date already in the target format) is left
as it is. `replace` and `add` set the recorded value.

Pure: only `json` and `time.strptime` (C-locale month names); no clock is read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from kaizen.schemas.model import ArgumentChange, ToolCallPatch

Args = dict[str, Any]

# Tried in this order: the first (from, to) pair that explains the change names the rule, so a
# date whose day and month are equal reads as day-first.
DATE_FORMATS = (
    "%Y-%m-%d",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d.%m.%Y",
    "%d-%m-%Y",
    "%m-%d-%Y",
    "%Y/%m/%d",
    "%Y%m%d",
    "%d %B %Y",
    "%d %b %Y",
    "%B %d, %Y",
    "%b %d, %Y",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%SZ",
)
_QUOTE_PAIRS = {'"': '"', "'": "'", "`": "`", "\u201c": "\u201d", "\u2018": "\u2019"}
_DATE_PREFIX = "date:"


def patch_is_empty(patch: ToolCallPatch) -> bool:
    """True when the patch changes nothing: the same call, retried, is what worked."""
    return not patch.changes and patch.use_tool is None


def diff_arguments(
    tool: str, failed_args: Args, working_args: Args, working_tool: str | None = None
) -> ToolCallPatch:
    """The patch that turns the failed call into the working one.

    Keys that disappeared and appeared with the same value (or with a value a rule explains) are
    renames, so `{"q": x}` -> `{"query": x}` generalizes to other calls; everything else is per key.
    """
    removed = sorted(k for k in failed_args if k not in working_args)
    added = sorted(k for k in working_args if k not in failed_args)
    changes = _renames(failed_args, working_args, removed, added)
    for key in sorted(k for k in failed_args if k in working_args):
        if not _same(failed_args[key], working_args[key]):
            changes.append(_value_change(key, failed_args[key], working_args[key]))
    changes += [ArgumentChange("remove", key) for key in removed]
    changes += [ArgumentChange("add", key, value_json=_json(working_args[key])) for key in added]
    use_tool = working_tool if working_tool not in (None, tool) else None
    return ToolCallPatch(tool=tool, changes=changes, use_tool=use_tool)


def apply_patch(patch: ToolCallPatch, tool: str, args: Args) -> tuple[str, Args]:
    """The tool to call and the arguments to call it with, after applying `patch` to a new call.

    A patch is about calls of `patch.tool`: a call of another tool is returned unchanged.
    Raises ValueError on an operation or rule this version does not know: guessing how to change
    an agent's call would be worse than not changing it.
    """
    new_args = dict(args)
    if tool != patch.tool:
        return tool, new_args
    for change in patch.changes:
        _apply_change(change, new_args)
    return patch.use_tool or tool, new_args


def apply_rule(rule: str, value: Any) -> Any:
    """The value transformed by a named rule; unchanged when the rule does not fit it."""
    if rule.startswith(_DATE_PREFIX):
        source, _, target = rule[len(_DATE_PREFIX) :].partition("->")
        return _reformat_date(value, source, target)
    transform = _RULES.get(rule)
    if transform is None:
        raise ValueError(f"unknown reformat rule {rule!r}")
    return transform(value)


def detect_rule(old: Any, new: Any) -> str | None:
    """The name of a rule turning `old` into `new`, or None if no known rule does."""
    for name, transform in _RULES.items():
        if not _same(old, new) and _same(transform(old), new):
            return name
    return _date_rule(old, new)


# --- building -------------------------------------------------------------------------------


def _renames(
    failed: Args, working: Args, removed: list[str], added: list[str]
) -> list[ArgumentChange]:
    """Pair removed with added keys (equal values first, then rule-related); consumes both."""
    changes: list[ArgumentChange] = []
    for by_rule in (False, True):
        for old_key in list(removed):
            for new_key in added:
                old, new = failed[old_key], working[new_key]
                rule = detect_rule(old, new) if by_rule else None
                if _same(old, new) or rule is not None:
                    changes.append(ArgumentChange("rename", old_key, new_argument=new_key))
                    if rule is not None:
                        changes.append(ArgumentChange("reformat", new_key, rule=rule))
                    removed.remove(old_key)
                    added.remove(new_key)
                    break
    return changes


def _value_change(key: str, old: Any, new: Any) -> ArgumentChange:
    rule = detect_rule(old, new) or _form_rule(old, new)
    if rule is not None:
        return ArgumentChange("reformat", key, rule=rule)
    return ArgumentChange("replace", key, value_json=_json(new))


def _form_rule(old: Any, new: Any) -> str | None:
    """A change of FORM alongside a change of content: a quoted value that failed followed by an
    unquoted one that worked (real ReAct agents retry `Search["X"]` as `Search[Y]`, not
    `Search[X]`).
    The content is task-specific; the form is the lesson that carries over to other tasks."""
    if isinstance(old, str) and isinstance(new, str) and _is_quoted(old) and not _is_quoted(new):
        return "strip_quotes"
    return None


def _is_quoted(text: str) -> bool:
    text = text.strip()
    return len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'"


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values: `1` and `True` differ, a number and the same number as float don't."""
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    return _json(a) == _json(b)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- applying -------------------------------------------------------------------------------


def _apply_change(change: ArgumentChange, args: Args) -> None:
    key = change.argument
    if change.op == "rename":
        if key in args and change.new_argument is not None:
            args[change.new_argument] = args.pop(key)
    elif change.op == "remove":
        args.pop(key, None)
    elif change.op in ("add", "replace"):
        if change.value_json is None:
            raise ValueError(f"{change.op} of {key!r} carries no value")
        args[key] = json.loads(change.value_json)
    elif change.op == "reformat":
        if change.rule is None:
            raise ValueError(f"reformat of {key!r} names no rule")
        if key in args:
            args[key] = apply_rule(change.rule, args[key])
    else:
        raise ValueError(f"unknown argument change {change.op!r}")


# --- rules ----------------------------------------------------------------------------------


def _strip_quotes(value: Any) -> Any:
    """Remove matching quotes around the whole value (any number of layers)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    while len(text) >= 2 and _QUOTE_PAIRS.get(text[0]) == text[-1]:
        text = text[1:-1].strip()
    return text if text != value.strip() else value


def _on_str(transform: Callable[[str], str]) -> Callable[[Any], Any]:
    return lambda value: transform(value) if isinstance(value, str) else value


def _to_number(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    for parse in (int, float):
        try:
            number = parse(value.strip())
        except ValueError:
            continue
        return number if number == number and abs(number) != float("inf") else value
    return value


def _to_string(value: Any) -> Any:
    return json.dumps(value) if _is_number(value) else value


_RULES: dict[str, Callable[[Any], Any]] = {
    "strip": _on_str(str.strip),
    "strip_quotes": _strip_quotes,
    "lowercase": _on_str(str.lower),
    "uppercase": _on_str(str.upper),
    "to_number": _to_number,
    "to_string": _to_string,
}


def _parse_date(value: str, fmt: str) -> time.struct_time | None:
    try:
        return time.strptime(value, fmt)
    except ValueError:
        return None


def _reformat_date(value: Any, source: str, target: str) -> Any:
    parsed = _parse_date(value, source) if isinstance(value, str) else None
    return value if parsed is None else time.strftime(target, parsed)


def _date_rule(old: Any, new: Any) -> str | None:
    if not (isinstance(old, str) and isinstance(new, str)) or old == new:
        return None
    for source in DATE_FORMATS:
        parsed = _parse_date(old, source)
        if parsed is None:
            continue
        for target in DATE_FORMATS:
            if target != source and time.strftime(target, parsed) == new:
                return f"{_DATE_PREFIX}{source}->{target}"
    return None
