"""The broker with SASL/SCRAM and ACLs (`kaizen up --secure`): each role writes only its topics,
and a served pipeline whose every component logs in with its role's credentials learns lessons
end to end (two tenants using the same episode ids, each learning its own)."""

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
from tests.integration.test_service import _free_port, _get, _post
from tests.integration.test_snapshots import _teach, _wait_for
from tests.integration.workers import start_worker, stop_worker, worker_env

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


def test_a_served_pipeline_logs_in_everywhere_and_learns_two_tenants_same_episode_ids(
    secure_broker: KafkaLauncher, tmp_path: Path
) -> None:
    creds, port = secure_broker.credentials(), _free_port()
    env = worker_env(secure_broker.bootstrap, PREFIX, tmp_path / "home",
                     KAIZEN_HTTP_PORT=str(port), KAIZEN_TOPIC_PARTITIONS="1",
                     KAIZEN_GATE_SECONDS="1",
                     KAIZEN_KAFKA_USERNAME="service", KAIZEN_KAFKA_PASSWORD=creds["service"],
                     KAIZEN_KAFKA_PROCESSOR_USERNAME="processor",
                     KAIZEN_KAFKA_PROCESSOR_PASSWORD=creds["processor"])
    service = start_worker(env, tmp_path / "serve.log", command="serve")
    login = sasl_config("recorder", creds["recorder"])
    recorders = [Recorder("support-bot", tenant, bootstrap=secure_broker.bootstrap,
                          topic=Topics(PREFIX).episodes, spool_dir=tmp_path / "spool" / tenant,
                          producer_overrides=login, follow_snapshots=Topics(PREFIX).snapshots)
                 for tenant in ("acme", "globex")]
    try:
        for recorder, tool, wrong, right in ((recorders[0], "orders.get", "order", "order_id"),
                                             (recorders[1], "crm.find", "name", "full_name")):
            _teach(recorder, tool, wrong, right, 2, "ep")  # episode ids ep-0, ep-1 in both
            assert recorder.stats.failed == 0

        def lessons(tenant: str) -> set[str]:
            body = {"task": "ep task 9", "agent": "support-bot", "tenant": tenant,
                    "k": 10}
            try:
                return {x["tool"] for x in _post(port, "/recall", body)["lessons"]}
            except OSError:
                return set()  # not serving yet

        # learned, gated and activated: the processors (as `processor`) wrote the lessons, the
        # sinks and the gate (as `service`) read them and wrote the snapshot log
        _wait_for(lambda: lessons("acme") == {"orders.get"}
                  and lessons("globex") == {"crm.find"}, timeout=400)
        found = (_get(port, "/experiences") or {"experiences": []})["experiences"]
        by_tenant = {(x["tenant"], x["tool"]): x for x in found}
        for tenant, tool in (("acme", "orders.get"), ("globex", "crm.find")):
            lesson = by_tenant[tenant, tool]
            assert lesson["support_episodes"] == 2  # both of its tenant's ep-0 and ep-1
            assert sorted(e["episode_id"] for e in lesson["evidence"]) == ["ep-0", "ep-1"]
        health = _get(port, "/health") or {}
        assert health.get("status") == "ok", health
    finally:
        for recorder in recorders:
            recorder.close()
        stop_worker(service)
    log = (tmp_path / "serve.log").read_text()
    assert "TOPIC_AUTHORIZATION_FAILED" not in log and "Authorization failed" not in log
    assert creds["service"] not in log and creds["processor"] not in log
