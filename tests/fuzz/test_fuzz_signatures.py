"""Error normalisation on adversarial texts (runs of hex, digits, quotes, nested brackets):
always a string, the same for the same input, and bounded in size."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kaizen.processors.learning.signatures import error_signature
from tests.fuzz.settings import fuzz

#: Inputs stay bounded: the curation helper makes normalisation linear-time; this target checks
#: it never fails, not how long it takes.
MAX_TEXT = 4000
HOSTILE = st.text(alphabet="0123456789abcdefABCDEFx'\"`()[]{}<>:/\\.,-_ \n\t=eE+",
                  max_size=MAX_TEXT)
RUNS = st.lists(st.sampled_from(["deadbeef" * 8, "1234567890", "'", '"', "((", "))", "[[", "]]",
                                 "{", "}", "0x", " at line ", "Error: "]),
                max_size=200).map("".join)


@fuzz
@given(st.text(max_size=64), st.one_of(HOSTILE, RUNS, st.text(max_size=MAX_TEXT)))
def test_error_signature_is_a_stable_bounded_string(tool: str, error: str) -> None:
    signature = error_signature(tool, error)
    assert isinstance(signature, str)
    assert signature == error_signature(tool, error)
    assert len(signature) <= len(tool) + 2 + max(len(error), 1) * 2 + 64
