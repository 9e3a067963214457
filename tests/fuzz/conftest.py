"""Hypothesis fuzz targets: a short run in `make test` (300 inputs each), 10k inputs each in
`make fuzz` (`tests/fuzz/settings.py`).

Each target feeds arbitrary input to one boundary where outside data enters Kaizen (the codec,
the importers, error normalisation, the HTTP API) and asserts it either works or refuses cleanly.
"""

from __future__ import annotations

from tests.integration.conftest import kafka_broker  # noqa: F401 - the HTTP target's broker

