"""The local Kafka launcher against a real broker: idempotence, durability, clear failures."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer

from kaizen.infra.kafka import KafkaLauncher, KafkaLauncherError

if TYPE_CHECKING:  # conftest is not importable at run time (no package here); types only
    from tests.integration.conftest import KafkaBroker


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    failures: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            failures.append(error)

    producer = Producer({"bootstrap.servers": bootstrap})
    for value in values:
        producer.produce(topic, value, on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert failures == []


def consume(bootstrap: str, topic: str, count: int, timeout: float = 30) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}-reader",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            value = message.value()
            assert value is not None
            values.append(value)
    finally:
        consumer.close()
    return values


def test_up_is_idempotent(kafka_broker: KafkaBroker) -> None:
    assert kafka_broker.launcher.up() == "already running"
    status = kafka_broker.launcher.status()
    assert status["running"] is True
    assert status["bootstrap"] == kafka_broker.bootstrap


def test_data_survives_down_and_up(
    kafka_launcher_factory: Callable[[], KafkaLauncher], unique_topic_prefix: str
) -> None:
    launcher = kafka_launcher_factory()
    topic = f"{unique_topic_prefix}.durable"
    values = [f"event-{i}".encode() for i in range(10)]
    launcher.up()
    produce(launcher.bootstrap, topic, values)

    assert launcher.down().startswith("stopped")
    assert launcher.down() == "not running"
    assert launcher.status()["running"] is False
    assert launcher.up().startswith("started")

    assert consume(launcher.bootstrap, topic, len(values)) == values


def test_up_on_a_taken_port_names_the_port(
    kafka_launcher_factory: Callable[[], KafkaLauncher],
) -> None:
    launcher = kafka_launcher_factory()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", launcher.port))
        squatter.listen()
        with pytest.raises(KafkaLauncherError, match=f"port {launcher.port}"):
            launcher.up()
    assert not launcher.pid_file.exists()
