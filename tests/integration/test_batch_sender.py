"""The processors' output sender (`streams/batch_sender.py`) on the real broker: records land
where faust's producer put them, in order, and a batch the broker cannot take raises."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.partitioner import DefaultPartitioner

from kaizen.processors.folding import Outgoing
from kaizen.streams.batch_sender import BatchSender, OutputsRefused
from tests.integration.conftest import KafkaBroker
from tests.integration.kafka_helpers import consume_all, make_topics


def test_keys_land_in_the_partitions_faust_chose_for_them_in_order(
        kafka_broker: KafkaBroker, unique_topic_prefix: str) -> None:
    topic = make_topics(kafka_broker.bootstrap, unique_topic_prefix).signals
    records = [Outgoing(topic, f"tenant/agent/key-{i % 40}".encode(), str(i).encode())
               for i in range(400)]
    sender = BatchSender(kafka_broker.bootstrap)
    try:
        asyncio.run(sender.send(records))
    finally:
        sender.close()
    messages = consume_all(kafka_broker.bootstrap, topic, len(records))
    partitioner = DefaultPartitioner()
    assert len(messages) == len(records)
    for message in messages:  # aiokafka's partitioner: the one faust's producer used
        assert message.partition() == partitioner(message.key(), [0, 1, 2], [0, 1, 2])
    by_key: dict[bytes, list[int]] = {}
    for message in messages:
        by_key.setdefault(message.key() or b"", []).append(int(message.value() or b""))
    assert all(values == sorted(values) for values in by_key.values())


def test_a_batch_the_broker_cannot_take_raises_outputs_refused(kafka_broker: KafkaBroker,
                                                                unique_topic_prefix: str) -> None:
    topic = make_topics(kafka_broker.bootstrap, unique_topic_prefix).signals
    too_large = Outgoing(topic, b"k", b"x" * 2_000_000)  # over the broker's message.max.bytes

    sender = BatchSender(kafka_broker.bootstrap, timeout_s=30)
    with pytest.raises(OutputsRefused, match="size"):
        asyncio.run(sender.send([Outgoing(topic, b"k", b"fine"), too_large]))
    sender.close()
