"""`kaizen replay`: decode a topic range to JSON lines for audits, with a progress bar."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import nullcontext
from typing import IO, Any

from tqdm import tqdm

from kaizen.cli.options import parse_time_ms
from kaizen.settings import Settings
from kaizen.streams.replay import Bounds, TopicReader, matches
from kaizen.streams.topics import catalog


def resolve_topic(name: str, prefix: str) -> str:
    """`episodes` means `<prefix>.episodes`; any other name is used as given."""
    short = {spec.suffix for spec in catalog()}
    return f"{prefix}.{name}" if name in short else name


def parse_where(pairs: list[str]) -> dict[str, str]:
    where = {}
    for pair in pairs:
        field, sep, value = pair.partition("=")
        if not sep or not field:
            raise ValueError(f"--where wants FIELD=VALUE, got {pair!r}")
        where[field] = value
    return where


def replay_range(args: argparse.Namespace, settings: Settings) -> int:
    try:
        where = parse_where(args.where)
        bounds = Bounds(
            args.from_offset, args.to_offset, parse_time_ms(args.from_time),
            parse_time_ms(args.to_time),
        )
        reader = TopicReader(settings.bootstrap, resolve_topic(args.topic, settings.topic_prefix),
                             bounds, client=settings.kafka_client)
    except ValueError as error:
        print(f"kaizen replay: {error}", file=sys.stderr)
        return 2
    sink: IO[str]
    with open(args.out, "w") if args.out else nullcontext(sys.stdout) as sink:  # noqa: SIM115
        written = _write(reader, where, sink)
    print(f"replayed {written} of {reader.total} records from {reader.topic}", file=sys.stderr)
    return 0


def _write(reader: TopicReader, where: dict[str, str], sink: IO[str]) -> int:
    written = 0
    with tqdm(total=reader.total, unit="rec", file=sys.stderr, disable=reader.total < 5000) as bar:
        for record in reader.records():
            bar.update(1)
            if where and (record.value is None or not matches(record.value, where)):
                continue
            sink.write(json.dumps(record.as_json(), default=str) + "\n")
            written += 1
    return written


def register(sub: Any) -> None:
    replay = sub.add_parser("replay", help="decode a topic range to JSON lines (audit)")
    replay.add_argument("--topic", required=True, help="topic name, or a catalog short name")
    replay.add_argument("--from-offset", type=int)
    replay.add_argument("--to-offset", type=int, help="exclusive")
    replay.add_argument("--from-time", help="ISO time, UTC if no zone")
    replay.add_argument("--to-time", help="ISO time, exclusive")
    replay.add_argument("--where", action="append", default=[], metavar="FIELD=VALUE")
    replay.add_argument("--out", help="write JSON lines to this file instead of stdout")
    replay.set_defaults(handler=replay_range)
