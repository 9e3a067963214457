"""The event backbone on the real broker: round trips, outages, replay."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from kaizen.schemas import model
from kaizen.schemas.codec import Codec
from kaizen.streams.replay import Bounds, TopicReader
from tests.factories import one_of_each_learning_event
from tests.integration.kafka_helpers import consume_all, decode_all, make_recorder, make_topics


def _record_every_kind(recorder: Any, user: str = "u1") -> str:
    with recorder.episode("find order 42", user=user, task_type="orders") as ep:
        ep.llm_call("gpt-x", input_tokens=10, output_tokens=5, latency_ms=300.0)
        ep.tool_call("orders.get", {"order_id": 42})
        ep.tool_result("orders.get", ok=False, error="404 order 42 not found")
        ep.feedback(rating=-1.0, correction="look up by email")
        ep.recall(["x1"], "find order 42")
        ep.end(success=True, reward=1.0)
    return ep.episode_id


def test_every_episode_event_type_round_trips(kafka_broker: Any, unique_topic_prefix: str,
                                              tmp_path: Path) -> None:
    topics = make_topics(kafka_broker.bootstrap, unique_topic_prefix)
    recorder = make_recorder(kafka_broker.bootstrap, topics, tmp_path, snapshot_id="snap-7")
    episode_id = _record_every_kind(recorder)
    assert recorder.flush(30) == 0
    recorder.close()

    events = decode_all(consume_all(kafka_broker.bootstrap, topics.episodes, 7))
    kinds = [type(e.payload).__name__ for e in events if isinstance(e, model.EpisodeEvent)]
    assert kinds == ["EpisodeStarted", "LlmCall", "ToolCall", "ToolResult", "Feedback", "Recall",
                     "EpisodeEnded"]
    assert {e.episode_id for e in events} == {episode_id}  # type: ignore[union-attr]
    assert {e.snapshot_id for e in events} == {"snap-7"}  # type: ignore[union-attr]
    assert recorder.stats.delivered == recorder.stats.emitted == 7


def test_every_learning_event_type_round_trips(kafka_broker: Any, unique_topic_prefix: str) -> None:
    topics = make_topics(kafka_broker.bootstrap, unique_topic_prefix)
    codec, producer = Codec(), Producer({"bootstrap.servers": kafka_broker.bootstrap})
    sent = one_of_each_learning_event()
    for event in sent:
        producer.produce(topics.signals, codec.encode(event), b"k")
    assert producer.flush(30) == 0
    assert decode_all(consume_all(kafka_broker.bootstrap, topics.signals, len(sent))) == sent


def test_a_broker_outage_loses_nothing_reorders_nothing_duplicates_nothing(
    outage_broker: Any, unique_topic_prefix: str, tmp_path: Path
) -> None:
    launcher = outage_broker
    topics = make_topics(launcher.bootstrap, unique_topic_prefix)
    recorder = make_recorder(launcher.bootstrap, topics, tmp_path)
    episodes = [recorder.episode(f"task {i}", user=f"u{i % 7}") for i in range(10)]
    for ep in episodes:
        ep.start()  # 10 events

    def emit(count: int) -> None:
        for i in range(count):
            ep = episodes[i % 10]
            ep.tool_call("search", {"q": i})

    emit(240)  # broker up
    launcher.down()
    emitter = threading.Thread(target=emit, args=(740,))
    emitter.start()
    emitter.join()  # returns while the broker is still down: emit never blocks
    for ep in episodes:
        ep.end(success=True)  # 10 more: 1,000 in all
    assert recorder.stats.emitted == 1000
    launcher.up()
    assert recorder.flush(60) == 0
    recorder.close()

    events = decode_all(consume_all(launcher.bootstrap, topics.episodes, 1000))
    assert len(events) == 1000
    assert len({e.event_id for e in events}) == 1000
    by_episode: dict[str, list[int]] = {}
    for event in events:
        by_episode.setdefault(event.episode_id, []).append(event.seq)  # type: ignore[union-attr]
    assert all(seqs == list(range(len(seqs))) for seqs in by_episode.values())


def test_events_queued_past_the_bound_by_several_threads_keep_each_threads_order(
    kafka_broker: Any, unique_topic_prefix: str, tmp_path: Path, monkeypatch: Any
) -> None:
    """emit() only queues; past MAX_QUEUED the emitting thread sends the oldest event itself,
    racing the sender thread: every event still arrives once, in each episode's emit order."""
    from kaizen.streams import recorder as recorder_module
    from tests.factories import episode_event

    monkeypatch.setattr(recorder_module, "MAX_QUEUED", 4)
    topics = make_topics(kafka_broker.bootstrap, unique_topic_prefix)
    recorder = make_recorder(kafka_broker.bootstrap, topics, tmp_path)

    def emit(episode_id: str) -> None:
        for seq in range(300):
            recorder.emit(episode_event(model.ToolCall(f"c{seq}", "search", "{}"),
                                        episode_id=episode_id, seq=seq))

    threads = [threading.Thread(target=emit, args=(f"ep-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert recorder.stats.emitted == 1200  # `stats` sends what is still queued first
    assert recorder.flush(60) == 0
    recorder.close()
    events = decode_all(consume_all(kafka_broker.bootstrap, topics.episodes, 1200))
    assert len({e.event_id for e in events}) == len(events) == 1200
    by_episode: dict[str, list[int]] = {}
    for event in events:
        by_episode.setdefault(event.episode_id, []).append(event.seq)  # type: ignore[union-attr]
    assert by_episode == {f"ep-{n}": list(range(300)) for n in range(4)}


def _emit_through_a_full_queue(recorder: Any, count: int) -> list[int]:
    """Emit `count` events of one episode into a producer queue of 5 records, counting what goes
    to the spool; returns the spool's put count once everything is delivered."""
    from tests.factories import episode_event

    puts: list[int] = []
    put = recorder._spool.put
    recorder._spool.put = lambda record: (puts.append(record.order_key), put(record))
    for seq in range(count):
        recorder.emit(episode_event(model.ToolCall(f"c{seq}", "search", "{}"),
                                    episode_id="ep-full", seq=seq))
    assert recorder.flush(60) == 0
    assert recorder.stats.emitted == count
    recorder.close()
    return puts


def test_a_full_producer_queue_holds_events_in_memory_until_it_has_room(
    kafka_broker: Any, unique_topic_prefix: str, tmp_path: Path
) -> None:
    """A full producer queue is backpressure, not an outage: the refused records wait in the
    Recorder's backlog (not the spool, whose disk round trip per record cost the agent's emit
    p99) and all arrive once, in emit order."""
    topics = make_topics(kafka_broker.bootstrap, unique_topic_prefix)
    recorder = make_recorder(kafka_broker.bootstrap, topics, tmp_path,
                             producer_overrides={"queue.buffering.max.messages": 5})
    puts = _emit_through_a_full_queue(recorder, 400)
    assert puts == []
    events = decode_all(consume_all(kafka_broker.bootstrap, topics.episodes, 400))
    assert [e.seq for e in events] == list(range(400))  # type: ignore[union-attr]


def test_a_backlog_past_its_bound_goes_to_the_spool_and_keeps_emit_order(
    kafka_broker: Any, unique_topic_prefix: str, tmp_path: Path, monkeypatch: Any
) -> None:
    from kaizen.streams import recorder as recorder_module

    monkeypatch.setattr(recorder_module, "MAX_BACKLOG_BYTES", 500)
    topics = make_topics(kafka_broker.bootstrap, unique_topic_prefix)
    recorder = make_recorder(kafka_broker.bootstrap, topics, tmp_path,
                             producer_overrides={"queue.buffering.max.messages": 5})
    puts = _emit_through_a_full_queue(recorder, 400)
    assert puts  # the backlog overflowed at least once
    assert puts == sorted(puts)
    events = decode_all(consume_all(kafka_broker.bootstrap, topics.episodes, 400))
    assert [e.seq for e in events] == list(range(400))  # type: ignore[union-attr]


def test_events_spooled_at_close_are_delivered_by_the_next_recorder(
    outage_broker: Any, unique_topic_prefix: str, tmp_path: Path
) -> None:
    launcher = outage_broker
    topics = make_topics(launcher.bootstrap, unique_topic_prefix)
    launcher.down()
    first = make_recorder(launcher.bootstrap, topics, tmp_path)
    _record_every_kind(first)
    first.close(timeout=2)  # broker down: the events go to disk
    assert first.stats.spooled == 7
    launcher.up()
    second = make_recorder(launcher.bootstrap, topics, tmp_path)
    assert second.flush(60) == 0
    second.close()
    events = decode_all(consume_all(launcher.bootstrap, topics.episodes, 7))
    assert [e.seq for e in events] == list(range(7))  # type: ignore[union-attr]


def _produce_episode_events(bootstrap: str, topic: str, count: int) -> list[model.EpisodeEvent]:
    from tests.factories import episode_event

    codec, producer = Codec(), Producer({"bootstrap.servers": bootstrap})
    events = [episode_event(model.EpisodeStarted(f"t{i}"), episode_id=f"e{i}",
                            occurred_at=1_700_000_000_000 + i * 1000) for i in range(count)]
    for event in events:
        producer.produce(topic, codec.encode(event), event.episode_id.encode(), partition=0,
                         timestamp=event.occurred_at)
    assert producer.flush(30) == 0
    return events


def test_replay_by_offset_and_by_time_returns_exactly_the_range(
    kafka_broker: Any, unique_topic_prefix: str
) -> None:
    topics = make_topics(kafka_broker.bootstrap, unique_topic_prefix, partitions=1)
    events = _produce_episode_events(kafka_broker.bootstrap, topics.episodes, 20)

    by_offset = list(TopicReader(kafka_broker.bootstrap, topics.episodes,
                                 Bounds(from_offset=5, to_offset=12)).records())
    assert [r.offset for r in by_offset] == list(range(5, 12))
    assert [r.value["event_id"] for r in by_offset] == [e.event_id for e in events[5:12]]

    start, end = events[3].occurred_at, events[9].occurred_at
    by_time = list(TopicReader(kafka_broker.bootstrap, topics.episodes,
                               Bounds(from_time_ms=start, to_time_ms=end)).records())
    assert [r.value["payload"]["task"] for r in by_time] == [f"t{i}" for i in range(3, 9)]
    assert all(r.schema == "episode_event" and r.error is None for r in by_time)


def test_replay_reports_undecodable_records_instead_of_skipping_them(
    kafka_broker: Any, unique_topic_prefix: str
) -> None:
    topics = make_topics(kafka_broker.bootstrap, unique_topic_prefix, partitions=1)
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    producer.produce(topics.episodes, b'{"bare": "json"}', b"k")
    producer.flush(30)
    _produce_episode_events(kafka_broker.bootstrap, topics.episodes, 1)
    records = list(TopicReader(kafka_broker.bootstrap, topics.episodes, Bounds()).records())
    assert [r.error is not None for r in records] == [True, False]
