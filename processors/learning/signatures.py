"""Error signatures: the same failure, seen in different sessions, gets the same text.

A signature is `"<tool>: <normalized error>"`. Normalizing replaces everything that varies between
occurrences of one failure (ids, numbers, dates, paths, echoed argument values) by a placeholder and
keeps the words, so two different failures stay different:

    >>> normalize_error("Order 5f0c2a9e-1b2c-4d3e-8f90-0a1b2c3d4e5f not found at 2024-05-01T10:00Z")
    'Order <uuid> not found at <date>'
    >>> error_signature("Search", 'Could not find ["Milhouse"]. Similar: [\\'Milhouse Simpson\\']')
    'Search: Could not find [<quoted>]. Similar: <list>'
    >>> error_signature("Search", "Could not find [Milhouse]. Similar: ['Milhouse Van Houten']")
    'Search: Could not find [<str>]. Similar: <list>'

Placeholders: <uuid> <hex> <id> <email> <url> <path> <date> <num> <str> <list>, plus <quoted>.
`<id>` is also any code naming one instance: a letter or `#` first and at least two digits
(`FL0452`, `A12345`, `#W2378156`, `gift_card_123`); a word with one digit (`S3`, `OAuth2`) stays.

Bounded work: only the first MAX_INPUT_CHARS characters of an error are read, before any regex,
and every pass is linear in that text (the quote/bracket scan finds every match in one pass; no
pattern rescans a token from each of its characters), so a 32 KB hex dump costs what 1 KB does.

Echoed values in square brackets (the ReAct environment echoes the query: `Could not find [X]`):
  * a bracket whose whole content is one quoted string becomes `[<quoted>]`, any other single
    value `[<str>]`. They are kept apart on purpose: `Could not find ["X"]` is the failure a lesson
    can fix ("do not quote the query"), while `Could not find [X]` means the page does not exist;
    merging them would blur a recoverable failure into an unrecoverable one;
  * a bracket after `:` or `=` (`Similar: [...]`), an empty one, or one holding several quoted or
    numeric items is a listing of values: `<list>`, also when the log cut it off before its `]`.
    Unquoted text with commas (`[Lexington, Kentucky]`) is one echoed value: `[<str>]`;
  * brackets attached to a name (`Search[<topic>]`, `rows[3]`) are code, kept with their content
    normalized, and so are tags like `[Errno 2]` or `[SSL: CERTIFICATE_VERIFY_FAILED]`.
Three-digit HTTP status codes after `HTTP`/`status`/`status code`/`error code` are kept: a 429 and
a 500 are different failures, not different ids. The result is capped at MAX_LENGTH characters,
cut at a word boundary. `normalize_error` is idempotent.

Pure: no I/O, no clock; only `re`.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from functools import lru_cache

MAX_LENGTH = 200
#: Raw error text kept before any regex (the rest cannot change the signature).
MAX_INPUT_CHARS = 1024
#: Nesting levels of attached brackets (`f[g[h[...]]]`) normalized; deeper ones are <str>.
MAX_DEPTH = 4

_PLACEHOLDER = r"<[a-z_]+>"
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"
_WEEKDAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,?\s+"
_TIME = r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:\s?[AaPp]\.?[Mm]\.?)?"

_URL = re.compile(r"(?<![\w>+.-])[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"`<>\[\]()]+")
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PATHS = (
    re.compile(r"(?<![\w.<>/:])(?:~|\.{1,2})?(?:/[\w.@+%-]+){2,}/?"),  # /var/log/x, ~/a/b
    re.compile(r"(?<![\w.<>/:])(?:~|\.{1,2})/[\w.@+%-]+"),  # ./x, ~/x
    re.compile(r"\b[A-Za-z]:\\[^\s'\"`<>]+"),  # C:\Users\x
    re.compile(r"(?<![\w/<.-])[\w.-]+(?:/[\w.-]+)+\.[A-Za-z][A-Za-z0-9]{0,4}\b"),  # src/a.py
)
_UUID = re.compile(
    r"(?<![0-9A-Za-z>])[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"(?![0-9A-Za-z<])"
)
_DATES = (
    re.compile(
        r"(?<![\w.>])\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)?"
        r"(?:Z|[+-]\d{2}:?\d{2}\b)?"
    ),
    re.compile(rf"(?<![\w.>])(?:{_WEEKDAY})?\d{{1,2}}[ -]{_MONTH}[ -]\d{{2,4}}\b"),
    re.compile(rf"(?<![\w.>])(?:{_WEEKDAY})?{_MONTH} \d{{1,2}}(?:st|nd|rd|th)?,? \d{{4}}\b"),
    re.compile(r"(?<![\w./>])\d{1,4}[/.-]\d{1,2}[/.-]\d{2,4}(?![\w/])"),
    re.compile(rf"(?<![\w.:>]){_TIME}(?:\s?(?:Z|UTC|GMT)\b)?(?![\w:])"),
)
_DATE_RUN = re.compile(r"<date>(?:(?:[\s,]+|T)<date>)+")
_HEX = re.compile(
    r"(?<![0-9A-Za-z>])(?:0[xX][0-9a-fA-F]+|(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])"
    r"[0-9a-fA-F]{8,})(?![0-9A-Za-z<])"
)
_ID = re.compile(r"(?<![\w>-])(?=(?:[\w-]*\d){2})(?=(?:[\w-]*[A-Za-z]){2})[\w-]{16,}(?![\w-])")
#: A code naming one instance: a letter (or `#`) first, at least two digits (`FL0452`, `#W2378156`,
#: `gift_card_123`). One digit is a name, not an instance (`S3`, `OAuth2`, `utf8`).
_CODE = re.compile(r"(?<![\w<>#-])#?(?=[A-Za-z])(?=(?:[A-Za-z_-]*\d){2})[\w-]+")
_SCIENTIFIC = re.compile(r"(?<![\w.>])\d+(?:\.\d+)?[eE][-+]?\d+(?![\w.])")  # before <hex> eats it
_NUMBER = re.compile(r"(?<![A-Za-z<])\d+(?:[.,]\d+)*")
_STATUS_BEFORE = re.compile(
    r"(?i)(?:\bhttp(?:/(?:[\d.]+|<num>))?|\bstatus(?:[ _]code)?|\berror[ _]code)\s*[:=]?\s*$"
)
_SPACES = re.compile(r"\s+")
_ONLY_PLACEHOLDERS = re.compile(rf"\s*(?:{_PLACEHOLDER}\s*)+")
_TAG = re.compile(r"\s*(?:(?:Errno|WinError)\s+(?:<num>|\d+)|[A-Z][A-Z0-9_]*:.*)\s*", re.DOTALL)

_QUOTES = {'"': '"', "'": "'", "`": "`", "\u201c": "\u201d", "\u2018": "\u2019"}


def error_signature(tool: str, error: str) -> str:
    """The key under which failures are counted and lessons are triggered.

    Remembered for the last few thousand (tool, error head) pairs: a fleet repeats its failures,
    and normalizing one costs a dozen regex passes (it was 7% of the processors' time, once in
    assembly and again in the patterns step). Only the head that `normalize_error` reads is a
    key (and only tool names of a usual length), so its memory is bounded whatever the input."""
    if len(tool) > MAX_LENGTH:
        return f"{tool}: {normalize_error(error)}"
    return _signature(tool, error[:MAX_INPUT_CHARS])


@lru_cache(maxsize=4096)
def _signature(tool: str, error_head: str) -> str:
    return f"{tool}: {normalize_error(error_head)}"


def normalize_error(text: str) -> str:
    """Replace what varies between occurrences of one failure by placeholders (module doc).

    Only the first MAX_INPUT_CHARS characters are read (before any regex), so the work per
    record is bounded whatever its size. The rewrite is repeated until nothing changes. Every
    rewrite that changes the text consumes characters outside placeholders (placeholders are
    never rewritten), so this ends -- usually after the confirming second pass -- and makes
    `normalize_error` idempotent by construction, even when a placeholder creates a word
    boundary that the raw text did not have.
    """
    text = text[:MAX_INPUT_CHARS]
    while True:
        rewritten = _normalize_once(text)
        if rewritten == text:
            return rewritten
        text = rewritten


def _normalize_once(text: str) -> str:
    for replace in _REGEX_PASSES:
        text = replace(text)
    text = _scan(text)
    return _truncate(_SPACES.sub(" ", text).strip())


def _sub(pattern: re.Pattern[str], placeholder: str) -> Callable[[str], str]:
    return lambda text: pattern.sub(placeholder, text)


def _urls(text: str) -> str:
    """URLs lose trailing sentence punctuation before they become <url>."""

    def one(match: re.Match[str]) -> str:
        url = match.group(0)
        trimmed = url.rstrip(".,;:!?")
        return "<url>" + url[len(trimmed) :]

    return _URL.sub(one, text)


def _dates(text: str) -> str:
    for pattern in _DATES:
        text = pattern.sub("<date>", text)
    return _DATE_RUN.sub("<date>", text)


def _paths(text: str) -> str:
    for pattern in _PATHS:
        text = pattern.sub("<path>", text)
    return text


def _numbers(text: str) -> str:
    """Numbers become <num>, except HTTP-like status codes, which name the failure."""

    def one(match: re.Match[str]) -> str:
        value = match.group(0)
        is_status = len(value) == 3 and value[0] in "12345"
        if is_status and _STATUS_BEFORE.search(match.string, 0, match.start()):
            return value
        return "<num>"

    return _NUMBER.sub(one, text)


_REGEX_PASSES: tuple[Callable[[str], str], ...] = (
    _urls,
    _sub(_EMAIL, "<email>"),
    _paths,
    _sub(_UUID, "<uuid>"),
    _dates,
    _sub(_SCIENTIFIC, "<num>"),
    _sub(_HEX, "<hex>"),
    _sub(_ID, "<id>"),
    _sub(_CODE, "<id>"),
    _numbers,
)


# --- quoted values and brackets -------------------------------------------------------------
#
# Linear by construction: where each quote closes and which `]` matches each `[` are computed
# in one pass per text (`_Marks`), never by rescanning from every opening character (that was
# quadratic: 1,000 unclosed `[` took 0.8 s). Nesting is followed MAX_DEPTH levels deep.


def _is_word(text: str, index: int) -> bool:
    return 0 <= index < len(text) and (text[index].isalnum() or text[index] == "_")


class _Marks:
    """Quote ends and bracket matches of one text, each found once (see the section note).

    A quote opening at `start` (not inside a word: `don't`) closes at the first closing
    character after it that is not followed by a word character and not escaped (an odd run of
    backslashes right before it).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self._closers: dict[str, list[int]] = {}
        self.brackets = self._match_brackets()

    def quote_end(self, start: int) -> int:
        """Index just past the quoted string opening at `start`, or -1 if none opens there."""
        close = _QUOTES.get(self.text[start])
        if close is None or _is_word(self.text, start - 1):
            return -1
        closers = self._closers.get(close)
        if closers is None:
            closers = self._closers[close] = self._valid_closers(close)
        at = bisect.bisect_right(closers, start)
        return closers[at] + 1 if at < len(closers) else -1

    def _valid_closers(self, close: str) -> list[int]:
        text, found, backslashes = self.text, [], 0
        for i, char in enumerate(text):
            if char == close and backslashes % 2 == 0 and not _is_word(text, i + 1):
                found.append(i)
            backslashes = backslashes + 1 if char == "\\" else 0
        return found

    def _match_brackets(self) -> dict[int, int]:
        """`[` index -> index just past its `]`, quotes respected; unmatched ones are absent."""
        text, matches, stack, i = self.text, {}, [], 0
        while i < len(text):
            end = self.quote_end(i) if text[i] in _QUOTES else -1
            if end != -1:
                i = end
                continue
            if text[i] == "[":
                stack.append(i)
            elif text[i] == "]" and stack:
                matches[stack.pop()] = i + 1
            i += 1
        return matches


def _top_level_items(content: str) -> list[str]:
    """Split at commas outside quotes and nested brackets."""
    marks = _Marks(content)
    items: list[str] = []
    i, begin = 0, 0
    while i < len(content):
        end = marks.quote_end(i) if content[i] in _QUOTES else marks.brackets.get(i, -1)
        if end != -1:
            i = end
            continue
        if content[i] == ",":
            items.append(content[begin:i])
            begin = i + 1
        i += 1
    return [*items, content[begin:]]


def _is_one_quoted(item: str) -> bool:
    item = item.strip()
    return bool(item) and item[0] in _QUOTES and _Marks(item).quote_end(0) == len(item)


def _is_listing(content: str) -> bool:
    """Several items, each a quoted string or a placeholder: `['a', "b"]`, `[<num>, <num>]`.

    Unquoted text with commas (`[Lexington, Kentucky]`) is one value, not a list."""
    items = _top_level_items(content)
    return len(items) > 1 and all(
        _is_one_quoted(item) or _ONLY_PLACEHOLDERS.fullmatch(item) for item in items
    )


def _after_label(text: str, start: int) -> bool:
    """True when the bracket at `start` is a value after `name:` or `name=` (a listing)."""
    before = text[:start].rstrip()
    return before.endswith((":", "="))


def _bracket(text: str, start: int, end: int, depth: int) -> str:
    """Placeholder (or normalized code) for the bracket text[start:end]."""
    content = text[start + 1 : end - 1]
    attached = start > 0 and (_is_word(text, start - 1) or text[start - 1] in ")]")
    if content and _ONLY_PLACEHOLDERS.fullmatch(content):
        return text[start:end]
    if attached or _TAG.fullmatch(content):
        return "[" + (_scan(content, depth + 1) if depth < MAX_DEPTH else "<str>") + "]"
    if not content.strip() or _after_label(text, start) or _is_listing(content):
        return "<list>"
    if _is_one_quoted(content):
        return "[<quoted>]"
    return "[<str>]"


def _scan(text: str, depth: int = 0) -> str:
    """Replace quoted strings by <str> and classify square brackets (see the module doc)."""
    marks = _Marks(text)
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char in _QUOTES and (end := marks.quote_end(i)) != -1:
            out.append("<str>")
            i = end
        elif char == "[" and (end := marks.brackets.get(i, -1)) != -1:
            out.append(_bracket(text, i, end, depth))
            i = end
        elif char == "[" and _after_label(text, i):
            out.append("<list>")  # a listing the log cut off before its `]`
            i = len(text)
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _truncate(text: str) -> str:
    """Cap at MAX_LENGTH, cutting between words so no token is left half (and re-normalizable)."""
    if len(text) <= MAX_LENGTH:
        return text
    cut = text[: MAX_LENGTH + 1].rfind(" ")
    return text[:cut].rstrip() if cut > 0 else text[:MAX_LENGTH]
