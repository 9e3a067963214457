"""Adaptation figures of the demo's drifting world: the learning fleet against the static one.

For each novel failure: how many times the learning fleet hit it after its first recovery, next
to the episodes already in flight then (target: repeats <= in flight + 1); the time from the first
recovery to fleet-wide avoidance; success before / after each drift for both fleets.

Run: `python bench/drift.py [--think 2.0] [--concurrency 6]` after `make setup` (starts its own
broker and `kaizen serve` on a fresh topic prefix).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: bench importable

from bench.common import broker, free_port
from kaizen.demo.metrics import success_around
from kaizen.demo.run import DemoConfig, run_demo
from kaizen.logs import configure_logging
from kaizen.settings import load_settings


def main() -> int:
    parser = argparse.ArgumentParser(description="adaptation figures of the drifting world")
    parser.add_argument("--think", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=6)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    configure_logging("console", "warning")
    config = DemoConfig(seed=args.seed, concurrency=args.concurrency, think_s=args.think)
    with tempfile.TemporaryDirectory(prefix="kaizen-drift-") as tmp, broker(Path(tmp)) as boot:
        settings = load_settings(kafka_bootstrap=boot, home=Path(tmp) / "home",
                                 http_port=free_port())
        runs, figures, extra = run_demo(settings, config)
    print(f"\n{'novel failure':<28} {'repeats':>7} {'in flight':>9} {'target':>6} "
          f"{'static':>6} {'avoided after':>13}")
    for f in figures:
        avoided = "-" if f.avoided_after_s is None else f"{f.avoided_after_s:.1f} s"
        print(f"{f.drift:<28} {f.repeats_after:>7} {f.in_flight:>9} "
              f"{'ok' if f.within_target else 'MISS':>6} {f.static_repeats_after:>6} "
              f"{avoided:>13}")
    print(f"\n{'drift':<28} {'static before/after':>20} {'learning before/after':>22}")
    for drift in extra["world"].drifts:
        s = success_around(drift, runs["static"])
        learning = success_around(drift, runs["learning"])
        print(f"{drift.name:<28} {_pair(s):>20} {_pair(learning):>22}")
    caught = [e["action"] + " by " + e["actor"] for e in extra["snapshots"]["events"]
              if e["action"] in ("rejected", "rolled_back")]
    print(f"\nharmful lesson: {', '.join(caught) or 'NOT caught'}")
    return 0


def _pair(values: tuple[float | None, float | None]) -> str:
    return " / ".join("-" if v is None else f"{v:.0%}" for v in values)


if __name__ == "__main__":
    sys.exit(main())
