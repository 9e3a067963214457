"""`kaizen up | status | down | topics create`: the local stack."""

from __future__ import annotations

import argparse
from typing import Any

from kaizen.service import stack
from kaizen.settings import Settings


def _stack(args: argparse.Namespace, settings: Settings) -> int:
    if getattr(args, "brokers", None):
        settings = settings.model_copy(update={"kafka_brokers": args.brokers})
    if args.command == "up":
        return stack.up(settings, secure=args.secure)
    return {"status": stack.status, "down": stack.down}[args.command](settings)


def _topics(args: argparse.Namespace, settings: Settings) -> int:
    return stack.create_topics(settings)


def register(sub: Any) -> None:
    for name, text in [
        ("up", "start the local Kafka broker (idempotent)"),
        ("status", "show the local stack"),
        ("down", "stop the local Kafka broker (data is kept)"),
    ]:
        command = sub.add_parser(name, help=text)
        command.set_defaults(handler=_stack)
        if name == "up":
            command.add_argument("--secure", action="store_true",
                                 help="SASL/SCRAM and ACLs per role (KAIZEN_KAFKA_SECURE)")
            command.add_argument("--brokers", type=int, choices=range(1, 10), metavar="N",
                                 help="a local KRaft cluster of N brokers (replication min(3, N))")
    topics = sub.add_parser("topics", help="manage the topic catalog")
    topics_sub = topics.add_subparsers(dest="topics_command", required=True)
    topics_sub.add_parser("create", help="create missing topics (idempotent)").set_defaults(
        handler=_topics
    )
