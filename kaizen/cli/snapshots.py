"""`kaizen snapshots list | show | diff | approve | reject | activate | rollback`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from kaizen.cli.options import parse_time_ms
from kaizen.cli.tables import render_table
from kaizen.client.api import ApiError, api_base, post_json
from kaizen.processors.learning.snapshots import scope_of
from kaizen.service.http_api import snapshot_rows
from kaizen.service.snapshot_actions import Request, diff, events_for, read_log
from kaizen.settings import Settings
from kaizen.streams.snapshot_log import publish
from kaizen.streams.topics import Topics


def run(args: argparse.Namespace, settings: Settings) -> int:
    topic = Topics(settings.topic_prefix).snapshots
    log = read_log(settings.bootstrap, topic, settings.kafka_client)
    command = args.snapshots_command
    if command == "list":
        scope = scope_of(args.tenant, args.agent) if args.tenant and args.agent else None
        rows = snapshot_rows(log, scope)
        for row in rows:
            row["snapshot_id"] = row["snapshot_id"][:12]
            row["parent"] = (row["parent"] or "")[:12]
            row["edge_cases"] = len(row["edge_cases"])
            del row["tenant"], row["agent"]  # the scope column names them
        print(render_table(rows) if rows else "no snapshot events yet")
        for name in sorted(log.scopes):
            print(f"active {name}: {log.active(name) or '(none: all proposed lessons)'}")
        return 0
    if command == "show":
        members = log.members(args.snapshot_id)
        if members is None:
            print(f"unknown snapshot {args.snapshot_id}", file=sys.stderr)
            return 2
        print(json.dumps({"snapshot_id": args.snapshot_id, "status": log.status(args.snapshot_id),
                          "members": [m.experience_id for m in members]}, indent=2))
        return 0
    if command == "diff":
        print(json.dumps(diff(log, args.a, args.b), indent=2))
        return 0
    if settings.api_url or settings.api_token is not None:
        return _via_api(args, settings)
    request = Request(command, args.tenant, args.agent, getattr(args, "snapshot_id", None)
                      or getattr(args, "to", None), parse_time_ms(getattr(args, "to_time", None)),
                      getattr(args, "to_offset", None), actor=args.actor, reason=args.reason)
    try:
        events = events_for(log, request)
    except ValueError as error:
        print(f"kaizen snapshots {command}: {error}", file=sys.stderr)
        return 2
    offsets = publish(settings.bootstrap, topic, events, client=settings.kafka_client)
    for event, offset in zip(events, offsets, strict=True):
        print(f"{event.action:<11} {event.snapshot_id} at offset {offset}")
    return 0


def _via_api(args: argparse.Namespace, settings: Settings) -> int:
    """The action through the service's API, as the token's identity (`--actor` is ignored):
    what an operator does where only the service may write the snapshot log."""
    body = {"tenant": args.tenant, "agent": args.agent, "reason": args.reason,
            "snapshot_id": getattr(args, "snapshot_id", None) or getattr(args, "to", None),
            "to_time_ms": parse_time_ms(getattr(args, "to_time", None)),
            "to_offset": getattr(args, "to_offset", None)}
    try:
        answer = post_json(settings, f"/snapshots/{args.snapshots_command}", body)
    except (ApiError, OSError) as error:
        print(f"kaizen snapshots {args.snapshots_command}: {error}", file=sys.stderr)
        return 2
    for event_id in answer["events"]:
        print(f"{args.snapshots_command:<11} event {event_id} (via {api_base(settings)})")
    return 0


def register(sub: Any) -> None:
    parser = sub.add_parser("snapshots", help="behavior snapshots: list, approve, roll back")
    commands = parser.add_subparsers(dest="snapshots_command", required=True)
    listing = commands.add_parser("list", help="the snapshot timeline and active snapshots")
    listing.add_argument("--tenant")
    listing.add_argument("--agent")
    commands.add_parser("show", help="members of a snapshot").add_argument("snapshot_id")
    differ = commands.add_parser("diff", help="lessons that differ between two snapshots")
    differ.add_argument("a")
    differ.add_argument("b")
    for name, text in (("approve", "approve and activate a waiting snapshot"),
                       ("reject", "reject a waiting snapshot"),
                       ("activate", "activate a known snapshot")):
        action = commands.add_parser(name, help=text)
        action.add_argument("snapshot_id")
        _scope_args(action)
    rollback = commands.add_parser("rollback", help="go back to earlier behavior")
    target = rollback.add_mutually_exclusive_group(required=True)
    target.add_argument("--to", help="a snapshot id")
    target.add_argument("--to-time", help="the behavior active at this ISO time")
    target.add_argument("--to-offset", type=int, help="the behavior as of this log offset")
    _scope_args(rollback)
    parser.set_defaults(handler=lambda a, s: run(a, s))


def _scope_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--agent", required=True)
    parser.add_argument("--actor", default="cli", help="who is acting (recorded in the log); "
                        "with KAIZEN_API_TOKEN the token's identity is the actor")
    parser.add_argument("--reason")
