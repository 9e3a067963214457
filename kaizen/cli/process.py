"""`kaizen process`: run the stream processors (a faust worker) against the configured Kafka.

Start as many as you like: workers of one deployment share the partitions (one consumer group).
"""

from __future__ import annotations

import argparse
from typing import Any

from kaizen.service.workers import processor_config
from kaizen.settings import Settings
from kaizen.streams.admin import create_topics


def run(args: argparse.Namespace, settings: Settings) -> int:
    from kaizen.processors.app import run_worker  # imports faust: only when a worker is wanted

    create_topics(settings.bootstrap, settings.topic_prefix, settings.topic_partitions)
    run_worker(processor_config(settings), loglevel=args.faust_log_level,
               baseline=args.faust_baseline)
    return 0


def register(sub: Any) -> None:
    process = sub.add_parser("process", help="run the stream processors (a faust worker)")
    process.add_argument("--faust-log-level", default="warn",
                         choices=["crit", "error", "warn", "info", "debug"])
    process.add_argument("--faust-baseline", action="store_true",
                         help="run faust alone (take the episodes, do nothing): the ceiling of "
                              "faust on this machine, for sizing (bench/process.py prints it)")
    process.set_defaults(handler=run)
