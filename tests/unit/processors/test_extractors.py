"""Extractors: deterministic lessons, and LLM-worded lessons driven by RECORDED responses.

Every LLM test here replays a canned response from `recorded/*.json` through the transport
callable (file and test names say "recorded"); nothing calls a live model or the network.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kaizen.processors.learning import guidance
from kaizen.processors.learning.extractors import (
    DeterministicExtractor,
    Lesson,
    RecordedLLMExtractor,
    parse_answer,
    validate_answer,
)
from kaizen.schemas.model import ArgumentChange, Signal, ToolCallPatch

RECORDED = Path(__file__).parent / "recorded"
QUOTED = "Search: Could not find [<quoted>]."
STRIP = ToolCallPatch("Search", [ArgumentChange("reformat", "query", rule="strip_quotes")])


def signal(kind: str, **kw: Any) -> Signal:
    base: dict[str, Any] = dict(
        event_id=f"s-{kind}",
        occurred_at=1_700_000_000_000,
        tenant="acme",
        agent="bot",
        episode_id="ep-1",
        kind=kind,
        user="u7",
        task='Who wrote "Kafka on the Shore"?',
        task_type="qa",
    )
    if kind in ("failure", "recovery"):
        base.update(
            tool="Search",
            signature=QUOTED,
            error='Could not find ["Kafka"].',
            arguments_json='{"query": "\\"Kafka on the Shore\\""}',
        )
    return Signal(**{**base, **kw})


class RecordedTransport:
    """Replays one recorded response file for every prompt, and keeps the prompts it was sent."""

    def __init__(self, name: str) -> None:
        self.recording = json.loads((RECORDED / name).read_text())
        assert "RECORDED" in self.recording["_provenance"]
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return json.dumps(self.recording["response"])


# --- deterministic ----------------------------------------------------------------------------


def test_deterministic_recovery_lesson_carries_patch_and_trigger() -> None:
    lesson = DeterministicExtractor().lesson([signal("recovery", patch=STRIP)])
    assert lesson == Lesson(
        kind="recovery",
        guidance=guidance.recovery_guidance(STRIP, QUOTED),
        patch=STRIP,
        tool="Search",
        signature=QUOTED,
        task_type="qa",
        example_task='Who wrote "Kafka on the Shore"?',
        extractor="deterministic",
    )


def test_first_signal_is_the_representative() -> None:
    first = signal("recovery", patch=STRIP, task="first task")
    second = signal("recovery", patch=STRIP, task="second task")
    lesson = DeterministicExtractor().lesson([first, second])
    assert lesson is not None and lesson.example_task == "first task"


@pytest.mark.parametrize("patch", [None, ToolCallPatch("Search", [])])
def test_recovery_without_effective_patch_is_a_retry(patch: ToolCallPatch | None) -> None:
    lesson = DeterministicExtractor().lesson([signal("recovery", patch=patch)])
    assert lesson is not None
    assert (lesson.kind, lesson.patch) == ("recovery", None)
    assert "retry after a short back-off" in lesson.guidance


def test_failure_is_a_pitfall_without_argument_values() -> None:
    lesson = DeterministicExtractor().lesson([signal("failure")])
    assert lesson is not None and lesson.kind == "pitfall" and lesson.patch is None
    assert "`query`" in lesson.guidance and "Kafka" not in lesson.guidance


def test_correction_is_a_preference_of_its_user() -> None:
    lesson = DeterministicExtractor().lesson(
        [signal("correction", correction="use the order id, not the email")]
    )
    assert lesson is not None
    assert (lesson.kind, lesson.user, lesson.tool) == ("preference", "u7", None)
    assert '"use the order id, not the email"' in lesson.guidance and "u7" in lesson.guidance


@pytest.mark.parametrize(
    "signals",
    [
        [],
        [signal("rating", rating=0.5)],
        [signal("outcome", outcome="success")],
        [signal("correction", correction="   ")],
    ],
)
def test_nothing_to_learn_gives_no_lesson(signals: list[Signal]) -> None:
    assert DeterministicExtractor().lesson(signals) is None


# --- LLM, recorded responses ------------------------------------------------------------------


def test_recorded_llm_answer_rewords_guidance_and_keeps_the_structure() -> None:
    transport = RecordedTransport("recovery_strip_quotes.json")
    extractor = RecordedLLMExtractor(transport, model="gpt-4o-mini")
    source = [signal("recovery", patch=STRIP)]
    lesson = extractor.lesson(source)
    expected_text = json.loads(transport.recording["response"]["choices"][0]["message"]["content"])[
        "guidance"
    ]
    deterministic = DeterministicExtractor().lesson(source)
    assert lesson is not None and deterministic is not None
    assert lesson.guidance == expected_text
    assert extractor.name == lesson.extractor == "llm:gpt-4o-mini"
    assert (lesson.kind, lesson.patch, lesson.signature, lesson.example_task) == (
        deterministic.kind,
        deterministic.patch,
        deterministic.signature,
        deterministic.example_task,
    )


def test_recorded_llm_prompt_holds_the_facts_but_no_raw_error() -> None:
    transport = RecordedTransport("recovery_strip_quotes.json")
    RecordedLLMExtractor(transport, model="m").lesson([signal("recovery", patch=STRIP)])
    [prompt] = transport.prompts
    assert "- tool: Search" in prompt
    assert QUOTED in prompt
    assert '"rule": "strip_quotes"' in prompt
    assert "argument names of the failed calls: query" in prompt
    assert 'example task: Who wrote "Kafka on the Shore"?' in prompt
    assert 'Could not find ["Kafka"]' not in prompt  # raw error text stays out of the prompt
    assert 'is "recovery"' in prompt


def test_recorded_llm_fenced_answer_is_unwrapped() -> None:
    transport = RecordedTransport("pitfall_fenced.json")
    failure = signal("failure", tool="get_order", signature="get_order: HTTP 410 Gone")
    lesson = RecordedLLMExtractor(transport, model="m").lesson([failure])
    assert lesson is not None and lesson.kind == "pitfall" and lesson.extractor == "llm:m"
    assert lesson.guidance.startswith("get_order fails with 'HTTP 410 Gone'")


def test_recorded_llm_preference_keeps_the_user() -> None:
    transport = RecordedTransport("preference.json")
    lesson = RecordedLLMExtractor(transport, model="m").lesson(
        [signal("correction", correction="use the order id, not the email")]
    )
    assert lesson is not None and lesson.user == "u7" and lesson.extractor == "llm:m"
    assert "stated by user: u7" in transport.prompts[0]


@pytest.mark.parametrize("recording", ["wrong_kind.json", "not_json.json", "tool_not_named.json"])
def test_recorded_llm_bad_answer_falls_back_to_deterministic(recording: str) -> None:
    source = [signal("recovery", patch=STRIP)]
    transport = RecordedTransport(recording)
    lesson = RecordedLLMExtractor(transport, model="m").lesson(source)
    assert len(transport.prompts) == 1
    assert lesson == DeterministicExtractor().lesson(source)


def test_no_lesson_means_no_llm_call() -> None:
    transport = RecordedTransport("recovery_strip_quotes.json")
    assert RecordedLLMExtractor(transport, model="m").lesson([signal("rating")]) is None
    assert transport.prompts == []


def test_transport_errors_are_not_swallowed() -> None:
    def down(prompt: str) -> str:
        raise ConnectionError("LLM endpoint unreachable")

    with pytest.raises(ConnectionError):
        RecordedLLMExtractor(down, model="m").lesson([signal("recovery", patch=STRIP)])


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ('{"kind": "recovery", "guidance": "g"}', {"kind": "recovery", "guidance": "g"}),
        ('```\n{"kind": "pitfall"}\n```', {"kind": "pitfall"}),
        ('{"choices": []}', None),
        ('{"choices": [{"message": {"content": 3}}]}', None),
        ("[1, 2]", None),
        ("", None),
    ],
)
def test_parse_answer(raw: str, parsed: dict[str, Any] | None) -> None:
    assert parse_answer(raw) == parsed


def test_validate_answer_bounds_length_and_normalizes_space() -> None:
    draft = Lesson(kind="recovery", guidance="draft", tool="Search")
    ok = {"kind": "recovery", "guidance": "  Call   Search\nwithout quotes. "}
    assert validate_answer(ok, draft) == "Call Search without quotes."
    too_long = {"kind": "recovery", "guidance": "Search " * 200}
    assert validate_answer(too_long, draft) is None
    assert validate_answer({"kind": "recovery", "guidance": 7}, draft) is None
    assert validate_answer({"kind": "recovery", "guidance": "  "}, draft) is None
