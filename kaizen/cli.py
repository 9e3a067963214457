"""The `kaizen` command line. Reads settings once, configures logs, and hands plain values down."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from kaizen.logs import configure_logging
from kaizen.settings import Settings, SettingsError, load_settings

Handler = Callable[[argparse.Namespace, Settings], int]


def _stack(args: argparse.Namespace, settings: Settings) -> int:
    from kaizen import stack

    return {"up": stack.up, "status": stack.status, "down": stack.down}[args.command](settings)


def _topics(args: argparse.Namespace, settings: Settings) -> int:
    from kaizen import stack

    return stack.create_topics(settings)


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from kaizen import audit

    return audit.replay(args, settings)


def _process(args: argparse.Namespace, settings: Settings) -> int:
    from kaizen.process import run

    return run(args, settings)


def _experiences(args: argparse.Namespace, settings: Settings) -> int:
    from kaizen.experiences import list_experiences

    return list_experiences(args, settings)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from kaizen.service import serve

    return serve(settings, processors=not args.no_processors)


def _import(args: argparse.Namespace, settings: Settings) -> int:
    from kaizen.importers import run

    return run.run(args, settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kaizen", description="On-the-job learning for AI agent fleets."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in [
        ("up", "start the local Kafka broker (idempotent)"),
        ("status", "show the local stack"),
        ("down", "stop the local Kafka broker (data is kept)"),
    ]:
        sub.add_parser(name, help=text).set_defaults(handler=_stack)

    topics = sub.add_parser("topics", help="manage the topic catalog")
    topics_sub = topics.add_subparsers(dest="topics_command", required=True)
    topics_sub.add_parser("create", help="create missing topics (idempotent)").set_defaults(
        handler=_topics
    )

    replay = sub.add_parser("replay", help="decode a topic range to JSON lines (audit)")
    replay.add_argument("--topic", required=True, help="topic name, or a catalog short name")
    replay.add_argument("--from-offset", type=int)
    replay.add_argument("--to-offset", type=int, help="exclusive")
    replay.add_argument("--from-time", help="ISO time, UTC if no zone")
    replay.add_argument("--to-time", help="ISO time, exclusive")
    replay.add_argument("--where", action="append", default=[], metavar="FIELD=VALUE")
    replay.add_argument("--out", help="write JSON lines to this file instead of stdout")
    replay.set_defaults(handler=_replay)

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

    process = sub.add_parser("process", help="run the stream processors (a faust worker)")
    process.add_argument("--faust-log-level", default="warn",
                         choices=["crit", "error", "warn", "info", "debug"])
    process.add_argument("--faust-baseline", action="store_true",
                         help="run faust alone (take the episodes, do nothing): the ceiling of "
                              "faust on this machine, for sizing (bench/process.py prints it)")
    process.set_defaults(handler=_process)

    experiences = sub.add_parser("experiences", help="the lessons learned so far")
    experiences_sub = experiences.add_subparsers(dest="experiences_command", required=True)
    listing = experiences_sub.add_parser("list", help="list experiences, best supported first")
    listing.add_argument("--tenant")
    listing.add_argument("--agent")
    listing.add_argument("--status", choices=["candidate", "proposed", "quarantined"])
    listing.add_argument("--limit", type=int, default=20, help="0: all")
    listing.add_argument("--wide", action="store_true", help="full guidance text")
    listing.add_argument("--format", choices=["table", "json"], default="table")
    listing.set_defaults(handler=_experiences)

    serve = sub.add_parser("serve", help="sinks + processors + HTTP API in one process")
    serve.add_argument("--no-processors", action="store_true",
                       help="processors run elsewhere (`kaizen process` workers)")
    serve.set_defaults(handler=_serve)

    from kaizen.analytics_cli import add_parser as add_analytics

    add_analytics(sub)

    from kaizen.snapshot_cli import add_parser as add_snapshots

    add_snapshots(sub)

    from kaizen.rebuild import add_parser as add_rebuild

    add_rebuild(sub)

    from kaizen.demo.run import add_parser as add_demo

    add_demo(sub)

    from kaizen.integrations.mcp_server import add_parser as add_mcp

    add_mcp(sub)
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
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
