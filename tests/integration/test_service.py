"""`kaizen serve` on the real broker and embedded stores: Recorder -> ClickHouse rows and Qdrant
points, idempotent replay, analytics against an independent computation, recall on real data."""

from __future__ import annotations

import json
import random
import socket
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer

from kaizen.importers.react_log import parse_react_log
from kaizen.importers.run import import_episodes
from kaizen.streams.replay import Bounds, TopicReader
from kaizen.streams.topics import Topics
from tests.integration.kafka_helpers import make_recorder, make_topics
from tests.integration.test_processors import BASE_LOG
from tests.integration.waiting import wait_for, wait_for_pipeline
from tests.integration.workers import start_worker, stop_worker, worker_env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(port: int, path: str) -> Any:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
            return json.loads(response.read())
    except OSError:
        return None


def _post(port: int, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _record_fleet(recorder_for: Any, seed: int) -> Counter[tuple[str, bool]]:
    """Two tenants' agents hitting a renamed argument; returns (tool, ok) counts as emitted."""
    rng, counts = random.Random(seed), Counter[tuple[str, bool]]()
    for tenant in ("acme", "globex"):
        recorder = recorder_for(tenant)
        for i in range(40):
            with recorder.episode(f"find invoice {i} for {tenant}", user=f"u{rng.randrange(4)}",
                                  episode_id=f"{tenant}-{i}") as ep:
                if rng.random() < 0.5:
                    ep.tool_call("invoices.find", {"number": i})
                    ep.tool_result("invoices.find", ok=False, error=f"unknown field 'number' {i}")
                    counts["invoices.find", False] += 1
                ep.tool_call("invoices.find", {"invoice_no": i})
                ok = rng.random() < 0.85
                ep.tool_result("invoices.find", ok=ok, error=None if ok else "timeout after 30s")
                counts["invoices.find", ok] += 1
                ep.tool_call("mail.send", {"to": f"u{i}"})
                ep.tool_result("mail.send", ok=True)
                counts["mail.send", True] += 1
                ep.end(success=ok)
        assert recorder.flush(60) == 0
        recorder.close()
    return counts


def _duplicate_every_topic(bootstrap: str, topics: Topics) -> int:
    """Write every record of every main topic again (what a replay or a restart can do)."""
    producer, copied = Producer({"bootstrap.servers": bootstrap}), 0
    for topic in (topics.episodes, topics.signals, topics.patterns, topics.experiences):
        reader = TopicReader(bootstrap, topic, Bounds())
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"dup-{topic}",
                             "auto.offset.reset": "earliest"})
        consumer.subscribe([topic])
        seen = 0
        while seen < reader.total:
            for message in consumer.consume(500, timeout=1.0):
                if message.error() is None:
                    producer.produce(topic, message.value(), message.key())
                    seen += 1
        consumer.close()
        copied += seen
    assert producer.flush(60) == 0
    return copied


def test_events_flow_to_analytics_and_the_library_and_replays_change_no_count(
    kafka_broker: Any, unique_topic_prefix: str, tmp_path: Path
) -> None:
    topics = make_topics(kafka_broker.bootstrap, unique_topic_prefix)
    emitted = _record_fleet(
        lambda tenant: make_recorder(kafka_broker.bootstrap, topics, tmp_path / tenant),
        seed=5,
    )
    port = _free_port()
    env = worker_env(kafka_broker.bootstrap, unique_topic_prefix, tmp_path / "home",
                     KAIZEN_HTTP_PORT=str(port))
    service = start_worker(env, tmp_path / "serve.log", command="serve")

    def observed() -> tuple[Any, ...]:
        failures = _get(port, "/analytics/failures?by=tool") or {"rows": []}
        library = _get(port, "/experiences") or {"experiences": []}
        return (sorted((r["key"], r["calls"], r["failures"]) for r in failures["rows"]),
                sorted(x["experience_id"] for x in library["experiences"]))

    try:
        wait_for("the API", lambda: _get(port, "/health"))
        wait_for_pipeline(kafka_broker.bootstrap, unique_topic_prefix)
        first = observed()
        assert first[0] and first[1]
        expected = sorted(
            (tool, emitted[tool, True] + emitted[tool, False], emitted[tool, False])
            for tool in {t for t, _ in emitted}
        )
        assert first[0] == expected  # analytics equal the count over what was emitted
        on_topic = {r.event.experience_id for r in
                    TopicReader(kafka_broker.bootstrap, topics.experiences, Bounds()).records()}
        assert set(first[1]) == on_topic  # one Qdrant point per experience id

        assert _duplicate_every_topic(kafka_broker.bootstrap, topics) > 0
        wait_for_pipeline(kafka_broker.bootstrap, unique_topic_prefix)
        again = observed()
        assert again == first
        assert not (_get(port, "/analytics/failures?by=nonsense") or {}).get("rows")
    finally:
        stop_worker(service)


def test_after_importing_real_logs_recall_puts_the_quoted_search_lesson_first(
    kafka_broker: Any, unique_topic_prefix: str, tmp_path: Path
) -> None:
    topics = make_topics(kafka_broker.bootstrap, unique_topic_prefix)
    recorder = make_recorder(kafka_broker.bootstrap, topics, tmp_path)
    import_episodes(parse_react_log(BASE_LOG), recorder, base_time_ms=1_700_000_000_000,
                    progress=False)
    assert recorder.flush(60) == 0
    recorder.close()
    port = _free_port()
    env = worker_env(kafka_broker.bootstrap, unique_topic_prefix, tmp_path / "home",
                     KAIZEN_HTTP_PORT=str(port))
    service = start_worker(env, tmp_path / "serve.log", command="serve")
    body = {"task": "Which magazine was started first, Arthur's Magazine or First for Women?",
            "agent": "support-bot", "tenant": "acme", "tools": ["Search"], "k": 3}
    try:
        wait_for("the API", lambda: _get(port, "/health"))
        wait_for_pipeline(kafka_broker.bootstrap, unique_topic_prefix)  # every lesson learned
        lessons = _post(port, "/recall", body)["lessons"]
    finally:
        stop_worker(service)
    quoted = [x for x in lessons
              if [c["rule"] for c in (x["patch"] or {}).get("changes", [])] == ["strip_quotes"]]
    assert lessons[0]["tool"] == "Search" and quoted, [
        (x["kind"], x["score"], x["guidance"][:80]) for x in lessons]
