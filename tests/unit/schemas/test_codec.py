"""Every event type survives encode -> decode, with the schema identifier in front."""

from __future__ import annotations

import io
import json

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaizen.schemas import model
from kaizen.schemas.catalog import latest
from kaizen.schemas.codec import (
    CONFLUENT_MAGIC,
    SCHEMA_OF,
    SINGLE_OBJECT_MAGIC,
    Codec,
    DecodeError,
    _full_name,
)
from kaizen.schemas.records import from_record, to_record
from tests.factories import episode_event, one_of_each_learning_event, one_of_each_payload

CODEC = Codec()


@pytest.mark.parametrize("payload", one_of_each_payload(), ids=lambda p: type(p).__name__)
def test_episode_events_round_trip(payload: model.EpisodePayload) -> None:
    event = episode_event(payload, snapshot_id="snap-1")
    data = CODEC.encode(event)
    assert data[:2] == SINGLE_OBJECT_MAGIC
    assert data[2:10] == latest("episode_event").fingerprint
    assert CODEC.decode(data) == event


@pytest.mark.parametrize("event", one_of_each_learning_event(), ids=lambda e: type(e).__name__)
def test_learning_events_round_trip(event: model.Event) -> None:
    assert CODEC.decode(CODEC.encode(event)) == event


@given(
    task=st.text(max_size=200),
    user=st.none() | st.text(max_size=20),
    at=st.integers(min_value=0, max_value=2**41),
    args=st.dictionaries(st.text(max_size=10), st.integers() | st.text(max_size=10), max_size=4),
)
def test_round_trip_holds_for_any_text(task: str, user: str | None, at: int, args: dict) -> None:
    for payload in (model.EpisodeStarted(task), model.ToolCall("c", task, json.dumps(args))):
        event = episode_event(payload, user=user, occurred_at=at)
        assert CODEC.decode(CODEC.encode(event)) == event


@pytest.mark.parametrize(
    "data",
    [b"", b"{\"json\": true}", SINGLE_OBJECT_MAGIC + b"\x00" * 8 + b"x",
     CONFLUENT_MAGIC + b"\x00\x00\x00\x07body"],
    ids=["empty", "json", "unknown-fingerprint", "confluent-without-registry"],
)
def test_foreign_bytes_raise_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        CODEC.decode(data)


def test_corrupt_body_raises_decode_error() -> None:
    data = CODEC.encode(episode_event(model.EpisodeStarted("t")))
    with pytest.raises(DecodeError):
        CODEC.decode(data[:12])


class _Registry:
    """A registry double for the framing only; the real registry client lives in streams/."""

    def __init__(self) -> None:
        self.schemas: dict[int, str] = {}

    def register(self, subject: str, schema_json: str) -> int:
        for schema_id, known in self.schemas.items():
            if known == schema_json:
                return schema_id
        self.schemas[len(self.schemas) + 101] = schema_json
        return len(self.schemas) + 100

    def schema_json(self, schema_id: int) -> str:
        return self.schemas[schema_id]


def test_confluent_framing_when_a_registry_is_configured() -> None:
    registry = _Registry()
    writer = Codec(registry)
    event = episode_event(model.EpisodeEnded("failure"))
    data = writer.encode(event)
    assert data[:1] == CONFLUENT_MAGIC and int.from_bytes(data[1:5], "big") == 101
    assert Codec(registry).decode(data) == event  # a fresh reader resolves the id


@pytest.mark.parametrize("event", [episode_event(p) for p in one_of_each_payload()]
                         + one_of_each_learning_event(), ids=lambda e: type(e).__name__)
def test_the_schemas_without_logical_types_write_and_read_the_same_bytes(event: model.Event
                                                                        ) -> None:
    """The codec reads and writes with `wire` (no UUID or datetime objects built): the bytes
    are those the full schema writes, and what the full schema reads from them is the event."""
    data = CODEC.encode(event)
    version = latest(SCHEMA_OF[type(event)])
    body = io.BytesIO()
    fastavro.schemaless_writer(body, version.parsed, to_record(event, _full_name))
    assert data[10:] == body.getvalue()
    full = fastavro.schemaless_reader(io.BytesIO(data[10:]), version.parsed, None,
                                      return_record_name=True, return_record_name_override=True)
    assert from_record(type(event), full) == event  # type: ignore[arg-type]
