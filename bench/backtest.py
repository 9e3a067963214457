"""Backtest throughput and figures on real logs, in one run.

Prints episodes/s of `kaizen backtest` end to end (broker already up: pipeline start, replay, gate,
recalls, report), where the time went, and the report's figures with their denominators (the
coverage of recurring failures after support, the off-target share). `--json PATH` writes them:
`backtest_episodes_per_s`, `backtest_seconds`, and every integer figure of the report.

Run: `python bench/backtest.py [FILE ...] [--window N] [--json out.json]` after `make setup`;
default files: ../shared/data/tau2-bench/retail/*.json.gz. Starts its own broker in a temp dir
unless KAIZEN_KAFKA_BOOTSTRAP is set.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: bench importable

from bench.common import broker
from kaizen.backtest.run import BacktestConfig, run_backtest
from kaizen.logs import configure_logging
from kaizen.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_GLOB = "tau2-bench/retail/*.json.gz"


def _default_files() -> list[str]:
    for data in (ROOT.parent / "shared" / "data", Path("/work/shared/data")):
        files = sorted(str(p) for p in data.glob(DEFAULT_GLOB))
        if files:
            return files
    raise SystemExit(f"no files given and none found for {DEFAULT_GLOB}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="*")
    parser.add_argument("--window", type=int, default=BacktestConfig.window)
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    args = parser.parse_args()
    files = args.files or _default_files()
    configure_logging("auto", "warning")  # the gate's info lines would bury the figures
    with tempfile.TemporaryDirectory() as tmp, broker(Path(tmp)) as bootstrap:
        settings = load_settings(kafka_bootstrap=bootstrap, home=Path(tmp) / "home",
                                 topic_prefix="bench", log_level="warning")
        started = time.monotonic()
        report = run_backtest(files, settings, BacktestConfig(window=args.window,
                                                              progress=False))
        seconds = time.monotonic() - started
    figures = report.figures()
    rate = figures["episodes"] / seconds if seconds else 0.0
    after, covered = figures["recurring_after_support"], figures["recurring_with_relevant_lesson"]
    episodes, off = figures["episodes"], figures["episodes_with_off_target_lesson"]
    print(f"backtest of {len(files)} file(s), window {args.window}: {episodes:,} episodes in "
          f"{seconds:.0f} s = {rate:.2f} episodes/s")
    if report.timings is not None:
        print(f"  {report.timings.render()}")
    print(f"  recurring after support with a relevant lesson: {covered} of {after}"
          f" ({covered / after:.0%})" if after else "  no recurring failure after support")
    print(f"  episodes with an off-target lesson: {off} of {episodes}"
          f" ({off / episodes:.0%})" if episodes else "  no episodes")
    for name, value in figures.items():
        print(f"  {name:<36} {value:>8,}")
    if args.json:
        out = {"backtest_episodes_per_s": round(rate, 3), "backtest_seconds": round(seconds, 1),
               "backtest_window": args.window, **figures}
        Path(args.json).write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
