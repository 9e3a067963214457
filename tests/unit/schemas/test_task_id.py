"""`task_id` (episode_event v2, signal v2): new records carry it, v1 records read as empty."""

from __future__ import annotations

import io

import fastavro

from kaizen.schemas import model
from kaizen.schemas.catalog import all_versions
from kaizen.schemas.codec import Codec, single_object_header
from kaizen.schemas.records import to_record
from tests.factories import episode_event

CODEC = Codec()


def test_a_started_event_keeps_its_task_id() -> None:
    event = episode_event(model.EpisodeStarted("refund order", "retail", "gpt-4o", "task-17"))
    decoded = CODEC.decode(CODEC.encode(event))
    assert isinstance(decoded, model.EpisodeEvent)
    assert isinstance(decoded.payload, model.EpisodeStarted)
    assert decoded.payload.task_id == "task-17"


def test_a_signal_keeps_its_task_id() -> None:
    signal = model.Signal("00000000-0000-0000-0000-000000000001", 1, "t", "a", "e", "failure",
                          task_id="task-17")
    decoded = CODEC.decode(CODEC.encode(signal))
    assert isinstance(decoded, model.Signal) and decoded.task_id == "task-17"


def test_a_v1_started_event_reads_with_an_empty_task_id() -> None:
    v1 = all_versions()["episode_event"][0]
    assert v1.version == 1
    record = to_record(episode_event(model.EpisodeStarted("t", "x", "v")), lambda c: c.__name__)
    record["payload"] = ("kaizen.events.EpisodeStarted", {"task": "t", "task_type": "x",
                                                          "agent_version": "v"})
    body = io.BytesIO()
    body.write(single_object_header(v1))
    fastavro.schemaless_writer(body, v1.parsed, record)
    decoded = CODEC.decode(body.getvalue())
    assert isinstance(decoded, model.EpisodeEvent)
    assert isinstance(decoded.payload, model.EpisodeStarted)
    assert (decoded.payload.agent_version, decoded.payload.task_id) == ("v", "")
