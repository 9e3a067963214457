"""Encode and decode events as Avro binary with a schema identifier in front of every record.

Two framings, both readable years later:
- Avro single-object encoding (default): `C3 01` + 8-byte CRC-64-AVRO fingerprint + body. The
  fingerprint finds the writer schema among every version kept in `schemas/avro/`.
- Confluent Schema Registry framing (when a registry is configured): `00` + 4-byte schema id + body.
Records written with an older schema version are read into the current model (Avro resolution).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

import fastavro

from kaizen.errors import KaizenError
from kaizen.schemas import model
from kaizen.schemas.avro_reader import compile_reader
from kaizen.schemas.avro_writer import Unsupported, compile_writer
from kaizen.schemas.catalog import (
    SchemaVersion,
    all_versions,
    latest,
    record_full_names,
    without_logical_types,
)
from kaizen.schemas.records import from_record, to_record

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
SINGLE_OBJECT_HEADER_SIZE = 10  # the magic, then the 8-byte CRC-64-AVRO fingerprint
CONFLUENT_MAGIC = b"\x00"

#: Which schema each event class is written with.
SCHEMA_OF: dict[type, str] = {
    model.EpisodeEvent: "episode_event",
    model.Signal: "signal",
    model.Pattern: "pattern",
    model.Experience: "experience",
    model.SnapshotEvent: "snapshot_event",
    model.DeadLetter: "dead_letter",
    model.ForgetReceipt: "forget_receipt",
}
CLASS_OF: dict[str, type] = {name: cls for cls, name in SCHEMA_OF.items()}


def single_object_header(version: SchemaVersion) -> bytes:
    """What precedes every body written with `version` in single-object encoding: records that
    start with it can be handled in bulk without decoding (`kaizen rebuild`)."""
    return SINGLE_OBJECT_MAGIC + version.fingerprint


class DecodeError(KaizenError, ValueError):
    """A record that is not a Kaizen event: unknown framing, unknown schema, or corrupt body."""


class SchemaRegistry(Protocol):
    """What the codec needs from a Confluent-compatible registry (adapter in `streams/`)."""

    def register(self, subject: str, schema_json: str) -> int: ...

    def schema_json(self, schema_id: int) -> str: ...


@dataclass(frozen=True)
class Decoded:
    """A decoded record: its schema name and version, the Avro dict, and the model object."""

    schema: str
    version: int
    record: dict[str, Any]
    event: model.Event


@cache
def _full_names() -> dict[str, str]:
    names: dict[str, str] = {}
    for history in all_versions().values():
        names.update(record_full_names(history[-1].raw))
    return names


def _full_name(cls: type) -> str:
    return _full_names()[cls.__name__]


@cache
def _by_fingerprint() -> dict[bytes, SchemaVersion]:
    return {v.fingerprint: v for history in all_versions().values() for v in history}


@cache
def model_classes() -> dict[str, type]:
    """The model class of each Avro record name (its short name), which the compiled writers
    read and the compiled readers build."""
    return {name: cls for name, cls in vars(model).items() if isinstance(cls, type)}


@cache
def _compiled_writer(name: str, number: int) -> Callable[[Any], bytes] | None:
    """The compiled writer of a schema version (`avro_writer`), None if it is not supported."""
    version = next(v for v in all_versions()[name] if v.version == number)
    try:
        return compile_writer(without_logical_types(version.raw), model_classes())
    except Unsupported:
        return None


@cache
def _compiled_reader(name: str, number: int) -> Callable[[bytes, int], Any] | None:
    """The compiled reader of a schema version (`avro_reader`), None if it is not supported."""
    version = next(v for v in all_versions()[name] if v.version == number)
    try:
        return compile_reader(without_logical_types(version.raw), model_classes())
    except Unsupported:
        return None


class Codec:
    """Turns model events into framed Avro bytes and back. One per process is enough."""

    def __init__(self, registry: SchemaRegistry | None = None) -> None:
        self._registry = registry
        self._ids: dict[str, int] = {}
        self._by_id: dict[int, SchemaVersion] = {}

    def encode(self, event: model.Event) -> bytes:
        """Frame and serialize an event with the newest version of its schema."""
        version = latest(SCHEMA_OF[type(event)])
        write = _compiled_writer(version.name, version.version)
        if write is not None:
            return self._header(version) + write(event)
        body = io.BytesIO()
        body.write(self._header(version))
        fastavro.schemaless_writer(body, version.wire, to_record(event, _full_name))
        return body.getvalue()

    def decode(self, data: bytes) -> model.Event:
        """The model object of a framed record; raises `DecodeError` on anything else.

        A record of the newest version of its schema is read by the compiled reader
        (`avro_reader`); one it does not read as well-formed, or of an older version (schema
        resolution), by fastavro, which then decides: the same event, or the same error."""
        writer = self._writer_of(data)
        event = self._read_compiled(data, writer)
        return event if event is not None else self._decode_full(data, writer).event

    def decode_full(self, data: bytes) -> Decoded:
        """Decode with the schema name and the raw Avro dict (for audit replay)."""
        return self._decode_full(data, self._writer_of(data))

    def _read_compiled(self, data: bytes, writer: SchemaVersion) -> model.Event | None:
        """The event by the compiled reader; None if there is none for `writer` (not the newest
        version, or not supported) or it does not read the body as well-formed."""
        if latest(writer.name) is not writer:
            return None  # schema resolution: fastavro's
        read = _compiled_reader(writer.name, writer.version)
        if read is None:
            return None
        try:
            event: model.Event = read(data if type(data) is bytes else bytes(data),
                                      self._header_size(data))
        except Exception:  # noqa: BLE001 - any error: fastavro decides (event or DecodeError)
            return None
        return event

    def _decode_full(self, data: bytes, writer: SchemaVersion) -> Decoded:
        reader = latest(writer.name)
        try:
            record: dict[str, Any] = fastavro.schemaless_reader(  # type: ignore[assignment]
                io.BytesIO(data[self._header_size(data) :]),
                writer.wire,
                None if reader is writer else reader.wire,
                return_record_name=True,
                return_record_name_override=True,
            )
            event: model.Event = from_record(CLASS_OF[writer.name], record)
        except Exception as error:  # corrupt bodies raise many kinds of errors inside fastavro
            raise DecodeError(f"corrupt {writer.name} v{writer.version} record: {error}") from error
        return Decoded(writer.name, writer.version, record, event)

    def _header(self, version: SchemaVersion) -> bytes:
        if self._registry is None:
            return single_object_header(version)
        if version.full_name not in self._ids:
            schema_id = self._registry.register(f"{version.full_name}-value", version.canonical)
            self._ids[version.full_name] = schema_id
            self._by_id[schema_id] = version
        return CONFLUENT_MAGIC + self._ids[version.full_name].to_bytes(4, "big")

    @staticmethod
    def _header_size(data: bytes) -> int:
        return SINGLE_OBJECT_HEADER_SIZE if data[:2] == SINGLE_OBJECT_MAGIC else 5

    def _writer_of(self, data: bytes) -> SchemaVersion:
        if data[:2] == SINGLE_OBJECT_MAGIC and len(data) >= SINGLE_OBJECT_HEADER_SIZE:
            version = _by_fingerprint().get(data[2:10])
            if version is None:
                raise DecodeError(f"unknown schema fingerprint {data[2:10].hex()}")
            return version
        if data[:1] == CONFLUENT_MAGIC and len(data) >= 5:
            return self._registered(int.from_bytes(data[1:5], "big"))
        raise DecodeError("not a Kaizen record: no Avro single-object or Confluent header")

    def _registered(self, schema_id: int) -> SchemaVersion:
        if schema_id not in self._by_id:
            if self._registry is None:
                raise DecodeError(f"Confluent framing (schema id {schema_id}) needs a registry")
            canonical = fastavro.schema.to_parsing_canonical_form(
                fastavro.parse_schema(json.loads(self._registry.schema_json(schema_id)))
            )
            match = [v for v in _by_fingerprint().values() if v.canonical == canonical]
            if not match:
                raise DecodeError(f"registry schema id {schema_id} is no Kaizen schema version")
            self._by_id[schema_id] = match[0]
        return self._by_id[schema_id]
