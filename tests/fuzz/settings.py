"""How many inputs each fuzz target draws: 300 in `make test`, 10,000 in `make fuzz`
(`KAIZEN_FUZZ_EXAMPLES=10000`)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

fuzz = settings(
    max_examples=int(os.environ.get("KAIZEN_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
