"""`kaizen rebuild` on the real broker: the rebuilt ClickHouse tables (episodes, steps, recalls,
signals, patterns, snapshot events) equal the per-record sink's, with corrupt records skipped and
counted, never loaded and never fatal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from kaizen.processors.learning import snapshots
from kaizen.processors.learning.snapshots import Candidate
from kaizen.schemas import model
from kaizen.schemas.catalog import latest
from kaizen.schemas.codec import single_object_header
from kaizen.service.rebuild import rebuild
from kaizen.settings import load_settings
from kaizen.sinks.clickhouse import ClickHouseSink
from kaizen.streams.publish import publish_events
from kaizen.streams.replay import Bounds, TopicReader
from kaizen.streams.snapshot_log import publish
from tests.integration.kafka_helpers import make_topics
from tests.unit.sinks.test_clickhouse_bulk import (
    TABLES,
    episode_events,
    learning_events,
    table_rows,
)
from tests.unit.sinks.test_clickhouse_sink import open_sink, write_all


def _activate_one_snapshot(bootstrap: str, topic: str) -> None:
    candidate = Candidate(members={"lesson": "hash"}, added=("lesson",), removed=(), changed=(),
                          tools=frozenset(), lessons=())
    sid = candidate.snapshot_id("acme", "support-bot")
    publish(bootstrap, topic, [
        snapshots.proposed_event("acme", "support-bot", candidate, parent_id=None, occurred_at=1),
        snapshots.activated_event("acme", "support-bot", sid, replaced=None, occurred_at=2),
    ])


def test_rebuild_loads_every_episode_event_and_skips_corrupt_records(
    kafka_broker: Any, unique_topic_prefix: str, tmp_path: Path
) -> None:
    bootstrap = kafka_broker.bootstrap
    topics = make_topics(bootstrap, unique_topic_prefix)
    events = episode_events(seed=11, episodes=200)
    half = len(events) // 2
    publish_events(bootstrap, topics.episodes, [(e.episode_id.encode(), e) for e in events[:half]])
    producer = Producer({"bootstrap.servers": bootstrap})
    header = single_object_header(latest("episode_event"))
    producer.produce(topics.episodes, header + b"\xff\xff\xff not avro", b"bad")  # bulk block
    producer.produce(topics.episodes, b'{"bare": "json"}', b"bad")  # per-record path
    assert producer.flush(30) == 0
    publish_events(bootstrap, topics.episodes, [(e.episode_id.encode(), e) for e in events[half:]])
    learned = learning_events(seed=12)
    signals = [e for e in learned if isinstance(e, model.Signal)]
    patterns = [e for e in learned if isinstance(e, model.Pattern)]
    publish_events(bootstrap, topics.signals, [(e.episode_id.encode(), e) for e in signals])
    publish_events(bootstrap, topics.patterns, [(e.signature.encode(), e) for e in patterns])
    _activate_one_snapshot(bootstrap, topics.snapshots)

    settings = load_settings(kafka_bootstrap=bootstrap, topic_prefix=unique_topic_prefix,
                             home=tmp_path / "home")
    end = TopicReader(bootstrap, topics.snapshots, Bounds()).total
    report = rebuild(settings, end, tmp_path / "rebuilt")

    assert report.skipped == 2
    assert report.events == len(events) + len(learned) + end
    rebuilt = ClickHouseSink(f"chdb://{tmp_path / 'rebuilt' / 'clickhouse'}",
                             signature_of=lambda tool, error: "")
    try:
        got = table_rows(rebuilt, (*TABLES, "signals_v1", "patterns_v1"))
        snapshot_rows = rebuilt.client.query("SELECT count() FROM snapshot_events_v1")
        assert snapshot_rows.result_rows[0][0] == end
    finally:
        rebuilt.close()
    reference = open_sink(tmp_path / "reference")
    try:
        write_all(reference, [*events, *learned])
        assert got == table_rows(reference, (*TABLES, "signals_v1", "patterns_v1"))
    finally:
        reference.close()
