"""The compiled Avro writers write fastavro's bytes for every schema of the catalog, on random
values of every field, and refuse what fastavro refuses."""

from __future__ import annotations

import io
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaizen.schemas import model
from kaizen.schemas.avro_writer import Unsupported, compile_writer
from kaizen.schemas.catalog import all_versions, latest, without_logical_types
from kaizen.schemas.codec import SCHEMA_OF, _full_name, model_classes
from kaizen.schemas.records import to_record

CLASSES = model_classes()
NAMES = sorted(SCHEMA_OF.values())


def _strategy(schema: Any, named: dict[str, Any], space: str) -> st.SearchStrategy[Any]:
    """Values of the model for `schema`: model objects for records, symbols for enums."""
    if isinstance(schema, list):
        return st.one_of(*(_strategy(branch, named, space) for branch in schema))
    if isinstance(schema, str) and schema in named:
        return _strategy(named[schema], named, space)
    if isinstance(schema, str) and f"{space}.{schema}" in named:
        return _strategy(named[f"{space}.{schema}"], named, space)
    kind = schema if isinstance(schema, str) else schema["type"]
    simple: dict[str, st.SearchStrategy[Any]] = {
        "null": st.none(), "string": st.text(max_size=80), "bytes": st.binary(max_size=80),
        "int": st.integers(-(2**31), 2**31 - 1), "long": st.integers(-(2**63), 2**63 - 1),
        "double": st.floats(), "boolean": st.booleans()}
    if kind in simple:
        return simple[kind]
    if kind == "enum":
        named[f"{schema.get('namespace', space)}.{schema['name']}"] = schema
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(_strategy(schema["items"], named, space), max_size=3)
    if kind == "map":
        return st.dictionaries(st.text(max_size=10), _strategy(schema["values"], named, space),
                               max_size=3)
    space = schema.get("namespace", space)
    named[f"{space}.{schema['name']}"] = schema
    fields = {f["name"]: _strategy(f["type"], named, space) for f in schema["fields"]}
    return st.builds(CLASSES[schema["name"]], **fields)


def _fastavro(name: str, obj: Any) -> bytes:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, latest(name).wire, to_record(obj, _full_name))
    return body.getvalue()


def _writer(name: str) -> Any:
    return compile_writer(without_logical_types(latest(name).raw), CLASSES)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_the_compiled_writer_writes_fastavros_bytes(name: str, data: st.DataObject) -> None:
    raw = without_logical_types(latest(name).raw)
    obj = data.draw(_strategy(raw, {}, raw.get("namespace", "")))
    assert _writer(name)(obj) == _fastavro(name, obj)


@pytest.mark.parametrize("bad", [
    {"seq": "3"}, {"seq": 2**64}, {"seq": 1e30}, {"seq": None}, {"tenant": None}, {"tenant": 7},
    {"user": b"u1"}, {"payload": "not a record"},
])
def test_a_value_of_the_wrong_type_raises_like_fastavro(bad: dict[str, Any]) -> None:
    event = model.EpisodeEvent(event_id="e", occurred_at=1, tenant="t", agent="a",
                               episode_id="ep", seq=0, payload=model.Feedback(rating=1.0))
    for field, value in bad.items():
        object.__setattr__(event, field, value)
    with pytest.raises(Exception):  # noqa: B017 - fastavro raises several kinds
        _fastavro("episode_event", event)
    with pytest.raises((TypeError, ValueError, OverflowError, AttributeError, KeyError)):
        _writer("episode_event")(event)


@pytest.mark.parametrize("value", [1.5, -2.7, True, 0.0])
def test_a_float_or_bool_for_an_int_is_written_as_fastavro_writes_it(value: Any) -> None:
    event = model.EpisodeEvent(event_id="e", occurred_at=1, tenant="t", agent="a",
                               episode_id="ep", seq=0, payload=model.Feedback(rating=1.0))
    object.__setattr__(event, "seq", value)
    assert _writer("episode_event")(event) == _fastavro("episode_event", event)


def test_every_released_version_compiles() -> None:
    for history in all_versions().values():
        for version in history:
            compile_writer(without_logical_types(version.raw), CLASSES)


def test_a_type_it_does_not_know_is_refused_at_compile_time() -> None:
    schema = {"type": "record", "name": "Feedback", "fields": [
        {"name": "score", "type": {"type": "fixed", "name": "F", "size": 4}}]}
    with pytest.raises(Unsupported):
        compile_writer(schema, CLASSES)
