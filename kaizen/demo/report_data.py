"""Turn a demo run into the report's data (kept apart so the runner stays about running)."""

from __future__ import annotations

from typing import Any

from kaizen.demo.metrics import Adaptation, Timed
from kaizen.demo.report import ReportData
from kaizen.demo.world import World


def report_data(runs: dict[str, list[Timed]], figures: list[Adaptation], extra: dict[str, Any],
                world: World, summary: list[str]) -> ReportData:
    return ReportData(
        fleets={name: [(t.result.index, t.result.success) for t in timed]
                for name, timed in runs.items()},
        drifts=[(d.index, d.name, d.description) for d in world.drifts],
        failures_by_signature=[(row["key"], int(row["failures"])) for row in extra["failures"]],
        repeats=[(f.drift, f.static_repeats_after, f.repeats_after,
                  f.in_flight if f.first_recovery_index is not None else None) for f in figures],
        snapshot_events=list(extra["snapshots"]["events"]),
        summary_lines=summary,
        title="Kaizen demo: a static and a learning fleet in a drifting world",
    )
