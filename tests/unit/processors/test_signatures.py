"""Error signatures: one failure in many sessions gets one signature; different ones don't."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaizen.processors.learning.signatures import MAX_LENGTH, error_signature, normalize_error

# Observations copied from the Reflexion HotpotQA ReAct logs (/work/shared/data/reflexion/).
QUOTED = (
    "Could not find [\"Milhouse\"]. Similar: ['Milhouse Van Houten', 'Milhouse (disambiguation)']"
)
QUOTED_OTHER = (
    "Could not find [\"Wallace and Gromit\"]. Similar: ['Wallace and Gromit', 'A Close Shave', "
    '"Wallace and Gromit\'s Cracking Contraptions"]'
)
UNQUOTED = "Could not find [Milhouse]. Similar: ['Milhouse Van Houten', 'Milhouse Simpson']"
UNQUOTED_COMMA = (
    "Could not find [Fayette County, Kentucky airport]. Similar: ['Blue Grass Airport', "
    "'Lexington, Kentucky']"
)
UNQUOTED_APOSTROPHES = (
    "Could not find [Allo Allo characters]. Similar: [\"List of 'Allo 'Allo! characters\", "
    "'Lists of fictional characters']"
)
NO_PAGE = "Could not find that page, please try again."
INVALID = "Invalid Action. Valid Actions are Lookup[<topic>] Search[<topic>] and Finish[<answer>]."


def test_the_quoted_query_failure_is_one_signature_across_queries() -> None:
    assert error_signature("Search", QUOTED) == error_signature("Search", QUOTED_OTHER)
    assert error_signature("Search", QUOTED) == "Search: Could not find [<quoted>]. Similar: <list>"


def test_unquoted_not_found_is_one_signature_even_with_commas_and_apostrophes() -> None:
    expected = "Search: Could not find [<str>]. Similar: <list>"
    for error in (UNQUOTED, UNQUOTED_COMMA, UNQUOTED_APOSTROPHES):
        assert error_signature("Search", error) == expected


def test_quoted_and_unquoted_queries_are_different_failures() -> None:
    # The quoted form is recoverable ("don't quote"); the unquoted one means no such page.
    assert normalize_error(QUOTED) != normalize_error(UNQUOTED)


def test_fixed_messages_keep_their_words() -> None:
    assert normalize_error(NO_PAGE) == NO_PAGE
    assert normalize_error(INVALID) == INVALID
    assert len({normalize_error(e) for e in (NO_PAGE, INVALID, UNQUOTED, QUOTED)}) == 4


def test_the_tool_is_part_of_the_signature() -> None:
    assert error_signature("Search", NO_PAGE) != error_signature("Lookup", NO_PAGE)
    assert error_signature("Lookup", NO_PAGE) == f"Lookup: {NO_PAGE}"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (
            "order 5f0c2a9e-1b2c-4d3e-8f90-0a1b2c3d4e5f not found",
            "order 00000000-aaaa-4bbb-8ccc-111111111111 not found",
        ),
        ("object at 0x7f3a2b1c is not callable", "object at 0xdeadbeef is not callable"),
        (
            "trace 4bf92f3577b34da6a3ce929d0e0e4736 failed",
            "trace 0af7651916cd43dd8448eb211c80319c failed",
        ),
        ("user bob@example.com not allowed", "user alice.smith+x@corp.example.org not allowed"),
        (
            "GET https://api.example.com/v1/orders?id=5 timed out",
            "GET http://localhost:8080/x timed out",
        ),
        ("cannot open /var/data/2024/a.csv", "cannot open /home/me/b.txt"),
        ("cannot open C:\\Users\\me\\a.csv", "cannot open D:\\tmp\\b"),
        ("expired at 2024-05-01T10:00:00Z", "expired at 1999-12-31 23:59:59.123+02:00"),
        ("expired on 01/05/2024 10:30", "expired on 31.12.1999 23:59:59"),
        ("expired on March 5, 2024", "expired on 12 Dec 1999"),
        ("expired Mon, 02 Jan 2006 15:04:05 GMT", "expired Fri, 31 Dec 1999 23:59:59 GMT"),
        ("retry after 30 seconds (attempt 3 of 5)", "retry after 1.5 seconds (attempt 10 of 12)"),
        ("KeyError: 'customer_id'", 'KeyError: "order"'),
        ("token sk-abcdEFGH12345678ijkl rejected", "token sk-ZZZZ9999yyyyXXXX0000 rejected"),
        ("[Errno 2] No such file: '/tmp/x'", "[Errno 13] No such file: 'y.txt'"),
        ("expected one of [1, 2, 3], got 4", "expected one of ['a', 'b'], got 7"),
    ],
)
def test_what_varies_between_sessions_becomes_a_placeholder(first: str, second: str) -> None:
    assert normalize_error(first) == normalize_error(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("HTTP 429 Too Many Requests", "HTTP 500 Too Many Requests"),
        ("status code 404", "status code 503"),
        ("permission denied for /etc/x", "file not found: /etc/x"),
        ("Could not find [Milhouse]", 'Could not find ["Milhouse"]'),
    ],
)
def test_different_failures_stay_different(first: str, second: str) -> None:
    assert normalize_error(first) != normalize_error(second)


def test_placeholders_read_as_documented() -> None:
    assert normalize_error("order 5f0c2a9e-1b2c-4d3e-8f90-0a1b2c3d4e5f at 2024-05-01") == (
        "order <uuid> at <date>"
    )
    assert normalize_error("mail bob@example.com via https://x.org/a, file /a/b.txt") == (
        "mail <email> via <url>, file <path>"
    )
    assert normalize_error("don't use 'foo' in row 12") == "don't use <str> in row <num>"
    assert normalize_error("Similar: ['A', 'B") == "Similar: <list>"  # cut off by the log


def test_whitespace_is_collapsed_and_length_capped_between_words() -> None:
    assert normalize_error("  too \n many\t spaces  ") == "too many spaces"
    long = " ".join(["word"] * 100)
    capped = normalize_error(long)
    assert len(capped) <= MAX_LENGTH
    assert capped.split(" ") == ["word"] * len(capped.split(" "))


# --- properties -----------------------------------------------------------------------------

_EARLIEST = datetime(1900, 1, 1)  # noqa: DTZ001 -- only formatted, never compared to now
_words = (
    st.text(st.sampled_from("abcdefghij XYZ"), min_size=1, max_size=12).map(str.strip).filter(bool)
)
_templates = st.sampled_from(
    [
        "Could not find [{s}]. Similar: ['{s}', '{s} (film)']",
        'Could not find ["{s}"]. Similar: ["{s}"]',
        "order {u} failed after {n} retries at {d}",
        "request {h} to https://api.example.com/{s2}/{n} failed: '{s}'",
        "user {e} hit limit {n} on {d}",
        "cannot read /data/{s2}/{n}.csv: [Errno {n}]",
    ]
)
_values = st.fixed_dictionaries(
    {
        "s": _words,
        "s2": st.from_regex(r"[a-z]{1,8}", fullmatch=True),
        "n": st.integers(0, 10**9).map(str) | st.floats(0, 1e6, allow_nan=False).map(str),
        "u": st.uuids().map(str),
        "h": st.binary(min_size=8, max_size=20).map(lambda b: b.hex() + "a1"),
        "e": st.from_regex(r"[a-z]{1,8}@[a-z]{1,8}\.(com|org)", fullmatch=True),
        "d": st.datetimes(min_value=_EARLIEST).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S"))
        | st.dates(min_value=_EARLIEST.date()).map(lambda d: d.strftime("%d/%m/%Y")),
    }
)


@given(_templates, _values, _values)
def test_signature_is_stable_when_values_change_inside_one_template(
    template: str, one: dict[str, str], other: dict[str, str]
) -> None:
    assert normalize_error(template.format(**one)) == normalize_error(template.format(**other))


# Pieces that sit on the edges of the rules: brackets, quotes, placeholders, ids, boundaries.
_TRICKY = [
    *"[]'\"`,: -/.@T\\_~=()",
    "a",
    "b1",
    "7",
    "e5",
    "x:",
    "<num>",
    "2024-01-02",
    "12:30",
    "Mar",
    "0x1f",
    "deadbeef12",
    "http://a.b/c",
    "Errno",
    "C:\\",
    "\u201c",
    "\u201d",
]


@settings(max_examples=500)
@given(st.text(max_size=300) | st.lists(st.sampled_from(_TRICKY), max_size=80).map("".join))
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize_error(text)
    assert normalize_error(once) == once
    assert len(once) <= MAX_LENGTH


@settings(max_examples=150, deadline=None)
@given(tool=st.text(max_size=2 * MAX_LENGTH), head=st.text(max_size=40),
       tail=st.text(max_size=40), pad=st.integers(0, 1100))
def test_a_remembered_signature_is_the_one_computed_afresh(tool: str, head: str, tail: str,
                                                           pad: int) -> None:
    """error_signature remembers recent (tool, error head) pairs: asked twice, or for errors
    that differ only past what normalizing reads, it answers what normalizing now would."""
    error = head + "x" * pad + tail
    fresh = f"{tool}: {normalize_error(error)}"
    assert error_signature(tool, error) == fresh
    assert error_signature(tool, error) == fresh
    longer = error + tail + "9"
    assert error_signature(tool, longer) == f"{tool}: {normalize_error(longer)}"
