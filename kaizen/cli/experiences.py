"""`kaizen experiences list`: the lessons learned so far, best supported first."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from kaizen.cli.tables import render_table
from kaizen.schemas import model
from kaizen.schemas.records import to_json
from kaizen.schemas.scope import scope_key
from kaizen.settings import Settings
from kaizen.streams.latest import latest_experiences
from kaizen.streams.topics import Topics


def _selected(
    experiences: list[model.Experience], args: argparse.Namespace
) -> tuple[list[model.Experience], int]:
    """The rows to show (best supported first, at most `--limit`) and how many matched."""
    chosen = [
        x for x in experiences
        if (args.tenant is None or x.tenant == args.tenant)
        and (args.agent is None or x.agent == args.agent)
        and (args.status is None or x.status == args.status)
    ]
    chosen.sort(key=lambda x: (-x.support_episodes, x.experience_id))
    return (chosen[: args.limit] if args.limit else chosen), len(chosen)


def shown_note(shown: int, matched: int) -> str | None:
    """What a user must be told when the table is not everything (None when it is)."""
    if shown >= matched:
        return None
    return f"showing {shown} of {matched} experiences (best supported first); raise --limit"


def list_experiences(args: argparse.Namespace, settings: Settings) -> int:
    experiences, matched = _selected(
        latest_experiences(settings.bootstrap, Topics(settings.topic_prefix).experiences,
                           settings.kafka_client), args
    )
    note = shown_note(len(experiences), matched)
    if note:
        print(note, file=sys.stderr)
    if args.format == "json":
        for x in experiences:
            print(json.dumps(to_json(x)))
        return 0
    rows = [
        {
            "id": x.experience_id[:12],
            "kind": x.kind,
            "status": x.status,
            "support": x.support_episodes,
            "users": x.support_users,
            "scope": scope_key(x.tenant, x.agent, *([x.user] if x.user else [])),
            "guidance": x.guidance if args.wide else x.guidance[:90],
        }
        for x in experiences
    ]
    print(render_table(rows) if rows else "no experiences yet", file=sys.stdout)
    return 0


def register(sub: Any) -> None:
    experiences = sub.add_parser("experiences", help="the lessons learned so far")
    experiences_sub = experiences.add_subparsers(dest="experiences_command", required=True)
    listing = experiences_sub.add_parser("list", help="list experiences, best supported first")
    listing.add_argument("--tenant")
    listing.add_argument("--agent")
    listing.add_argument("--status", choices=["candidate", "proposed", "quarantined"])
    listing.add_argument("--limit", type=int, default=20, help="0: all")
    listing.add_argument("--wide", action="store_true", help="full guidance text")
    listing.add_argument("--format", choices=["table", "json"], default="table")
    listing.set_defaults(handler=list_experiences)
