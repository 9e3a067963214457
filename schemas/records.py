"""Conversion between the dataclasses of `model.py` and the dicts fastavro reads and writes.

Converters are compiled once per class from its type hints, because the processors decode tens of
thousands of records a second and per-record reflection would dominate that cost.
"""

from __future__ import annotations

import base64
import dataclasses
import operator
import types
import typing
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, TypeVar

from kaizen.schemas import model

T = TypeVar("T")
Convert = Callable[[Any], Any]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def _identity(value: Any) -> Any:
    return value


def _to_int(value: Any) -> Any:
    """Avro logical timestamps come back as datetimes; the model keeps UTC milliseconds."""
    if isinstance(value, datetime):  # exact integer arithmetic: floats lose milliseconds
        return (value - _EPOCH) // _MILLISECOND
    return value


def _to_str(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value


def _record_classes(hint: Any) -> list[Any]:
    return [a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)]


def _reader_for(hint: Any) -> Convert:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _compiled_reader(hint)  # type: ignore[arg-type]
    if origin is list:
        item = _reader_for(typing.get_args(hint)[0])
        return _identity if item is _identity else (lambda v: [item(x) for x in v])
    if origin in (types.UnionType, typing.Union):
        classes = _record_classes(hint)
        if len(classes) > 1:  # fastavro returns (record name, dict) for a multi-record union
            by_name = {c.__name__: _compiled_reader(c) for c in classes}
            return lambda v: by_name[v[0].rsplit(".", 1)[-1]](v[1])
        if classes:
            inner = _compiled_reader(classes[0])
            return lambda v: None if v is None else inner(v)
        non_null = [a for a in typing.get_args(hint) if a is not type(None)]
        return _reader_for(non_null[0]) if len(non_null) == 1 else _identity
    if hint is int:
        return _to_int
    if hint is str:
        return _to_str
    return _identity


@cache
def _compiled_reader(cls: type[T]) -> Callable[[dict[str, Any]], T]:
    hints = typing.get_type_hints(cls, vars(model))
    fields = [(f.name, _reader_for(hints[f.name])) for f in dataclasses.fields(cls)]  # type: ignore[arg-type]

    def read(record: dict[str, Any]) -> T:
        return cls(**{name: conv(record[name]) for name, conv in fields if name in record})

    return read


def from_record(cls: type[T], record: dict[str, Any]) -> T:
    """Build a model object from a decoded Avro record."""
    reader: Callable[[dict[str, Any]], T] = _compiled_reader(cls)  # type: ignore[arg-type]
    return reader(record)


def _writer_for(hint: Any, namespace_of: Callable[[type], str]) -> Convert:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _compiled_writer(hint, namespace_of)  # type: ignore[arg-type]
    if origin is list:
        item = _writer_for(typing.get_args(hint)[0], namespace_of)
        return _identity if item is _identity else (lambda v: [item(x) for x in v])
    if origin in (types.UnionType, typing.Union):
        classes = _record_classes(hint)
        if len(classes) > 1:  # name the union branch so fastavro never guesses
            writers = {c: (namespace_of(c), _compiled_writer(c, namespace_of)) for c in classes}
            return lambda v: (writers[type(v)][0], writers[type(v)][1](v))
        if classes:
            inner = _compiled_writer(classes[0], namespace_of)
            return lambda v: None if v is None else inner(v)
    return _identity


@cache
def _compiled_writer(
    cls: type, namespace_of: Callable[[type], str]
) -> Callable[[Any], dict[str, Any]]:
    hints = typing.get_type_hints(cls, vars(model))
    fields = [(f.name, _writer_for(hints[f.name], namespace_of)) for f in dataclasses.fields(cls)]
    # Fields written as they are are read in one C call (emit() and every processor output
    # pass here: a Python call per plain field was ~40% of encoding an episode event)
    plain = tuple(name for name, conv in fields if conv is _identity)
    converted = [(name, conv) for name, conv in fields if conv is not _identity]
    get_plain = operator.attrgetter(*plain) if len(plain) > 1 else None

    def write(obj: Any) -> dict[str, Any]:
        if get_plain is not None:
            out = dict(zip(plain, get_plain(obj), strict=True))
        else:
            out = {name: getattr(obj, name) for name in plain}
        for name, conv in converted:
            out[name] = conv(getattr(obj, name))
        return out

    return write


def to_record(obj: Any, namespace_of: Callable[[type], str]) -> dict[str, Any]:
    """The Avro dict of a model object; `namespace_of` gives a record class's full Avro name."""
    writer: Callable[[Any], dict[str, Any]] = _compiled_writer(
        type(obj), namespace_of  # type: ignore[arg-type]
    )
    return writer(obj)


def to_json(event: Any) -> dict[str, Any]:
    """A model object as plain JSON-able data: the one converter for JSON (HTTP API, CLI, audit).

    Times stay epoch milliseconds as in the model, bytes become base64, UUIDs strings; a union
    payload gets a `type` field naming its record. `from_record` reads such a dict back.
    """
    out: dict[str, Any] = {}
    for f in dataclasses.fields(event):
        out[f.name] = _plain(getattr(event, f.name))
    payload = getattr(event, "payload", None)
    if payload is not None and dataclasses.is_dataclass(payload):
        out["payload"] = {"type": type(payload).__name__, **out["payload"]}
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value
