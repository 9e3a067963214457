"""Avro container files assembled from single-object bodies read back with fastavro."""

from __future__ import annotations

import io
from typing import Any

import fastavro
from hypothesis import given
from hypothesis import strategies as st

from kaizen.schemas import model
from kaizen.schemas.catalog import latest
from kaizen.schemas.codec import SINGLE_OBJECT_HEADER_SIZE, Codec
from kaizen.schemas.container import container, zigzag_varint


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_zigzag_varint_is_avros_long_encoding(value: int) -> None:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, "long", value)
    assert zigzag_varint(value) == out.getvalue()


@given(st.lists(st.tuples(st.text(max_size=30), st.integers(0, 2**40)), max_size=40))
def test_container_holds_every_body_in_order(items: list[tuple[str, int]]) -> None:
    codec = Codec()
    events = [model.EpisodeEvent("3f2c9a4e-8d3b-4c1e-9a7f-2b6d5e4c3a21", at, "t", "a", task, i,
                                 model.EpisodeStarted(task))
              for i, (task, at) in enumerate(items)]
    schema = latest("episode_event")
    data = container(schema, [codec.encode(e)[SINGLE_OBJECT_HEADER_SIZE:] for e in events])
    read: list[Any] = list(fastavro.reader(io.BytesIO(data)))
    assert [(r["payload"]["task"], r["seq"]) for r in read] == [(t, i) for i, (t, _) in
                                                              enumerate(items)]
