"""`kaizen rebuild --to-offset N`: fresh stores from the log, as they were at that offset."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kaizen.service.rebuild import rebuild
from kaizen.settings import Settings


def _run(args: argparse.Namespace, settings: Settings) -> int:
    target = Path(args.into) if args.into else settings.home / f"rebuild-{args.to_offset}"
    report = rebuild(settings, args.to_offset, target, progress=True)
    print(f"rebuilt {report.events:,} events into {target} in {report.seconds:.1f}s "
          f"({report.rate:,.0f} events/s after {report.setup_seconds:.1f}s creating the stores)")
    if report.skipped:
        print(f"skipped {report.skipped:,} undecodable records (see them with `kaizen replay`)")
    for scope, sid in sorted(report.active.items()):
        print(f"active {scope}: {sid}")
    print(f"digest {report.digest}")
    return 0


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "rebuild", help="rebuild fresh stores from the log up to a snapshot-log offset")
    parser.add_argument("--to-offset", type=int, required=True,
                        help="snapshot-log offset (exclusive): the behavior as of offset N")
    parser.add_argument("--into", help="target dir (default: <home>/rebuild-N)")
    parser.set_defaults(handler=_run)
