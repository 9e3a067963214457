"""`kaizen deadletters list|show|replay`: what the pipeline rejected, why, and a way back in.

    kaizen deadletters list [--component assemble] [--error-type RecursionError]
    kaizen deadletters show ID            # reason (with the traceback), position, value preview
    kaizen deadletters replay ID... | --all [--to TOPIC]

`replay` appends the rejected records, whole (fetched from their source position when the
letter holds only the start), to their source topic or `--to`: after a fix, the consumers
decide again. (Moves to kaizen/cli/ with the other commands.)
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from kaizen.schemas import model
from kaizen.schemas.dead_letters import is_cut
from kaizen.settings import Settings
from kaizen.streams.deadletter_log import original, read_letters, republish
from kaizen.streams.topics import Topics


def register(sub: Any) -> None:
    parser = sub.add_parser("deadletters", help="inspect and replay rejected records")
    commands = parser.add_subparsers(dest="deadletters_command", required=True)
    listing = commands.add_parser("list", help="one line per dead letter, oldest first")
    listing.add_argument("--component")
    listing.add_argument("--error-type")
    listing.add_argument("--format", choices=["table", "json"], default="table")
    show = commands.add_parser("show", help="one dead letter in full")
    show.add_argument("id", help="dead-letter id (a unique prefix is enough)")
    replay = commands.add_parser("replay", help="append rejected records to a topic again")
    replay.add_argument("ids", nargs="*", metavar="ID")
    replay.add_argument("--all", action="store_true", help="every dead letter (after filters)")
    replay.add_argument("--component")
    replay.add_argument("--error-type")
    replay.add_argument("--to", help="topic to append to (default: each record's source)")
    for command in (listing, show, replay):
        command.set_defaults(handler=run)


def _letters(args: argparse.Namespace, settings: Settings) -> list[model.DeadLetter]:
    letters = [letter for _, letter in read_letters(settings.bootstrap,
                                                    Topics(settings.topic_prefix).deadletter,
                                                    settings.kafka_client)]
    if getattr(args, "component", None):
        letters = [d for d in letters if d.component == args.component]
    if getattr(args, "error_type", None):
        letters = [d for d in letters if d.error_type == args.error_type]
    return letters


def _summary(d: model.DeadLetter) -> dict[str, Any]:
    return {"id": d.event_id, "component": d.component, "error_type": d.error_type,
            "source": f"{d.source_topic}/{d.source_partition}/{d.source_offset}",
            "bytes": len(d.value or b""), "cut": is_cut(d),
            "reason": d.reason.splitlines()[0][:120] if d.reason else ""}


def _find(letters: list[model.DeadLetter], prefix: str) -> model.DeadLetter:
    found = [d for d in letters if d.event_id.startswith(prefix)]
    if len(found) != 1:
        raise SystemExit(f"kaizen: {len(found)} dead letters match {prefix!r}")
    return found[0]


def run(args: argparse.Namespace, settings: Settings) -> int:
    letters = _letters(args, settings)
    if args.deadletters_command == "list":
        rows = [_summary(d) for d in letters]
        if args.format == "json":
            for row in rows:
                print(json.dumps(row))
        else:
            for r in rows:
                print(f"{r['id'][:8]}  {r['component']:<10} {r['error_type']:<16} "
                      f"{r['source']:<40} {r['reason']}")
            print(f"{len(rows)} dead letters")
        return 0
    if args.deadletters_command == "show":
        d = _find(letters, args.id)
        print(json.dumps({**_summary(d), "reason": d.reason, "key": (d.key or b"").hex(),
                          "value_preview": (d.value or b"")[:200].hex()}, indent=2))
        return 0
    return _replay(args, settings, letters)


def _replay(args: argparse.Namespace, settings: Settings, letters: list[model.DeadLetter]
            ) -> int:
    chosen = letters if args.all else [_find(letters, i) for i in args.ids]
    if not chosen:
        print("kaizen: nothing to replay (give ids or --all)")
        return 1
    records, missing = [], []
    for letter in chosen:
        found = original(settings.bootstrap, letter, client=settings.kafka_client)
        if found is None or found[1] is None:
            missing.append(letter.event_id)
            continue
        records.append((args.to or letter.source_topic, found[0], found[1]))
    written = republish(settings.bootstrap, records, settings.kafka_client)
    print(f"replayed {written} of {len(chosen)} records"
          + (f"; no longer retained: {', '.join(missing)}" if missing else ""))
    return 0 if written == len(chosen) else 1
