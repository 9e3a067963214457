"""Avro object container files built from the bodies of single-object-encoded records.

A Kafka record holds one schemaless Avro body behind a 10-byte header. Bodies written with the
same schema concatenate into one container block, so a bulk reader (ClickHouse's `FORMAT Avro`,
`fastavro.reader`) decodes them in native code without Python touching each field: that is how
`kaizen rebuild` keeps up with the log. No body is decoded or re-encoded here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from kaizen.schemas.catalog import SchemaVersion

_MAGIC = b"Obj\x01"


def zigzag_varint(value: int) -> bytes:
    """An Avro `long`: zig-zag then base-128 varint."""
    number = (value << 1) ^ (value >> 63)
    out = bytearray()
    while number > 0x7F:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def _avro_bytes(data: bytes) -> bytes:
    return zigzag_varint(len(data)) + data


def container(schema: SchemaVersion, bodies: Sequence[bytes]) -> bytes:
    """One container file (null codec, a single block) holding `bodies`, all written with
    `schema`. An empty sequence gives a file with no block."""
    sync = os.urandom(16)
    metadata = {"avro.schema": json.dumps(schema.raw).encode(), "avro.codec": b"null"}
    header = bytearray(_MAGIC)
    header += zigzag_varint(len(metadata))
    for key, value in metadata.items():
        header += _avro_bytes(key.encode()) + _avro_bytes(value)
    header += b"\x00" + sync  # end of the metadata map, then the sync marker
    if not bodies:
        return bytes(header)
    block = b"".join(bodies)
    return b"".join((header, zigzag_varint(len(bodies)), zigzag_varint(len(block)), block, sync))
