"""The `kaizen` command line: one module per command, each owning its options (`register`).

`main` reads settings once, configures logs, and hands plain values to the command's handler.
Command modules import the server stack only inside their handlers, so `kaizen --help` and the
agent-side commands stay light.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from kaizen.cli import (
    analytics,
    backtest,
    deadletters,
    demo,
    experiences,
    forget,
    imports,
    mcp,
    process,
    rebuild,
    replay,
    serve,
    snapshots,
    stack,
)
from kaizen.errors import KaizenError
from kaizen.logs import configure_logging
from kaizen.settings import Settings, SettingsError, load_settings

Handler = Callable[[argparse.Namespace, Settings], int]

COMMANDS = (stack, replay, imports, backtest, process, experiences, serve, analytics, snapshots,
            deadletters, forget, rebuild, mcp, demo)
"""The command modules, in the order `kaizen --help` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kaizen", description="On-the-job learning for AI agent fleets."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"kaizen: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except KaizenError as error:
        print(f"kaizen: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
