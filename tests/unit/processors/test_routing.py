"""The processor steps without faust: live processing and a replay of the same log agree; bad
records become dead letters with their position."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.config import ProcessorConfig
from processors.routing import Outgoing, Record, Router
from schemas import model
from schemas.codec import Codec
from tests.factories import episode_event

CODEC = Codec()


def _log(seed: int, episodes: int = 30) -> list[Record]:
    rng, records = random.Random(seed), []
    for i in range(episodes):
        t, user, eid = 1_700_000_000_000 + i * 1000, f"u{rng.randrange(4)}", f"ep{i}"
        payloads: list[model.EpisodePayload] = [model.EpisodeStarted(f"order {i}")]
        if rng.random() < 0.6:
            payloads += [model.ToolCall("a", "orders.get", json.dumps({"order": i})),
                         model.ToolResult("a", "orders.get", False, f"unknown field 'order' {i}")]
        payloads += [model.ToolCall("b", "orders.get", json.dumps({"order_id": i})),
                     model.ToolResult("b", "orders.get", rng.random() < 0.9),
                     model.EpisodeEnded("success")]
        for seq, payload in enumerate(payloads):
            event = episode_event(payload, episode_id=eid, seq=seq, user=user, occurred_at=t + seq)
            records.append(Record("kaizen.episodes", 0, len(records), eid.encode(),
                                  CODEC.encode(event), t + seq))
    return records


def _run(records: list[Record]) -> dict[str, list[bytes]]:
    """Feed the three steps as the faust agents do (repartitioned topics in order)."""
    router = Router(ProcessorConfig(bootstrap="unused", min_support=2))
    tables: dict[str, dict[str, Any]] = {"episodes": {}, "patterns": {}, "curation": {}}
    out: dict[str, list[bytes]] = {}

    def emit(items: list[Outgoing]) -> None:
        for item in items:
            out.setdefault(item.topic, []).append(item.value)
            if item.topic.endswith("tool-results-v1"):
                event = CODEC.decode(item.value)
                assert isinstance(event, model.EpisodeEvent)
                result = router.aggregate(tables["patterns"].get(event.agent), event)
                tables["patterns"][event.agent] = result.state
                emit(result.outgoing)
            elif item.topic.endswith("curation-v1"):
                signal = CODEC.decode(item.value)
                assert isinstance(signal, model.Signal)
                key = item.key.decode()
                result = router.curate(tables["curation"].get(key), signal)
                tables["curation"][key] = result.state
                emit(result.outgoing)

    for record in records:
        decoded = router.decode_episode_event(record, "assemble")
        if isinstance(decoded, Outgoing):
            emit([decoded])
            continue
        result = router.assemble(tables["episodes"].get(decoded.episode_id), record, decoded)
        tables["episodes"][decoded.episode_id] = result.state
        emit(result.outgoing)
    return out


def _latest_experiences(out: dict[str, list[bytes]]) -> dict[str, tuple[Any, ...]]:
    latest: dict[str, tuple[Any, ...]] = {}
    for value in out.get("kaizen.experiences", []):
        x = CODEC.decode(value)
        assert isinstance(x, model.Experience)
        latest[x.experience_id] = (x.version, x.support_episodes, x.status, x.guidance)
    return latest


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000))
def test_a_replay_of_the_log_gives_exactly_what_live_processing_gave(seed: int) -> None:
    log = _log(seed)
    assert _run(log) == _run(list(log))


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000), st.data())
def test_duplicated_records_change_no_experience(seed: int, data: st.DataObject) -> None:
    log = _log(seed)
    extra = data.draw(st.lists(st.sampled_from(log), max_size=20))
    duplicated = sorted([*log, *extra], key=lambda r: r.offset)
    assert _latest_experiences(_run(duplicated)) == _latest_experiences(_run(log))
    assert _latest_experiences(_run(log))  # the fleet does teach something


def test_an_undecodable_record_becomes_a_dead_letter_with_its_position() -> None:
    router = Router(ProcessorConfig(bootstrap="unused"))
    record = Record("kaizen.episodes", 2, 41, b"k", b"\x00\x01garbage")
    letter = router.decode_episode_event(record, "assemble")
    assert isinstance(letter, Outgoing) and letter.topic == "kaizen.deadletter"
    decoded = CODEC.decode(letter.value)
    assert isinstance(decoded, model.DeadLetter)
    assert (decoded.source_partition, decoded.source_offset, decoded.value) == (2, 41,
                                                                               record.value)
    assert decoded.reason
