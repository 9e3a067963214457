"""Fault tests: each one reproduces a defect of issue 13 against the real broker and stores.

They reuse the integration fixtures (one session broker on free ports, private launchers for tests
that stop or kill brokers, a fresh topic prefix per test).
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import (  # noqa: F401 - fixtures are found by name
    kafka_broker,
    kafka_launcher_factory,
    outage_broker,
    unique_topic_prefix,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every fault test needs the real broker or stores: mark it so `-m 'not integration'` skips."""
    for item in items:
        if "tests/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
