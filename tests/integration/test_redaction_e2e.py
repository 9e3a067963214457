"""Done means (issue 15): no built-in PII kind of a seeded corpus reaches the episodes topic
(read back from the broker), any other topic, or any store of a running `kaizen serve`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from kaizen.streams.redaction import BUILTIN
from tests.integration.kafka_helpers import make_recorder, make_topics
from tests.integration.store_dump import stores_text, topics_text
from tests.integration.test_service import _free_port, _get
from tests.integration.waiting import wait_for, wait_for_pipeline
from tests.integration.workers import start_worker, stop_worker, worker_env
from tests.pii_corpus import corpus


def test_no_seeded_pii_reaches_the_log_or_any_store(
    kafka_broker: Any, unique_topic_prefix: str, tmp_path: Path
) -> None:
    topics = make_topics(kafka_broker.bootstrap, unique_topic_prefix)
    recorder = make_recorder(kafka_broker.bootstrap, topics, tmp_path)
    samples = corpus(seed=21, n=3)
    for i, sample in enumerate(samples):  # each personal text in every field that carries text
        with recorder.episode(f"help with: {sample.text}", user=f"u{i % 3}",
                              episode_id=f"ep-{i}") as ep:
            ep.llm_call("m", content=f"user said {sample.text}")
            ep.tool_call("crm.lookup", {"email": sample.text, "n": i})
            ep.tool_result("crm.lookup", ok=False, error=f"unknown field 'email': {sample.text}")
            ep.tool_call("crm.lookup", {"contact": sample.text, "n": i})
            ep.tool_result("crm.lookup", ok=True, output=f"found {sample.text}")
            ep.feedback(rating=-0.5, correction=f"next time remember {sample.text}")
            ep.recall([], query=sample.text)
            ep.end(success=True)
    assert recorder.flush(60) == 0
    recorder.close()
    assert {d.kind for d in BUILTIN} <= set(recorder.stats.redacted)

    port = _free_port()
    home = tmp_path / "home"
    env = worker_env(kafka_broker.bootstrap, unique_topic_prefix, home, KAIZEN_HTTP_PORT=str(port))
    service = start_worker(env, tmp_path / "serve.log", command="serve")
    try:  # lessons learned from these episodes, and the analytics tables filled
        wait_for("a lesson learned", lambda: (_get(port, "/health") or {}).get("experiences"),
                 timeout=480)
        wait_for_pipeline(kafka_broker.bootstrap, unique_topic_prefix)  # every stage caught up
        assert (_get(port, "/analytics/failures?by=tool") or {"rows": []})["rows"]
    finally:
        stop_worker(service)

    log_text = topics_text(kafka_broker.bootstrap, topics)
    store_text = stores_text(home)
    assert "crm.lookup" in log_text and "crm.lookup" in store_text  # the dumps see the data
    assert "<email>" in log_text and "<card>" in store_text
    for sample in samples:  # as a whole token: a 4-digit PIN also occurs inside timestamps
        found = re.compile(rf"(?<![0-9A-Za-z]){re.escape(sample.value)}(?![0-9A-Za-z])")
        for where, text in (("topics", log_text), ("stores", store_text)):
            assert not found.search(text), (sample.kind, sample.value, where)
            escaped = json.dumps(sample.value)[1:-1]
            assert escaped == sample.value or escaped not in text, (sample.kind, where)
