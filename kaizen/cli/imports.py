"""`kaizen import FILE...`: backfill existing agent logs as episode events."""

from __future__ import annotations

import argparse
from typing import Any

from kaizen.importers import run
from kaizen.settings import Settings


def _import(args: argparse.Namespace, settings: Settings) -> int:
    return run.run(args, settings)


def register(sub: Any) -> None:
    imports = sub.add_parser("import", help="backfill existing agent logs as episode events")
    imports.add_argument("files", nargs="+", metavar="FILE")
    imports.add_argument(
        "--format", choices=["auto", "react", "openai"], default="auto",
        help="auto: .txt is a ReAct log, .json/.jsonl are OpenAI chat trajectories",
    )
    imports.add_argument(
        "--agent", help="agent name (default: react-hotpotqa for ReAct logs, imported otherwise)"
    )
    imports.add_argument("--tenant", default="default")
    imports.add_argument(
        "--base-time", help="ISO time of each file's first event, UTC if no zone "
        "(default 2024-01-01T00:00:00Z: a re-import gives the same times)",
    )
    imports.set_defaults(handler=_import)
