"""Bundles: several records for one key of an internal topic, carried in one Kafka record.

The assemble step forwards tool results (by agent) and signals to curate (by curation key) to
the processors' own next steps. One Kafka record each meant that faust read a third as many
records again as the episodes topic held, and faust's cost per record read is the largest
part of a worker's time. A batch now forwards one bundle per key (split past `MAX_BUNDLE_BYTES`),
holding the values in the order they were made:

    b"KZB1" (4 bytes) | then per value: its length (4 bytes, big-endian) | the value

The values are the records' own bytes (a tool result as the agent's event was written, under
the user's key when personal fields are encrypted), so nothing is decoded or re-encoded here.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from kaizen.schemas.codec import DecodeError

MAGIC = b"KZB1"
MAX_BUNDLE_BYTES = 256 * 1024  # well under Kafka's default 1 MiB message limit
_LENGTH = struct.Struct(">I")


def pack(values: Sequence[bytes]) -> bytes:
    """One bundle holding `values`, in order."""
    parts = [MAGIC]
    for value in values:
        parts += [_LENGTH.pack(len(value)), value]
    return b"".join(parts)


def pack_bounded(values: Iterable[bytes], max_bytes: int = MAX_BUNDLE_BYTES) -> list[bytes]:
    """Bundles of `values` in order, each at most `max_bytes` unless a single value is larger
    (it then goes alone: the topic takes what it took before bundles)."""
    bundles: list[bytes] = []
    run: list[bytes] = []
    size = len(MAGIC)
    for value in values:
        grown = size + _LENGTH.size + len(value)
        if run and grown > max_bytes:
            bundles.append(pack(run))
            run, grown = [], len(MAGIC) + _LENGTH.size + len(value)
        run.append(value)
        size = grown
    if run:
        bundles.append(pack(run))
    return bundles


def unpack(data: bytes) -> list[bytes]:
    """The values of a bundle; `DecodeError` if `data` is not a whole bundle."""
    if data[: len(MAGIC)] != MAGIC:
        raise DecodeError(f"not a bundle of the processors (starts {data[:8]!r})")
    values, at, end = [], len(MAGIC), len(data)
    while at < end:
        if at + _LENGTH.size > end:
            raise DecodeError(f"bundle cut inside a length at byte {at} of {end}")
        (length,) = _LENGTH.unpack_from(data, at)
        at += _LENGTH.size
        if at + length > end:
            raise DecodeError(f"bundle cut inside a value: {length} bytes at {at} of {end}")
        values.append(data[at : at + length])
        at += length
    return values
