"""`kaizen serve`: sinks, processors, gate and the HTTP API in one process."""

from __future__ import annotations

import argparse
from typing import Any

from kaizen.settings import Settings


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from kaizen.service.host import serve  # the server stack loads only for this command

    return serve(settings, processors=not args.no_processors)


def register(sub: Any) -> None:
    serve = sub.add_parser("serve", help="sinks + processors + HTTP API in one process")
    serve.add_argument("--no-processors", action="store_true",
                       help="processors run elsewhere (`kaizen process` workers)")
    serve.set_defaults(handler=_serve)
