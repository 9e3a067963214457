"""The main job, shortened: the learning fleet beats the static one after the drifts, and the
injected harmful lesson is caught by the gate or the monitor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kaizen.demo.metrics import success_around
from kaizen.demo.run import DemoConfig, run_demo
from kaizen.settings import load_settings
from tests.integration.test_service import _free_port


@pytest.mark.timeout(900)  # minutes on a loaded 2-core machine
def test_the_learning_fleet_recovers_after_drifts_and_the_harmful_lesson_is_caught(
    kafka_broker: Any, tmp_path: Path
) -> None:
    settings = load_settings(kafka_bootstrap=kafka_broker.bootstrap, home=tmp_path / "home",
                             http_port=_free_port())
    runs, figures, extra = run_demo(settings, DemoConfig(think_s=1.0))
    static = sum(t.result.success for t in runs["static"])
    learning = sum(t.result.success for t in runs["learning"])
    assert learning > static
    world = extra["world"]
    last = world.drifts[-2]  # after the last tool drift, the static fleet stays broken
    assert success_around(last, runs["learning"])[1] > success_around(last, runs["static"])[1]
    assert all(f.first_recovery_index is not None for f in figures)
    assert sum(f.repeats_after for f in figures) < sum(f.static_repeats_after for f in figures)
    caught = [e for e in extra["snapshots"]["events"] if e["action"] in ("rejected", "rolled_back")]
    assert extra["injected"] and caught
