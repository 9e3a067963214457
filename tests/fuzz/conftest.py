"""Hypothesis fuzz targets: a short run in `make test` (profile `short`, the default here), 10k
inputs each in `make fuzz` (`pytest tests/fuzz --hypothesis-profile=fuzz`).

Each target feeds arbitrary input to one boundary where outside data enters Kaizen (the codec,
the importers, error normalisation, the HTTP API) and asserts it either works or refuses cleanly.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

from tests.integration.conftest import kafka_broker  # noqa: F401 - the HTTP target's broker

_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow,
                                                       HealthCheck.data_too_large]}
settings.register_profile("short", max_examples=300, **_COMMON)  # type: ignore[arg-type]
settings.register_profile("fuzz", max_examples=10_000, **_COMMON)  # type: ignore[arg-type]
settings.load_profile("short")
