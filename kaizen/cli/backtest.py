"""`kaizen backtest FILE...`: how many of my past repeated failures would Kaizen have prevented?

Replays the logs (any `kaizen import` format) through the real pipeline on a fresh topic prefix
and data dir, recalling before each episode (`kaizen.backtest`). Prints a table (progress on
stderr), or `--format json`; `--html PATH` writes the report as a page.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any

from kaizen.backtest.pipeline import PipelineError
from kaizen.backtest.run import TOOLS_MODES, BacktestConfig, run_backtest
from kaizen.importers.formats import FORMATS
from kaizen.logs import configure_logging
from kaizen.settings import Settings


def register(sub: Any) -> None:
    parser = sub.add_parser("backtest", help="replay past logs through the pipeline and count "
                                             "the repeated failures recall would have covered")
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument("--format", choices=["table", "json"], default="table")
    parser.add_argument("--window", type=int, default=BacktestConfig.window,
                        help="episodes in flight together: their recall sees what was learnt "
                             "before the window (default %(default)s)")
    parser.add_argument("--k", type=int, default=BacktestConfig.k,
                        help="lessons per recall at the start of an episode")
    parser.add_argument("--start-margin", type=_margin, default=BacktestConfig.start_margin,
                        help="the start recall keeps lessons within this of its best hit "
                             "(default %(default)s; 'none': no cut)")
    parser.add_argument("--call-k", type=int, default=BacktestConfig.call_k,
                        help="lessons per point-of-use recall before each call, as "
                             "kaizen.recall_for_call (0: none; default %(default)s)")
    parser.add_argument("--call-margin", type=_margin, default=BacktestConfig.call_margin,
                        help="point-of-use recall keeps lessons within this of its best hit "
                             "(default %(default)s; 'none': no cut)")
    parser.add_argument("--tools", choices=TOOLS_MODES, default=BacktestConfig.tools,
                        help="tools passed to the recall at the start of an episode: none "
                             "(lessons about no tool; tool lessons come before each call), the "
                             "agent's toolset (available) or the tools the episode then called "
                             "(called); default %(default)s")
    parser.add_argument("--tenant", default=BacktestConfig.tenant)
    parser.add_argument("--agent", help="one agent name for every file (default: from the log)")
    parser.add_argument("--input-format", choices=FORMATS, default="auto",
                        help="importer format of the files (default: detected)")
    parser.add_argument("--approve", action="store_true",
                        help="approve every candidate the policy leaves for a human (it waits "
                             "when more than KAIZEN_MAX_AUTO_CHANGE lessons change at once)")
    parser.add_argument("--html", metavar="PATH", help="also write the report as an HTML page")
    parser.add_argument("--keep", action="store_true",
                        help="keep the backtest's data dir (under KAIZEN_HOME/backtest)")
    parser.set_defaults(handler=run)


def _margin(text: str) -> float | None:
    """A margin option: a number >= 0, or 'none' for no cut."""
    if text.lower() == "none":
        return None
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("a margin is >= 0 (or 'none')")
    return value


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.window < 1 or args.k < 0 or args.call_k < 0:
        print("kaizen backtest: --window must be >= 1, --k and --call-k >= 0", file=sys.stderr)
        return 2
    if settings.log_level == "info":
        configure_logging(settings.log_format, "warning")  # the gate's info lines drown the bar
    config = BacktestConfig(window=args.window, k=args.k, start_margin=args.start_margin,
                            call_k=args.call_k, call_margin=args.call_margin,
                            tenant=args.tenant, agent=args.agent,
                            tools=args.tools, input_format=args.input_format, keep=args.keep,
                            approve=args.approve, progress=True)
    if threading.current_thread() is threading.main_thread():  # `timeout` sends SIGTERM: stop
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))  # what we started
    try:
        report = run_backtest(args.files, settings, config)
    except ValueError as error:
        print(f"kaizen backtest: {error}", file=sys.stderr)
        return 2
    except PipelineError as error:
        print(f"kaizen backtest: {error}", file=sys.stderr)
        return 1
    if args.format == "json":
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        print(report.render_table())
    if args.html:
        from kaizen.backtest.html import write_backtest_page

        print(f"report: {write_backtest_page(args.html, report)}", file=sys.stderr)
    for problem in report.read_errors:
        print(f"kaizen backtest: {problem}", file=sys.stderr)
    return 1 if report.read_errors else 0
