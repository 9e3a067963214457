"""The log importers on arbitrary text and JSON: episodes or `Skipped` entries, never a crash."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kaizen.importers.model import ImportedEpisode, Skipped
from kaizen.importers.openai_chat import parse_openai_chat
from kaizen.importers.react_log import parse_react_log
from tests.fuzz.settings import fuzz

REACT_WORDS = st.sampled_from([
    "Question: ", "Thought 1: ", "Action 1: ", "Observation 1: ", "Search[", "Lookup[", "Finish[",
    "]", "\n", "Trial 1:", "#####", "Correct answer: ", "Answer: ", "Reflection:", " ", "x",
    "STATUS: FAIL", "STATUS: OK", "\n\n",
])
REACT_TEXT = st.one_of(st.text(max_size=2000), st.lists(REACT_WORDS, max_size=200).map("".join))
JSON_VALUES: Any = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=6)
    | st.dictionaries(st.sampled_from(["role", "content", "tool_calls", "name", "id", "messages",
                                       "function", "arguments", "tool_call_id", "metadata",
                                       "type", "success", "reward", "x"]), children, max_size=6),
    max_leaves=40,
)


def _parse(parser: Any, suffix: str, text: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"log{suffix}"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        for item in parser(path):
            assert isinstance(item, ImportedEpisode | Skipped)


@fuzz
@given(REACT_TEXT)
def test_react_log_importer_never_crashes(text: str) -> None:
    _parse(parse_react_log, ".txt", text)


@fuzz
@given(JSON_VALUES)
def test_openai_chat_importer_never_crashes_on_any_json(value: Any) -> None:
    _parse(parse_openai_chat, ".json", json.dumps(value))


@fuzz
@given(st.lists(JSON_VALUES, max_size=5), st.text(max_size=200))
def test_openai_chat_importer_never_crashes_on_jsonl_and_text(lines: list[Any], junk: str) -> None:
    _parse(parse_openai_chat, ".jsonl", "\n".join(json.dumps(v) for v in lines) + "\n" + junk)
    _parse(parse_openai_chat, ".json", junk)
