"""Fixtures for integration tests: one real Kafka broker for the whole session.

The broker runs in a temp home on free ports (never the default 19092), so a developer's own
`kaizen up` stack keeps running undisturbed while the suite runs.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import pytest

from kaizen.infra.kafka import KafkaLauncher, default_jar_cache


@dataclass(frozen=True)
class KafkaBroker:
    """The session broker: what a test needs to connect (`bootstrap`) or inspect (`launcher`)."""

    launcher: KafkaLauncher

    @property
    def bootstrap(self) -> str:
        return self.launcher.bootstrap


def free_port_pair() -> tuple[int, int]:
    """Two ports the OS reports free now (bound together, so they differ)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(2)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        first, second = (sock.getsockname()[1] for sock in socks)
    return first, second


def _jar_cache() -> Path:
    """The same jar cache `make jars` fills, so the suite never downloads twice."""
    env_cache = os.environ.get("KAIZEN_JAR_CACHE")
    return Path(env_cache) if env_cache else default_jar_cache()


def _new_launcher(home: Path) -> KafkaLauncher:
    port, controller_port = free_port_pair()
    return KafkaLauncher(
        home=home, port=port, controller_port=controller_port, cache_dir=_jar_cache()
    )


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """One broker for the whole session, stopped at the end."""
    launcher = _new_launcher(tmp_path_factory.mktemp("kafka-session"))
    launcher.up()
    try:
        yield KafkaBroker(launcher)
    finally:
        launcher.down()


@pytest.fixture
def kafka_launcher_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[], KafkaLauncher]]:
    """Make private launchers (own home, own ports) for tests that stop and start brokers.

    Each is stopped at teardown, so a failing test leaves no broker behind.
    """
    made: list[KafkaLauncher] = []

    def make() -> KafkaLauncher:
        launcher = _new_launcher(tmp_path_factory.mktemp("kafka-private"))
        made.append(launcher)
        return launcher

    yield make
    for launcher in made:
        launcher.down()


@pytest.fixture
def unique_topic_prefix() -> str:
    """A fresh prefix per test, so tests sharing the session broker never see each other's data."""
    return f"t{uuid4().hex[:10]}"


@pytest.fixture
def outage_broker(kafka_launcher_factory: Callable[[], KafkaLauncher]) -> KafkaLauncher:
    """A private running broker that a test may stop and start (outages, restarts)."""
    launcher = kafka_launcher_factory()
    launcher.up()
    return launcher
