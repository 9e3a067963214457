"""`processors/bundles.py`: many forwarded records in one Kafka record, and back, in order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaizen.processors.bundles import MAGIC, pack, pack_bounded, unpack
from kaizen.processors.config import TOOL_RESULTS_TOPIC, ProcessorConfig
from kaizen.processors.folding import Record, RecordFolds
from kaizen.processors.steps import DictStore, aggregate_step
from kaizen.schemas import model
from kaizen.schemas.codec import DecodeError
from tests.factories import episode_event


@given(st.lists(st.binary(max_size=300), max_size=40), st.integers(8, 2_000))
def test_bounded_bundles_carry_every_value_in_order_within_the_bound(
        values: list[bytes], max_bytes: int) -> None:
    bundles = pack_bounded(values, max_bytes)
    assert [v for bundle in bundles for v in unpack(bundle)] == values
    for bundle in bundles:  # over the bound only when one value alone is
        assert len(bundle) <= max_bytes or len(unpack(bundle)) == 1


@pytest.mark.parametrize("data", [b"", b"KZB", b"{}", pack([b"abc"])[:-1], MAGIC + b"\x00\x00"],
                         ids=["empty", "short", "foreign", "cut-value", "cut-length"])
def test_what_is_not_a_whole_bundle_raises_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        unpack(data)


def test_a_record_that_is_no_bundle_is_dead_lettered_and_the_next_is_folded() -> None:
    folds = RecordFolds(ProcessorConfig(bootstrap="unused"))
    topic = folds.config.internal(TOOL_RESULTS_TOPIC)
    result = folds.codec.encode(episode_event(model.ToolResult("c", "orders.get", False, "boom")))
    batch = aggregate_step(folds).process(DictStore(), [
        Record(topic, 0, 7, b"agent", b"not a bundle"),
        Record(topic, 0, 8, b"agent", pack([result, result]))])
    letters = [folds.codec.decode(o.value) for o in batch.outgoing
               if o.topic == folds.topics.deadletter]
    assert len(letters) == 1 and isinstance(letters[0], model.DeadLetter)
    assert letters[0].source_offset == 7 and "not a bundle" in letters[0].reason
    assert any(o.topic == folds.topics.patterns for o in batch.outgoing)
