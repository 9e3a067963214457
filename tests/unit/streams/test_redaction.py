"""The redaction step: every built-in kind goes, look-alikes stay, JSON arguments stay valid."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaizen.schemas import model
from kaizen.streams.redaction import (
    BUILTIN,
    RedactionError,
    Redactor,
    Span,
    iban_ok,
    luhn_ok,
)
from tests.factories import episode_event
from tests.pii_corpus import corpus

REDACTOR = Redactor.default()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_sample_of_the_seeded_corpus_survives(seed: int) -> None:
    for sample in corpus(seed, n=10):
        out, counts = REDACTOR.redact(sample.text)
        assert sample.value not in out, (sample.kind, sample.text, out)
        assert sum(counts.values()) >= 1


def test_every_builtin_kind_is_in_the_corpus_and_named_by_its_placeholder() -> None:
    kinds = {d.kind for d in BUILTIN}
    found: Counter[str] = Counter()
    for sample in corpus(4):
        found.update(REDACTOR.redact(sample.text)[1])
    assert kinds <= set(found)
    assert REDACTOR.redact("card 4111111111111111 now")[0] == "card <card> now"


@pytest.mark.parametrize("text", [
    "order 4111111111111112 not found",  # card-shaped, fails Luhn
    "refund to DE00370400440532013000",  # IBAN-shaped, wrong check digits
    "timestamp 1733061234567 ms",  # 13 digits, no card prefix
    "SSN-like 000-12-3456 and 666-12-3456",  # invalid SSN areas
    "invoice 1234567890 for 2024-01-01 12:00:00",
    "Search: Could not find [Foo Bar]. Similar: ['a', 'b']",
    "unknown field 'number' 17; timeout after 30s",
])
def test_look_alikes_and_ordinary_error_texts_are_kept(text: str) -> None:
    assert REDACTOR.redact(text) == (text, Counter())


def test_checksums() -> None:
    assert luhn_ok("4111 1111 1111 1111") and not luhn_ok("4111 1111 1111 1112")
    assert iban_ok("GB82WEST12345698765432") and not iban_ok("GB83WEST12345698765432")


def test_a_keyword_stays_and_only_the_value_goes() -> None:
    assert REDACTOR.redact("my PIN is 4821 and password: hunter22")[0] == (
        "my PIN is <pin> and password: <secret>"
    )
    assert REDACTOR.redact("Authorization: Bearer abcdefghijklmnop123")[0] == (
        "Authorization: Bearer <token>"
    )


def test_tool_arguments_stay_valid_json_and_secret_keys_go_whole() -> None:
    arguments = json.dumps({"to": "jane@example.com", "note": "line\n+44 207 946 0958",
                            "password": "x", "pin": 1234, "items": ["4111111111111111", 3]},
                           sort_keys=True)
    event = episode_event(model.ToolCall("c1", "mail.send", arguments))
    counts: Counter[str] = Counter()
    redacted = REDACTOR.redact_event(event, counts)
    assert isinstance(redacted.payload, model.ToolCall)
    assert json.loads(redacted.payload.arguments_json) == {
        "to": "<email>", "note": "line\n<phone>", "password": "<secret>", "pin": "<secret>",
        "items": ["<card>", 3],
    }
    assert counts == Counter({"email": 1, "phone": 1, "secret": 2, "card": 1})


def test_every_user_text_field_is_redacted_and_clean_events_are_the_same_object() -> None:
    pii = "reach me at a.b@example.org"
    payloads = [model.EpisodeStarted(pii), model.LlmCall("m", content=pii),
                model.ToolResult("c", "t", False, error=pii, output=pii),
                model.Feedback(correction=pii), model.Recall(["x"], query=pii)]
    for payload in payloads:
        counts: Counter[str] = Counter()
        redacted = REDACTOR.redact_event(episode_event(payload), counts)
        assert "a.b@example.org" not in repr(redacted.payload)
        assert counts["email"] >= 1
    clean = episode_event(model.ToolCall("c", "search", json.dumps({"q": "weather in Paris"})))
    assert REDACTOR.redact_event(clean, Counter()) is clean


def test_user_patterns_come_first_and_bad_ones_are_named() -> None:
    mine = Redactor.default({"employee": r"\bEMP-\d{6}\b"})
    assert mine.redact("badge EMP-123456, jane@x.io")[0] == "badge <employee>, <email>"
    with pytest.raises(RedactionError, match="'broken'"):
        Redactor.default({"broken": r"(unclosed"})


def test_long_texts_are_cut_before_any_regex() -> None:
    redactor = Redactor.default(max_chars=300)
    out, counts = redactor.redact("x " * 200 + "jane@example.com")
    assert "jane@example.com" not in out and counts["truncated"] == 1
    assert out.startswith("x x ") and out.endswith("[kaizen: truncated 116 of 416 bytes]")


def test_disabled_changes_nothing() -> None:
    event = episode_event(model.EpisodeStarted("jane@example.com " * 30_000))
    assert Redactor.disabled().redact_event(event, Counter()) is event


class _Spans:
    def find(self, text: str) -> list[Span]:
        at = text.find("Rossi")
        return [Span(at, at + 5, "person")] if at >= 0 else []


def test_an_extra_analyzer_runs_after_the_regexes() -> None:
    redactor = Redactor.default(analyzers=[_Spans()])
    assert redactor.redact("Mario Rossi, m@r.it")[0] == "Mario <person>, <email>"


# pieces the gates look for (keywords either case, token prefixes, '@', digits) and characters
# whose lower case is ASCII, mixed with plain text: the skip must never hide a detector
_PIECES = st.sampled_from(["@", "bearer", "BeArEr", "pass", "PWD", "Secret", "api", "ApI", "sk-",
                           "ghp_", "AKIA", "eyJ", "xox", "AIza", "pin", "cvv", "1", "7", "42",
                           "305", "\u0130", "\u212a", "\u00df", " ", "a", "Z", "_", "-", "{",
                           "\"", ":"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=12).map("".join))
def test_the_quiet_text_skip_picks_exactly_the_detectors_whose_gates_pass(text: str) -> None:
    lower, digits = text.lower(), sum(c in "0123456789" for c in text)
    mask = REDACTOR._mask(text, lower, digits)  # noqa: SLF001 - the gates as declared
    gated = REDACTOR._gated(text)  # noqa: SLF001 - with the skip
    assert gated is (REDACTOR._combined(mask) if mask else None)  # noqa: SLF001
    assert REDACTOR._builtin_only and not Redactor.default({"x": "y"})._builtin_only  # noqa: SLF001
