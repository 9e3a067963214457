"""`kaizen process`: run the stream processors (a faust worker) against the configured Kafka.

Start as many as you like: workers of one deployment share the partitions (one consumer group).
"""

from __future__ import annotations

import argparse

from kaizen.processors.config import ProcessorConfig
from kaizen.settings import Settings
from kaizen.streams.admin import create_topics


def processor_config(settings: Settings, app_id: str | None = None) -> ProcessorConfig:
    return ProcessorConfig(
        bootstrap=settings.bootstrap,
        prefix=settings.topic_prefix,
        partitions=settings.topic_partitions,
        app_id=app_id or f"{settings.topic_prefix}-processors",
        data_dir=settings.home / "processors",
        min_support=settings.min_support,
        idle_ms=int(settings.episode_idle_seconds * 1000),
        keys_path=settings.personal_keys,
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from kaizen.processors.app import run_worker  # imports faust: only when a worker is wanted

    create_topics(settings.bootstrap, settings.topic_prefix, settings.topic_partitions)
    run_worker(processor_config(settings), loglevel=args.faust_log_level,
               baseline=args.faust_baseline)
    return 0
