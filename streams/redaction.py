"""PII redaction before the log: personal data in episode texts becomes a placeholder.

The Recorder (and every other path that writes episode events) passes each event through a
`Redactor` before encoding it, so an e-mail, phone number, card number, national id, IBAN, API key
or password typed by a user never reaches Kafka, and therefore no signal, lesson or store either.
Placeholders (`<email>`, `<card>`, ...) keep the text useful: error signatures and lessons built on
`card <card> declined` still match across users.

It must stay cheap on the emit hot path: one precompiled alternation per redactor, one `search` per
text field when nothing matches (the common case), texts cut to `max_chars` before any regex, and
only the payload fields that can carry user text are looked at. Validators (Luhn for cards, ISO
7064 mod 97 for IBANs) keep look-alike ids from being destroyed. Pure: no Kafka import.

    >>> Redactor.default().redact("mail jane.doe@example.com, card 4111 1111 1111 1111")
    ('mail <email>, card <card>', Counter({'email': 1, 'card': 1}))
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Protocol

from kaizen.errors import KaizenError
from kaizen.schemas import model
from kaizen.streams.limits import cut_text

#: Longest text looked at; the rest is dropped (with a marker) rather than scanned or kept raw.
DEFAULT_MAX_CHARS = 32_768

#: JSON argument names whose whole string value is a secret, whatever it looks like.
SECRET_KEYS = re.compile(
    r"(?i)^(?:.*[_.-])?(?:password|passwd|pwd|passcode|secret|token|api[_-]?key|access[_-]?key|"
    r"private[_-]?key|pin|cvv|cvc|ssn|authorization|auth)$"
)


def luhn_ok(text: str) -> bool:
    """The card-number checksum: a random 16-digit number passes only one time in ten."""
    digits = [int(c) for c in text if c.isdigit()]
    total = 0
    for i, digit in enumerate(reversed(digits)):
        if i % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    """ISO 13616 check digits: move the first four characters to the end, read letters as
    10..35, and the number mod 97 must be 1."""
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _valid_iban_length(text: str) -> int:
    """Length of the longest prefix of `text` (ending on a group) that is a valid IBAN."""
    for end in range(len(text), 14, -1):
        if (end == len(text) or text[end] == " ") and iban_ok(text[:end]):
            return end
    return 0


def _whole_if(check: Callable[[str], bool]) -> Callable[[str], int]:
    return lambda text: len(text) if check(text) else 0


def _phone_digits_ok(text: str) -> int:
    return len(text) if 8 <= sum(c.isdigit() for c in text) <= 15 else 0


#: A cheap test on (text, lower-cased text, digit count) that must pass before a detector's regex
#: runs at all: most texts carry no `@`, few digits and none of the keywords, so the hot path is a
#: few C-level string scans instead of a regex alternation tried at every position.
Gate = Callable[[str, str, int], bool]

_TOKEN_PREFIXES = ("sk-", "sk_", "pk_", "rk_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
                   "github_pat_", "AKIA", "xox", "AIza", "eyJ")


_SECRET_WORDS = ("pass", "pwd", "secret", "api")


def _token_gate(text: str, lower: str, digits: int) -> bool:
    return "bearer" in lower or any(prefix in text for prefix in _TOKEN_PREFIXES)


#: The keyword gates of the built-in detectors (email, token, secret) as two searches, and the
#: fewest digits any other built-in gate wants: a text below that with no keyword passes no gate,
#: which `Redactor._gated` sees without calling nine gates (most tool arguments are such texts).
_ANY_PREFIX = re.compile("|".join(re.escape(p) for p in _TOKEN_PREFIXES))
_ANY_LOWER_WORD = re.compile("|".join(("bearer", *_SECRET_WORDS)))
_FEWEST_GATE_DIGITS = 3


def _passes_no_builtin_gate(text: str, lower: str, digits: int) -> bool:
    return (digits < _FEWEST_GATE_DIGITS and "@" not in text
            and _ANY_LOWER_WORD.search(lower) is None and _ANY_PREFIX.search(text) is None)


@dataclass(frozen=True)
class Detector:
    """One kind of personal data. `pattern` may name a group `v`: only that part is replaced (the
    keyword before a PIN stays). `valid` returns how many leading characters of the match (or of
    group `v`) really are the thing, 0 for a look-alike. `gate` (None: always) says whether the
    regex is worth running on a text."""

    kind: str
    pattern: str
    valid: Callable[[str], int] | None = None
    gate: Gate | None = None


BUILTIN: tuple[Detector, ...] = (
    Detector("email", r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@"
                      r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
             gate=lambda text, lower, digits: "@" in text),
    Detector("token", r"\b(?:sk|pk|rk)[-_](?:live_|test_|proj-)?[A-Za-z0-9_-]{16,}"
                      r"|\bgh[pousr]_[A-Za-z0-9]{30,}|\bgithub_pat_[A-Za-z0-9_]{30,}"
                      r"|\bAKIA[0-9A-Z]{16}\b|\bxox[abposr]-[A-Za-z0-9-]{10,}"
                      r"|\bAIza[0-9A-Za-z_-]{35}"
                      r"|\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
                      r"|(?i:\bbearer\s+)(?P<v>[A-Za-z0-9._~+/-]{16,}=*)", gate=_token_gate),
    Detector("secret", r"(?i:\b(?:password|passwd|passcode|pwd|api[_ -]?key|secret)"
                       r"(?:\s+is)?\s*[:=]?\s*)(?P<v>[^\s\"',;]{4,})",
             gate=lambda text, lower, digits: any(k in lower for k in _SECRET_WORDS)),
    Detector("pin", r"(?i:\b(?:pin|cvv|cvc)(?:\s+(?:code|number))?(?:\s+is)?\s*[:=#]?\s*)"
                    r"(?P<v>\d{3,8})(?!\d)",
             gate=lambda text, lower, digits: digits >= 3 and any(
                 k in lower for k in ("pin", "cvv", "cvc"))),
    Detector("iban", r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b",
             _valid_iban_length, gate=lambda text, lower, digits: digits >= 4),
    Detector("card", r"(?<![\d.])[2-6](?:[ -]?\d){12,18}(?![\d])", _whole_if(luhn_ok),
             gate=lambda text, lower, digits: digits >= 13),
    Detector("ssn", r"(?<![\d-])(?!000|666|9\d\d)\d{3}(?P<ssnsep>[- ])(?!00)\d{2}(?P=ssnsep)"
                    r"(?!0000)\d{4}(?![\d-])"
                    r"|(?i:\b(?:ssn|social security(?: number)?)\b\D{0,12})(?P<v>\d{9})(?!\d)",
             gate=lambda text, lower, digits: digits >= 9),
    Detector("national_id", r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b",
             gate=lambda text, lower, digits: digits >= 6),
    Detector("phone", r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}(?!\d)"
                      r"|(?<![\d-])(?:\(\d{3}\) ?|\d{3}[.-])\d{3}[.-]\d{4}(?![\d-])",
             _phone_digits_ok, gate=lambda text, lower, digits: digits >= 8),
)

_DIGITS = b"0123456789"


def _count_digits(text: str) -> int:
    """ASCII digits in `text`; bytes.translate is a C loop (str.translate is 20x slower)."""
    data = text.encode("utf-8", "surrogatepass")
    return len(data) - len(data.translate(None, _DIGITS))


@dataclass(frozen=True, slots=True)
class Span:
    """A piece of personal data another engine found: text[start:end] is a `kind`."""

    start: int
    end: int
    kind: str


class TextAnalyzer(Protocol):
    """An extra detector engine (e.g. Presidio) run after the regexes on the redacted text."""

    def find(self, text: str) -> Sequence[Span]: ...


class RedactionError(KaizenError, ValueError):
    """A user-supplied pattern that cannot be compiled; the message names it."""


class Redactor:
    """Replaces personal data in texts and episode events with `<kind>` placeholders."""

    def __init__(
        self,
        detectors: Iterable[Detector] = BUILTIN,
        *,
        max_chars: int = DEFAULT_MAX_CHARS,
        analyzers: Sequence[TextAnalyzer] = (),
    ) -> None:
        self.detectors = tuple(detectors)
        self.max_chars = max_chars
        self.analyzers = tuple(analyzers)
        self._compiled = [_compile(d.pattern, d.kind) for d in self.detectors]
        self._by_mask: dict[int, re.Pattern[str]] = {}
        # only the built-in detectors (by identity): their gates are known, so a text that
        # passes none of them is seen at once (`_passes_no_builtin_gate`)
        self._builtin_only = all(any(d is b for b in BUILTIN) for d in self.detectors)
        self._combined((1 << len(self.detectors)) - 1)  # every pattern compiles together, now

    @classmethod
    def default(cls, patterns: Mapping[str, str] | None = None, **kwargs: Any) -> Redactor:
        """The built-in detectors, after the user's own `{kind: regex}` patterns."""
        own = [Detector(kind, pattern) for kind, pattern in (patterns or {}).items()]
        return cls([*own, *BUILTIN], **kwargs)

    @classmethod
    def disabled(cls) -> Redactor:
        """No detectors, no cut: events pass unchanged (for logs known to carry no personal
        data)."""
        return cls((), max_chars=sys.maxsize)

    def redact(self, text: str) -> tuple[str, Counter[str]]:
        """The text with personal data replaced, and how many of each kind were replaced."""
        counts: Counter[str] = Counter()
        return self._text(text, counts), counts

    def redact_event(self, event: model.EpisodeEvent, counts: Counter[str]) -> model.EpisodeEvent:
        """The event with its user-text fields redacted (the same object when nothing matched);
        what was replaced is added to `counts`."""
        payload = event.payload
        changes = _redact_fields(self, payload, counts)
        return replace(event, payload=replace(payload, **changes)) if changes else event

    # --- internals -----------------------------------------------------------------------

    def _text(self, text: str, counts: Counter[str]) -> str:
        if len(text) > self.max_chars:  # the Recorder's own marker (streams.limits)
            counts["truncated"] += 1
            text = cut_text(text, self.max_chars)
        pattern = self._gated(text)
        if pattern is not None and pattern.search(text) is not None:
            text = pattern.sub(lambda m: self._replace(m, counts), text)
        for analyzer in self.analyzers:
            text = _apply_spans(text, analyzer.find(text), counts)
        return text

    def _gated(self, text: str) -> re.Pattern[str] | None:
        """The alternation of the detectors whose gate passes on `text` (None: no detector)."""
        lower, digits = text.lower(), _count_digits(text)
        if self._builtin_only and _passes_no_builtin_gate(text, lower, digits):
            return None
        mask = self._mask(text, lower, digits)
        return self._combined(mask) if mask else None

    def _mask(self, text: str, lower: str, digits: int) -> int:
        """Bit i set: detector i's gate passes on `text` (so its regex is worth running)."""
        mask = 0
        for i, detector in enumerate(self.detectors):
            if detector.gate is None or detector.gate(text, lower, digits):
                mask |= 1 << i
        return mask

    def _combined(self, mask: int) -> re.Pattern[str]:
        pattern = self._by_mask.get(mask)
        if pattern is None:
            alternation = "|".join(
                f"(?P<k{i}>{d.pattern.replace('(?P<v>', f'(?P<v{i}>')})"
                for i, d in enumerate(self.detectors) if mask >> i & 1
            )
            pattern = self._by_mask[mask] = _compile(alternation, "combined")
        return pattern

    def _replace(self, match: re.Match[str], counts: Counter[str]) -> str:
        index = int((match.lastgroup or "k0")[1:])
        return self._replace_as(index, match, f"v{index}", counts)

    def _replace_as(self, index: int, match: re.Match[str], group: str,
                    counts: Counter[str]) -> str:
        detector, whole = self.detectors[index], match.group(0)
        value = match.group(group) if group in match.re.groupindex else None
        start = match.start(group) - match.start(0) if value is not None else 0
        value = whole[start:] if value is None else value
        size = detector.valid(value) if detector.valid else len(value)
        if size == 0:  # a look-alike: later detectors may still find something inside it
            return self._rest(index + 1, whole, counts)
        counts[detector.kind] += 1
        end = start + size
        return whole[:start] + f"<{detector.kind}>" + self._rest(index + 1, whole[end:], counts)

    def _rest(self, first: int, text: str, counts: Counter[str]) -> str:
        if not text:
            return text
        for index in range(first, len(self.detectors)):
            pattern = self._compiled[index]
            if pattern.search(text):
                return pattern.sub(partial(self._replace_as, index, group="v", counts=counts),
                                   text)
        return text


def _compile(pattern: str, kind: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as error:
        raise RedactionError(
            f"redaction pattern {kind!r} does not compile: {error} (use scoped flags like "
            f"(?i:...) rather than a leading (?i))"
        ) from error


def _apply_spans(text: str, spans: Sequence[Span], counts: Counter[str]) -> str:
    """Replace non-overlapping spans, left to right; a span inside a placeholder is ignored."""
    out, at = [], 0
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if span.start < at or "<" in text[span.start:span.end]:
            continue
        out += [text[at:span.start], f"<{span.kind}>"]
        counts[span.kind] += 1
        at = span.end
    return "".join(out) + text[at:] if out else text


def _redact_fields(
    redactor: Redactor, payload: model.EpisodePayload, counts: Counter[str]
) -> dict[str, Any]:
    """The changed user-text fields of one payload kind (task, content, arguments, result,
    error, correction, recall query)."""
    changes: dict[str, Any] = {}
    for name in _TEXT_FIELDS.get(type(payload), ()):
        value = getattr(payload, name)
        if value:
            redacted = redactor._text(value, counts)  # noqa: SLF001 - same module
            if redacted != value:
                changes[name] = redacted
    if isinstance(payload, model.ToolCall):
        arguments = redact_arguments(redactor, payload.arguments_json, counts)
        if arguments != payload.arguments_json:
            changes["arguments_json"] = arguments
    return changes


_TEXT_FIELDS: dict[type, tuple[str, ...]] = {
    model.EpisodeStarted: ("task",),
    model.LlmCall: ("content",),
    model.ToolResult: ("error", "output"),
    model.Feedback: ("correction",),
    model.Recall: ("query",),
}


def redact_arguments(redactor: Redactor, arguments_json: str, counts: Counter[str]) -> str:
    """Tool-call arguments, redacted value by value so the JSON stays valid; a value under a
    secret-looking key (`password`, `api_key`, `pin`, ...) is replaced whole."""
    text = arguments_json
    if len(text) <= redactor.max_chars and "\\" not in text and not _has_secret_key(text):
        pattern = redactor._gated(text)  # noqa: SLF001 - same module
        if pattern is None or pattern.search(text) is None:
            return text
    try:
        value = json.loads(text)
    except ValueError:
        return redactor._text(text, counts)  # noqa: SLF001 - not JSON: redact as plain text
    return json.dumps(_walk(redactor, value, counts), sort_keys=True)


_KEY_HINTS = re.compile("pass|secret|token|key|pin|cvv|cvc|ssn|auth|pwd")


def _has_secret_key(text: str) -> bool:
    return _KEY_HINTS.search(text.lower()) is not None


def _walk(redactor: Redactor, value: Any, counts: Counter[str], key: str = "") -> Any:
    if isinstance(value, str):
        if key and SECRET_KEYS.match(key) and value:
            counts["secret"] += 1
            return "<secret>"
        return redactor._text(value, counts)  # noqa: SLF001 - same module
    if isinstance(value, dict):
        return {k: _walk(redactor, v, counts, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(redactor, v, counts, key) for v in value]
    if isinstance(value, int | float) and key and SECRET_KEYS.match(key):
        counts["secret"] += 1
        return "<secret>"
    return value
