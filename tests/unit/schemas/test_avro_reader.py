"""The compiled Avro readers decode what fastavro and `from_record` decode, for every schema of
the catalog on random values of every field; on corrupt or cut bodies the codec answers as the
fastavro path does: the same event, or a `DecodeError` (never any other error)."""

from __future__ import annotations

import io
import math
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaizen.schemas import model
from kaizen.schemas.avro_reader import Malformed, Unsupported, compile_reader, read_long
from kaizen.schemas.avro_writer import write_long
from kaizen.schemas.catalog import all_versions, latest, without_logical_types
from kaizen.schemas.codec import CLASS_OF, SCHEMA_OF, Codec, DecodeError, single_object_header
from kaizen.schemas.records import from_record
from tests.unit.schemas.test_avro_writer import CLASSES, _fastavro, _strategy

NAMES = sorted(SCHEMA_OF.values())
CODEC = Codec()


def _canonical(value: Any) -> Any:
    """A model object as nested tuples, NaN as a marker: NaN != NaN would fail equal events."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if hasattr(value, "__dataclass_fields__"):
        return (type(value).__name__,
                *((name, _canonical(getattr(value, name))) for name in value.__dataclass_fields__))
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    return value


def _fastavro_event(name: str, body: bytes) -> Any:
    record = fastavro.schemaless_reader(io.BytesIO(body), latest(name).wire, None,
                                        return_record_name=True,
                                        return_record_name_override=True)
    return from_record(CLASS_OF[name], record)  # type: ignore[arg-type]


def _reader(name: str) -> Any:
    return compile_reader(without_logical_types(latest(name).raw), CLASSES)


def _random(name: str, data: st.DataObject) -> Any:
    raw = without_logical_types(latest(name).raw)
    return data.draw(_strategy(raw, {}, raw.get("namespace", "")))


def _fastavro_answer(name: str, framed: bytes) -> Any:
    """What the fastavro path of the codec makes of a framed record: its event or DecodeError."""
    try:
        return _canonical(CODEC.decode_full(framed).event)
    except DecodeError:
        return DecodeError


def _codec_answer(framed: bytes) -> Any:
    try:
        return _canonical(CODEC.decode(framed))
    except DecodeError:
        return DecodeError


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_the_compiled_reader_reads_what_fastavro_reads(name: str, data: st.DataObject) -> None:
    body = _fastavro(name, _random(name, data))
    assert _canonical(_reader(name)(body, 0)) == _canonical(_fastavro_event(name, body))
    framed = single_object_header(latest(name)) + body
    assert _codec_answer(framed) == _canonical(_fastavro_event(name, body))


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_a_cut_or_corrupted_body_decodes_as_the_fastavro_path_decodes(
        name: str, data: st.DataObject) -> None:
    body = bytearray(_fastavro(name, _random(name, data)))
    action = data.draw(st.sampled_from(["cut", "flip", "insert", "append"]))
    at = data.draw(st.integers(0, len(body)))
    if action == "cut":
        del body[at:]
    elif action == "flip" and body:
        at = min(at, len(body) - 1)
        body[at] = data.draw(st.integers(0, 255).filter(lambda b: b != body[at]))
    elif action == "insert":
        body[at:at] = data.draw(st.binary(min_size=1, max_size=12))
    else:
        body += data.draw(st.binary(min_size=1, max_size=12))  # trailing bytes: ignored
    framed = single_object_header(latest(name)) + bytes(body)
    assert _codec_answer(framed) == _fastavro_answer(name, framed)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=100, deadline=None)
@given(garbage=st.binary(max_size=200))
def test_random_bytes_decode_as_the_fastavro_path_decodes(name: str, garbage: bytes) -> None:
    framed = single_object_header(latest(name)) + garbage
    assert _codec_answer(framed) == _fastavro_answer(name, framed)


@pytest.mark.parametrize("value", [0, 1, -1, 63, -64, 64, 2**31, -(2**31) - 1, 2**63 - 1, -(2**63)])
def test_read_long_reads_what_write_long_writes(value: int) -> None:
    out = bytearray(b"x")
    write_long(out, value)
    assert read_long(bytes(out), 1) == (value, len(out))


@pytest.mark.parametrize("varint", [b"\xff" * 10 + b"\x01", b"\xff" * 9 + b"\x7f", b"\x80"])
def test_a_varint_past_64_bits_or_cut_is_refused(varint: bytes) -> None:
    with pytest.raises((Malformed, IndexError)):
        read_long(varint, 0)


def test_an_older_writer_version_is_read_by_fastavro_into_the_newest_model() -> None:
    old = all_versions()["episode_event"][0]
    assert old is not latest("episode_event")
    event = model.EpisodeEvent(event_id="e", occurred_at=1, tenant="t", agent="a",
                               episode_id="ep", seq=0, payload=model.EpisodeStarted("task"))
    body = io.BytesIO()
    fastavro.schemaless_writer(body, old.wire, {
        "event_id": "e", "occurred_at": 1, "tenant": "t", "agent": "a", "episode_id": "ep",
        "seq": 0, "user": None, "snapshot_id": None,
        "payload": ("kaizen.events.EpisodeStarted", {"task": "task", "task_type": "",
                                                     "agent_version": ""})})
    framed = single_object_header(old) + body.getvalue()
    assert CODEC.decode(framed) == CODEC.decode_full(framed).event == event


def test_every_released_version_compiles() -> None:
    for history in all_versions().values():
        for version in history:
            compile_reader(without_logical_types(version.raw), CLASSES)


def test_a_type_it_does_not_know_is_refused_at_compile_time() -> None:
    schema = {"type": "record", "name": "Feedback", "fields": [
        {"name": "score", "type": {"type": "fixed", "name": "F", "size": 4}}]}
    with pytest.raises(Unsupported):
        compile_reader(schema, CLASSES)
