"""Issue 13, edge side: whatever a broker, a size or a serialiser does, the agent is never hurt.

Each test reproduces one defect seen on the real broker: an event over ~1 MB raised from `emit`;
on the spool path the same record killed the delivery thread, so every later Recorder of that agent
was stuck behind it; a second spool of an agent was never drained after a restart. After the bad
input every normal event must still arrive, exactly once and in order.
"""

from __future__ import annotations

import os
import random
import uuid
from pathlib import Path
from typing import Any

from kaizen.schemas import model
from kaizen.schemas.codec import Codec
from kaizen.streams.spool import Spool, SpooledRecord
from tests.integration.kafka_helpers import consume_all, decode_all, make_recorder, make_topics

TRUNCATED = "[kaizen: truncated"


def _episode(recorder: Any, task: str, error: str | None = None) -> str:
    with recorder.episode(task) as ep:
        ep.tool_call("search", {"q": task})
        ep.tool_result("search", ok=error is None, error=error)
        ep.end(success=error is None)
    return str(ep.episode_id)


def _by_episode(events: list[model.Event]) -> dict[str, list[int]]:
    seen: dict[str, list[int]] = {}
    for event in events:
        assert isinstance(event, model.EpisodeEvent)
        seen.setdefault(event.episode_id, []).append(event.seq)
    return seen


def test_an_oversize_event_never_raises_from_emit_and_arrives_truncated_and_counted(
    kafka_broker: Any, unique_topic_prefix: str, tmp_path: Path
) -> None:
    topics = make_topics(kafka_broker.bootstrap, unique_topic_prefix)
    recorder = make_recorder(kafka_broker.bootstrap, topics, tmp_path)
    # 3 MB of incompressible text, a hex dump in an error; seeded, because a random dump now and
    # then holds a digit run that redaction rightly replaces (a card-like number), and the kept
    # head no longer equals the dump's
    huge = random.Random(13).randbytes(1_500_000).hex()
    big = _episode(recorder, "dump the table", error=huge)
    after = _episode(recorder, "a normal task after it")
    assert recorder.flush(60) == 0
    recorder.close()

    events = decode_all(consume_all(kafka_broker.bootstrap, topics.episodes, 8))
    assert _by_episode(events) == {big: [0, 1, 2, 3], after: [0, 1, 2, 3]}  # none lost or doubled
    result = next(e.payload for e in events if isinstance(e, model.EpisodeEvent)
                  and isinstance(e.payload, model.ToolResult) and e.episode_id == big)
    assert result.error is not None and TRUNCATED in result.error
    assert result.error.startswith(huge[:1000]) and len(result.error) < 1_000_000
    assert recorder.stats.truncated == 1


def test_an_unserialisable_value_never_raises_and_is_counted_as_failed(
    kafka_broker: Any, unique_topic_prefix: str, tmp_path: Path
) -> None:
    topics = make_topics(kafka_broker.bootstrap, unique_topic_prefix)
    recorder = make_recorder(kafka_broker.bootstrap, topics, tmp_path)
    loop: dict[str, Any] = {}
    loop["self"] = loop  # json.dumps raises ValueError on a circular structure
    with recorder.episode("odd values") as ep:
        ep.tool_call("search", loop)
        ep.llm_call("gpt", input_tokens="many")  # type: ignore[arg-type]  # Avro cannot write it
        ep.end(success=True)
    after = _episode(recorder, "a normal task after it")
    assert recorder.flush(60) == 0
    recorder.close()

    events = decode_all(consume_all(kafka_broker.bootstrap, topics.episodes, 7))
    seen = _by_episode(events)
    assert seen[after] == [0, 1, 2, 3]
    assert seen[ep.episode_id] == [0, 1, 3]  # the call is kept (arguments described), the llm not
    assert recorder.stats.failed == 1


def test_an_unsendable_spooled_record_does_not_block_the_agents_later_recorders(
    kafka_broker: Any, unique_topic_prefix: str, tmp_path: Path
) -> None:
    topics = make_topics(kafka_broker.bootstrap, unique_topic_prefix)
    event = model.EpisodeEvent(str(uuid.uuid4()), 1, "acme", "support-bot", "ep-big", 0,
                               model.EpisodeStarted(os.urandom(1_500_000).hex()))
    left = Spool(tmp_path / "acme.support-bot", 1 << 30)  # what an older Recorder left behind
    left.put(SpooledRecord(1, topics.episodes, b"ep-big", Codec().encode(event)))
    left.close()

    recorder = make_recorder(kafka_broker.bootstrap, topics, tmp_path)
    after = _episode(recorder, "a normal task after it")
    assert recorder.flush(60) == 0
    recorder.close()
    second = make_recorder(kafka_broker.bootstrap, topics, tmp_path)
    later = _episode(second, "and one more")
    assert second.flush(60) == 0
    second.close()

    events = decode_all(consume_all(kafka_broker.bootstrap, topics.episodes, 9))
    seen = _by_episode(events)
    assert seen[after] == [0, 1, 2, 3] and seen[later] == [0, 1, 2, 3]
    big = [e for e in events if isinstance(e, model.EpisodeEvent) and e.episode_id == "ep-big"]
    assert len(big) == 1 and TRUNCATED in big[0].payload.task  # type: ignore[union-attr]
    assert recorder.stats.truncated == 1


def test_every_spool_of_an_agent_is_drained_by_the_next_recorder(
    outage_broker: Any, unique_topic_prefix: str, tmp_path: Path
) -> None:
    topics = make_topics(outage_broker.bootstrap, unique_topic_prefix)
    outage_broker.down()
    first = make_recorder(outage_broker.bootstrap, topics, tmp_path)
    second = make_recorder(outage_broker.bootstrap, topics, tmp_path)  # same agent: spool -1
    written = [_episode(first, "first"), _episode(second, "second")]
    first.close(timeout=1)
    second.close(timeout=1)
    assert first.stats.spooled == 4 and second.stats.spooled == 4

    outage_broker.up()
    restarted = make_recorder(outage_broker.bootstrap, topics, tmp_path)
    written.append(_episode(restarted, "third"))
    assert restarted.flush(60) == 0
    restarted.close()

    events = decode_all(consume_all(outage_broker.bootstrap, topics.episodes, 12))
    assert _by_episode(events) == {episode: [0, 1, 2, 3] for episode in written}


def test_an_event_emitted_after_close_is_counted_as_failed_not_left_queued(
    kafka_broker: Any, unique_topic_prefix: str, tmp_path: Path
) -> None:
    """emit() only queues for the sender thread, which close() stops: an event emitted later
    would wait forever in memory. It is refused at once and counted."""
    topics = make_topics(kafka_broker.bootstrap, unique_topic_prefix)
    recorder = make_recorder(kafka_broker.bootstrap, topics, tmp_path)
    delivered = _episode(recorder, "before close")
    recorder.close()
    with recorder.episode("after close") as late:
        late.end(success=True)
    assert (recorder.stats.emitted, recorder.stats.failed) == (4, 2)
    events = decode_all(consume_all(kafka_broker.bootstrap, topics.episodes, 4))
    assert _by_episode(events) == {delivered: [0, 1, 2, 3]}
