"""Signatures on real-world codes and on adversarial texts (issue 10 item 4, issue 13 item 2).

Codes that identify one instance (`FL0452`, `A12345`, `#W2378156`, `gift_card_123`) are one
placeholder, so one failure is one signature. Every text is cut to MAX_INPUT_CHARS before any
regex: the signature of a text depends only on its first MAX_INPUT_CHARS characters, whatever
follows (a 32 KB hex dump, a listing of a million ids), so the work per record is bounded.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaizen.processors.learning.signatures import (
    MAX_INPUT_CHARS,
    MAX_LENGTH,
    error_signature,
    normalize_error,
)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Flight FL0452 not found", "Flight BA0091 not found"),
        ("User A12345 missing", "User Z99871 missing"),
        ("Order #W2378156 not found", "Order #W0001 not found"),
        ("gift_card_123 balance is too low", "gift_card_98765 balance is too low"),
        ("Payment credit_card_9513926 not found", "Payment paypal_1234 not found"),
        ("Item ABC-12345 unavailable", "Item XY-99 unavailable"),
    ],
)
def test_alphanumeric_codes_are_one_placeholder(first: str, second: str) -> None:
    assert normalize_error(first) == normalize_error(second)
    assert not any(ch.isdigit() for ch in normalize_error(first))


def test_a_code_reads_as_id_and_keeps_the_words_around_it() -> None:
    assert normalize_error("Order #W2378156 not found") == "Order <id> not found"
    assert normalize_error("gift_card_123 balance is too low") == "<id> balance is too low"


def test_words_with_one_digit_are_not_codes() -> None:
    """`OAuth2`, `utf8` and `S3` name things, not instances: they stay."""
    assert normalize_error("S3 bucket denied over OAuth2 with utf8") == (
        "S3 bucket denied over OAuth2 with utf8"
    )


_ADVERSARIAL = st.sampled_from(
    [
        "0123456789abcdef",  # hex dump
        "1234567890",  # digits
        "'a ",  # quotes that never close
        '"',
        "[",  # brackets that never close
        '["',
        "[[",
        "]]",
        "x1-",  # a token that never ends
        "a@",
        "a/",
        "\\",
        "1.",
        "<num>",
    ]
)


@settings(max_examples=60, deadline=None)
@given(
    head=st.text(max_size=40),
    unit=_ADVERSARIAL,
    repeat=st.integers(min_value=1, max_value=3 * MAX_INPUT_CHARS),
    tail=st.text(max_size=40),
)
def test_only_the_first_max_input_chars_count(head: str, unit: str, repeat: int, tail: str) -> None:
    """The cut is applied before anything else: what follows it cannot change the signature."""
    text = head + unit * repeat + tail
    cut = normalize_error(text[:MAX_INPUT_CHARS])
    assert normalize_error(text) == cut
    assert len(cut) <= MAX_LENGTH
    assert normalize_error(cut) == cut


def test_deeply_nested_brackets_do_not_exhaust_the_stack() -> None:
    """2,000 nested brackets used to recurse once per level (a RecursionError in a processor)."""
    text = "Bad value " + "[" * 2000 + "x" + "]" * 2000
    assert normalize_error(text).startswith("Bad value")


def test_a_32kb_hex_dump_is_one_placeholder_run() -> None:
    dump = "Checksum mismatch: " + "deadbeef01" * 3300
    assert error_signature("upload", dump).startswith("upload: Checksum mismatch: <hex>")


def test_a_quote_closed_after_the_cut_counts_as_unclosed() -> None:
    """Without the cut, a quote closed 50 KB later decided the signature (and cost a rescan)."""
    text = "Bad input '" + "a" * 50_000 + "' rejected"
    assert normalize_error(text) == normalize_error(text[:MAX_INPUT_CHARS])
