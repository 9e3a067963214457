"""Hypothesis settings for the whole suite.

No deadline: a per-example time limit is a timed assertion, and on a shared 2-core machine it
fails for load, not for a defect (speed is measured by the benchmarks in bench/). The fuzz
targets take their example counts from `tests/fuzz/settings.py`, so a fuzz run never changes how
many examples the other property tests draw.
"""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("kaizen", deadline=None)
settings.load_profile("kaizen")
