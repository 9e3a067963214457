"""The OpenAI-compatible LLM extractor, driven by RECORDED responses (no model is reachable
here; the files under tests/unit/processors/recorded/ are labelled as recorded/canned)."""

from __future__ import annotations

import json
from pathlib import Path

from kaizen.extractors.llm import ChatClient, llm_extractor
from kaizen.schemas.model import Signal

RECORDED = Path(__file__).parents[1] / "processors" / "recorded"


def recorded(name: str) -> bytes:
    data = json.loads((RECORDED / name).read_text())
    assert data["_provenance"].startswith("RECORDED")
    return json.dumps(data["response"]).encode()


def failure(episode: str) -> Signal:
    return Signal(event_id=f"{episode}/f", occurred_at=1, tenant="t", agent="a",
                  episode_id=episode, kind="failure", tool="get_order",
                  signature="get_order: Order <id> not found", arguments_json='{"order_id": 1}')


def test_a_recorded_answer_words_the_lesson_and_a_cluster_is_asked_once() -> None:
    sent: list[dict[str, object]] = []

    def transport(url: str, body: bytes, headers: dict[str, str]) -> bytes:
        assert url == "http://llm.local/v1/chat/completions"
        assert headers["Authorization"] == "Bearer k"
        sent.append(json.loads(body))
        return recorded("pitfall_fenced.json")

    extractor = llm_extractor("http://llm.local/v1/", "m1", api_key="k", transport=transport,
                              min_interval_s=0.0)
    first = extractor.lesson([failure("e1")])
    again = extractor.lesson([failure("e2"), failure("e1")])  # same cluster, more evidence
    assert first is not None and first.extractor == "llm:m1" and "get_order" in first.guidance
    assert again == first and len(sent) == 1
    assert sent[0]["model"] == "m1" and sent[0]["temperature"] == 0


def test_a_bad_answer_falls_back_to_the_deterministic_lesson() -> None:
    extractor = llm_extractor("http://llm.local/v1", "m1", min_interval_s=0.0,
                              transport=lambda u, b, h: recorded("wrong_kind.json"))
    lesson = extractor.lesson([failure("e1")])
    assert lesson is not None and lesson.extractor == "deterministic"


def test_requests_are_rate_limited() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    client = ChatClient("http://llm.local/v1", "m1", min_interval_s=2.0,
                        transport=lambda u, b, h: b"{}", clock=lambda: now[0], sleep=sleep)
    client.complete("a")
    now[0] += 0.5
    client.complete("b")
    assert slept == [1.5] and client.requests == 2
