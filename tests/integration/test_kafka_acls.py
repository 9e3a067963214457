"""The broker with SASL/SCRAM and ACLs (`kaizen up --secure`): each role writes only its topics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer

from kaizen.infra.kafka import KafkaLauncher
from kaizen.schemas import model
from kaizen.service.stack import up
from kaizen.settings import load_settings
from kaizen.streams.acls import sasl_config
from kaizen.streams.recorder import Recorder
from kaizen.streams.replay import Bounds, TopicReader
from kaizen.streams.topics import Topics
from tests.integration.conftest import _jar_cache, free_port_pair

PREFIX = "sec"


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaLauncher]:
    """`kaizen up --secure` on a private home: the real launcher, topics and ACLs."""
    home = tmp_path_factory.mktemp("kafka-secure")
    port, controller = free_port_pair()
    settings = load_settings(home=home, kafka_port=port, kafka_controller_port=controller,
                             topic_prefix=PREFIX, topic_partitions=1)
    launcher = KafkaLauncher(home=home, port=port, controller_port=controller,
                             cache_dir=_jar_cache(), secure=True)
    launcher.up()  # fetches nothing: the jar cache of the session is used
    try:
        assert up(settings, secure=True) == 0
        yield launcher
    finally:
        launcher.down()


def _produce(launcher: KafkaLauncher, user: str, topic: str) -> KafkaError | None:
    errors: list[KafkaError | None] = []
    producer = Producer({"bootstrap.servers": launcher.bootstrap, "enable.idempotence": True,
                         "acks": "all", "message.timeout.ms": 20_000,
                         **sasl_config(user, launcher.credentials()[user])})
    producer.produce(topic, b"forged lesson", b"k", on_delivery=lambda e, m: errors.append(e))
    producer.flush(30)
    assert len(errors) == 1  # a delivery report arrived: allowed or refused, never lost in limbo
    return errors[0]


def _code(error: KafkaError | None) -> int | None:
    return None if error is None else error.code()


def test_a_recorders_credentials_write_episodes_but_cannot_produce_derived_topics(
    secure_broker: KafkaLauncher, tmp_path: Path
) -> None:
    topics = Topics(PREFIX)
    creds = secure_broker.credentials()
    recorder = Recorder("bot", "acme", bootstrap=secure_broker.bootstrap, topic=topics.episodes,
                        spool_dir=tmp_path / "spool" / "acme.bot",
                        producer_overrides=sasl_config("recorder", creds["recorder"]))
    with recorder.episode("hello", episode_id="ep-secure") as ep:
        ep.end(success=True)
    assert recorder.flush(30) == 0
    recorder.close()
    assert recorder.stats.delivered == 2 and recorder.stats.failed == 0

    denied = KafkaError.TOPIC_AUTHORIZATION_FAILED
    for topic in (topics.experiences, topics.signals, topics.patterns, topics.snapshots):
        assert _code(_produce(secure_broker, "recorder", topic)) == denied, topic
    assert _code(_produce(secure_broker, "processor", topics.experiences)) is None
    assert _code(_produce(secure_broker, "processor", topics.snapshots)) == denied
    assert _code(_produce(secure_broker, "service", topics.snapshots)) is None
    assert _code(_produce(secure_broker, "service", topics.experiences)) == denied

    admin = sasl_config("admin", creds["admin"])
    reader = TopicReader(secure_broker.bootstrap, topics.episodes, Bounds(), client=admin)
    started = [r.event for r in reader.records()
               if isinstance(r.event, model.EpisodeEvent) and r.event.episode_id == "ep-secure"]
    assert len(started) == 2


def test_without_credentials_nothing_is_written(secure_broker: KafkaLauncher) -> None:
    producer = Producer({"bootstrap.servers": secure_broker.bootstrap,
                         "message.timeout.ms": 5_000})
    errors: list[KafkaError | None] = []
    producer.produce(Topics(PREFIX).experiences, b"x", on_delivery=lambda e, m: errors.append(e))
    producer.flush(15)
    assert errors and errors[0] is not None
