"""The recall span: GenAI retrieval attributes with lesson ids and scores, only with a provider."""

from __future__ import annotations

import json

from kaizen.client.tracing import span_attributes, traced
from kaizen.readmodel.index import Recalled

LESSONS = [Recalled("e1", 0.91, "use id", None, "recovery", "orders.get"),
           Recalled("e2", 0.5, "retry", None, "recovery", "orders.get")]
BODY = {"task": "where is order 7", "agent": "shop-bot", "tenant": "acme", "user": "u1", "k": 3}


def test_attributes_carry_ids_scores_and_the_retrieval_conventions() -> None:
    attrs = span_attributes(LESSONS, BODY)
    assert attrs["gen_ai.operation.name"] == "retrieval"
    assert attrs["kaizen.recall.lesson_ids"] == ["e1", "e2"]
    assert attrs["kaizen.recall.scores"] == [0.91, 0.5]
    assert json.loads(attrs["gen_ai.retrieval.documents"]) == [
        {"id": "e1", "score": 0.91}, {"id": "e2", "score": 0.5}]
    assert (attrs["gen_ai.agent.name"], attrs["kaizen.tenant"], attrs["user.id"]) == (
        "shop-bot", "acme", "u1")


def test_without_a_tracer_provider_recall_is_returned_unchanged() -> None:
    assert traced(LESSONS, BODY, 0) is LESSONS
