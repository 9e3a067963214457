"""`kaizen up | status | down | topics create`: the local stack, as a user sees it.

`kaizen up --brokers 3` (or `KAIZEN_KAFKA_BROKERS=3`) starts a three-broker KRaft cluster and
creates the topics with replication 3 and min.insync.replicas 2; other commands reach it through
the same setting (`Settings.bootstrap` lists every node).
"""

from __future__ import annotations

import sys

from kaizen.infra.cluster import KafkaCluster
from kaizen.infra.kafka import KafkaLauncher, KafkaLauncherError
from kaizen.settings import Settings
from kaizen.streams.admin import create_topics as create_catalog_topics


def launcher(settings: Settings, secure: bool = False) -> KafkaLauncher | KafkaCluster:
    """The single broker, or the cluster when `kafka_brokers` > 1 or this home holds one (its
    size is kept: a cluster is never restarted as a smaller one)."""
    brokers = settings.local_brokers
    if brokers > 1:
        return KafkaCluster(home=settings.home, brokers=brokers, port=settings.kafka_port,
                            controller_port=settings.controller_port)
    return KafkaLauncher(
        home=settings.home, port=settings.kafka_port, controller_port=settings.controller_port,
        cache_dir=settings.jar_cache,
        port_options="KAIZEN_KAFKA_PORT / KAIZEN_KAFKA_CONTROLLER_PORT",
        secure=secure or settings.kafka_secure,
    )


def _local_only(settings: Settings) -> bool:
    if settings.uses_local_kafka:
        return True
    print(f"using your Kafka at {settings.kafka_bootstrap} (KAIZEN_KAFKA_BOOTSTRAP); "
          "the local launcher is not used")
    return False


def up(settings: Settings, secure: bool = False) -> int:
    if not _local_only(settings):
        return 0
    local = launcher(settings, secure)
    try:
        print(f"kafka: {local.up()} at {settings.bootstrap}")
    except KafkaLauncherError as error:
        print(f"kaizen up: {error}", file=sys.stderr)
        return 1
    if isinstance(local, KafkaLauncher) and local.secure:  # a cluster runs without SASL
        from kaizen.service.stack_secure import secure_up

        return secure_up(settings, local)
    return create_topics(settings)


def status(settings: Settings) -> int:
    if not _local_only(settings):
        return 0
    state = launcher(settings).status()
    for key, value in state.items():
        print(f"{key:>10}: {value}")
    return 0 if state.get("running") else 3


def down(settings: Settings) -> int:
    if not _local_only(settings):
        return 0
    print(f"kafka: {launcher(settings).down()}")
    return 0


def create_topics(settings: Settings) -> int:
    reports = create_catalog_topics(
        settings.bootstrap, settings.topic_prefix, settings.topic_partitions,
        client=settings.kafka_client,
        replication=settings.topic_replication,
    )
    for report in reports:
        print(f"topic {report.name:<28} {report.action:<8} partitions={report.partitions}")
    return 0
