"""`kaizen demo`: the main job, a static and a learning fleet in a drifting world."""

from __future__ import annotations

import argparse
import time
from typing import Any

from kaizen.demo.report import write_report
from kaizen.demo.report_data import report_data
from kaizen.demo.run import DemoConfig, run_demo, summary_lines
from kaizen.demo.world import World
from kaizen.service import stack
from kaizen.settings import Settings


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if stack.up(settings) != 0:
        return 1
    started = time.monotonic()
    config = DemoConfig(seed=args.seed, concurrency=args.concurrency, think_s=args.think)
    runs, figures, extra = run_demo(settings, config)
    world: World = extra["world"]
    lines = summary_lines(runs, figures, extra, world, time.monotonic() - started)
    for line in lines:
        print(line)
    path = write_report(settings.home / "report.html",
                        report_data(runs, figures, extra, world, lines))
    print(f"report: {path.resolve()}")
    return 0


def register(sub: Any) -> None:
    parser = sub.add_parser("demo", help="run the main job: static vs learning fleet")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--concurrency", type=int, default=6)
    parser.add_argument("--think", type=float, default=2.0, help="seconds of agent work")
    parser.set_defaults(handler=_run)
