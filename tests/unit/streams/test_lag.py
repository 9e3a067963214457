"""Which broker errors a lag probe waits out: a topic or group that is still being set up."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

from kaizen.streams.lag import _retriable


def test_a_partition_without_a_leader_yet_is_waited_out() -> None:
    # a topic faust has just created: the backtest crashed on this before it was retried
    assert _retriable(KafkaException(KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION)))
    assert _retriable(KafkaException(KafkaError(KafkaError.COORDINATOR_LOAD_IN_PROGRESS)))


def test_other_errors_are_raised() -> None:
    assert not _retriable(KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)))
    assert not _retriable(KafkaException("no error object"))
