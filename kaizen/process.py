"""`kaizen process`: run the stream processors (a faust worker) against the configured Kafka.

Start as many as you like: workers of one deployment share the partitions (one consumer group).
"""

from __future__ import annotations

import argparse
import os
import signal
import threading

from kaizen.processors.config import CURATION_TOPIC, TOOL_RESULTS_TOPIC, ProcessorConfig
from kaizen.settings import Settings
from kaizen.streams.admin import create_topics
from kaizen.streams.internal import ensure_topics
from kaizen.supervision import watch_parent


def processor_config(settings: Settings, app_id: str | None = None) -> ProcessorConfig:
    return ProcessorConfig(
        bootstrap=settings.bootstrap,
        prefix=settings.topic_prefix,
        partitions=settings.topic_partitions,
        app_id=app_id or f"{settings.topic_prefix}-processors",
        data_dir=settings.home / "processors",
        min_support=settings.min_support,
        idle_ms=int(settings.episode_idle_seconds * 1000),
        limits=settings.limits,
    )


def _orphaned() -> None:
    """The parent is gone: stop like on SIGTERM, and for good after 15 s whatever faust does."""
    os.kill(os.getpid(), signal.SIGTERM)
    threading.Timer(15.0, os._exit, args=(1,)).start()


def run(args: argparse.Namespace, settings: Settings) -> int:
    from kaizen.processors.app import run_worker  # imports faust: only when a worker is wanted

    if args.parent_fd is not None:  # a child of `kaizen serve`: die with it
        watch_parent(args.parent_fd, _orphaned)
    create_topics(settings.bootstrap, settings.topic_prefix, settings.topic_partitions)
    config = processor_config(settings)
    ensure_topics(settings.bootstrap, [config.internal(TOOL_RESULTS_TOPIC),
                                       config.internal(CURATION_TOPIC)], config.partitions)
    run_worker(config, loglevel=args.faust_log_level,
               baseline=args.faust_baseline)
    return 0
