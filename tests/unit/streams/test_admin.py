"""How `create_topics` classifies a failed CreateTopics future: CI once lost a whole run to a
request that a just-started three-broker cluster dropped with `_DESTROY_BROKER` (librdkafka swaps
its bootstrap handles for the brokers it learns), so such errors are sent again, not raised."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from kaizen.streams.admin import _failed, is_transient
from kaizen.streams.topics import catalog

SPEC = catalog(3)[0]


def _error(code: int, text: str = "") -> KafkaException:
    return KafkaException(KafkaError(code, text))


@pytest.mark.parametrize("code", [KafkaError._DESTROY_BROKER, KafkaError._TRANSPORT,
                                  KafkaError._TIMED_OUT, KafkaError.NOT_CONTROLLER])
def test_a_lost_connection_is_sent_again(code: int) -> None:
    assert is_transient(_error(code))
    assert _failed("t", SPEC, _error(code)) is None


def test_an_existing_topic_is_reported_as_existing() -> None:
    report = _failed("t", SPEC, _error(KafkaError.TOPIC_ALREADY_EXISTS,
                                       "TOPIC_ALREADY_EXISTS: Topic 't' already exists."))
    assert report is not None and report.action == "exists"


def test_a_refused_topic_is_reported_as_no_access() -> None:
    report = _failed("t", SPEC, _error(KafkaError.TOPIC_AUTHORIZATION_FAILED,
                                       "TOPIC_AUTHORIZATION_FAILED"))
    assert report is not None and report.action == "no-access"


def test_an_invalid_request_is_raised() -> None:
    error = _error(KafkaError.INVALID_REPLICATION_FACTOR, "replication 3 > 1 broker")
    assert not is_transient(error)
    with pytest.raises(KafkaException):
        _failed("t", SPEC, error)
