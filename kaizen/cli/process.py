"""`kaizen process`: run the stream processors (a faust worker) against the configured Kafka.

Start as many as you like: workers of one deployment share the partitions (one consumer group).
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from typing import Any

from kaizen.processors.config import CURATION_TOPIC, TOOL_RESULTS_TOPIC
from kaizen.service.supervision import watch_parent
from kaizen.service.workers import processor_config
from kaizen.settings import Settings
from kaizen.streams.admin import create_topics
from kaizen.streams.internal import ensure_topics


def _orphaned() -> None:
    """The parent is gone: stop like on SIGTERM, and for good after 15 s whatever faust does."""
    os.kill(os.getpid(), signal.SIGTERM)
    threading.Timer(15.0, os._exit, args=(1,)).start()


def run(args: argparse.Namespace, settings: Settings) -> int:
    from kaizen.processors.app import run_worker  # imports faust: only when a worker is wanted

    if args.parent_fd is not None:  # a child of `kaizen serve`: die with it
        watch_parent(args.parent_fd, _orphaned)
    create_topics(settings.bootstrap, settings.topic_prefix, settings.topic_partitions,
                  client=settings.kafka_client, replication=settings.topic_replication)
    config = processor_config(settings)
    ensure_topics(settings.bootstrap, [config.internal(TOOL_RESULTS_TOPIC),
                                       config.internal(CURATION_TOPIC)], config.partitions,
                  config.replication, config=config.topic_config,
                  client=settings.kafka_client)
    run_worker(config, loglevel=args.faust_log_level,
               baseline=args.faust_baseline)
    return 0


def register(sub: Any) -> None:
    process = sub.add_parser("process", help="run the stream processors (a faust worker)")
    process.add_argument("--faust-log-level", default="warn",
                         choices=["crit", "error", "warn", "info", "debug"])
    process.add_argument("--faust-baseline", nargs="?", const="stock", choices=["stock", "lean"],
                         help="run faust alone (take the episodes, do nothing): 'stock' faust "
                              "(the default), the ceiling of a plain faust app on this machine; "
                              "'lean', through the processors' own fetch and batch path "
                              "(bench/process.py prints both)")
    process.add_argument("--parent-fd", type=int, help=argparse.SUPPRESS)  # set by serve
    process.set_defaults(handler=run)
