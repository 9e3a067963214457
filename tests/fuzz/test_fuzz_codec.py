"""The codec on arbitrary bytes: a Kaizen event or `DecodeError`, nothing else, ever."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kaizen.schemas.catalog import all_versions
from kaizen.schemas.codec import Codec, DecodeError, single_object_header
from tests.fuzz.settings import fuzz

CODEC = Codec()
HEADERS = [single_object_header(v) for versions in all_versions().values() for v in versions]


def _decodes_or_refuses(data: bytes) -> None:
    try:
        CODEC.decode(data)
    except DecodeError:
        pass


@fuzz
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    _decodes_or_refuses(data)


@fuzz
@given(st.sampled_from(HEADERS), st.binary(max_size=4096))
def test_a_valid_header_with_an_arbitrary_body_decodes_or_raises_decode_error(
    header: bytes, body: bytes
) -> None:
    _decodes_or_refuses(header + body)


@fuzz
@given(st.binary(min_size=1, max_size=4), st.integers(0, 2**31 - 1), st.binary(max_size=512))
def test_confluent_framing_with_any_schema_id_decodes_or_raises_decode_error(
    magic: bytes, schema_id: int, body: bytes
) -> None:
    _decodes_or_refuses(b"\x00" + schema_id.to_bytes(4, "big") + body)
    _decodes_or_refuses(magic + body)
