"""`kaizen analytics failures|signatures|repeats|snapshots|curve`: failure analytics as tables.

Asks the running service; without one, opens the embedded ClickHouse directly (or the server
configured by KAIZEN_CLICKHOUSE_URL).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from kaizen.cli.options import parse_time_ms
from kaizen.cli.tables import render_table
from kaizen.settings import Settings


def _params(args: argparse.Namespace) -> dict[str, str]:
    params = {"by": args.by, "hours": str(args.hours), "bucket": str(args.bucket)}
    if getattr(args, "latest", False):
        params["anchor"] = "latest"  # windows end at the data's latest event, not now
    for name, value in (("since", parse_time_ms(args.since)), ("until", parse_time_ms(args.until))):
        if value is not None:
            params[name] = str(value)
    for name in ("agent", "tenant"):
        if getattr(args, name):
            params[name] = getattr(args, name)
    return params


def _from_service(settings: Settings, name: str, params: dict[str, str]) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode(params)
    url = f"http://{settings.http_host}:{settings.http_port}/analytics/{name}?{query}"
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - local http
        return list(json.loads(response.read())["rows"])


def _direct(settings: Settings, name: str, params: dict[str, str]) -> list[dict[str, Any]]:
    from kaizen.service.http_api import run_analytics
    from kaizen.service.stores import Stores

    stores = Stores.open(settings)
    try:
        return run_analytics(stores, name, params)
    finally:
        stores.close()


def run(args: argparse.Namespace, settings: Settings) -> int:
    params = _params(args)
    if args.name == "curve" and "agent" not in params:
        print("kaizen analytics curve: --agent is required", file=sys.stderr)
        return 2
    try:
        rows = _from_service(settings, args.name, params)
    except urllib.error.HTTPError as error:
        print(f"kaizen analytics: {error.read().decode(errors='replace')}", file=sys.stderr)
        return 2
    except urllib.error.URLError:
        try:
            rows = _direct(settings, args.name, params)
        except Exception as error:  # chdb / qdrant report a held data dir in several ways
            print(f"kaizen analytics: no service at {settings.http_host}:{settings.http_port} "
                  f"and the embedded stores under {settings.home} could not be opened ({error}); "
                  "is another process using them? Start `kaizen serve` and retry.",
                  file=sys.stderr)
            return 1
    if args.format == "json":
        for row in rows:
            print(json.dumps(row, default=str))
    elif args.format == "csv":
        if rows:
            writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        print(render_table(rows) if rows else "no rows")
    return 0


def register(sub: Any) -> None:
    parser = sub.add_parser("analytics", help="failure analytics from ClickHouse")
    parser.add_argument("name", choices=["failures", "signatures", "repeats", "snapshots", "curve"])
    parser.add_argument("--by", default="tool", choices=["tool", "signature", "agent", "tenant"])
    parser.add_argument("--since", help="ISO time (UTC if no zone)")
    parser.add_argument("--until", help="ISO time, exclusive")
    parser.add_argument("--hours", type=int, default=24, help="signatures: first seen within")
    parser.add_argument("--latest", action="store_true",
                        help="signatures: --hours count back from the latest event in the data "
                        "(imported history), not from now; --since/--until anchor it too")
    parser.add_argument("--agent", help="curve: the agent")
    parser.add_argument("--tenant")
    parser.add_argument("--bucket", type=int, default=60, help="curve: seconds per point")
    parser.add_argument("--format", choices=["table", "json", "csv"], default="table")
    parser.set_defaults(handler=lambda a, s: run(a, s))
