"""`kaizen demo`: bring the local stack up, record a few episodes, replay them from the log."""

from __future__ import annotations

import argparse
import random

from kaizen import stack
from kaizen.recorder import Recorder
from kaizen.settings import Settings
from streams.replay import Bounds, TopicReader
from streams.topics import Topics


def _record_episodes(settings: Settings, count: int) -> int:
    rng = random.Random(7)  # noqa: S311 - a deterministic demo, not security
    with Recorder(agent="demo-bot", tenant="demo", settings=settings) as recorder:
        for i in range(count):
            quoted = rng.random() < 0.4
            with recorder.episode(f"who wrote book {i}?", user=f"user{i % 3}") as ep:
                query = f'"book {i}"' if quoted else f"book {i}"
                ep.tool_call("search", {"query": query})
                if quoted:
                    ep.tool_result("search", ok=False, error=f"Could not find [{query}].")
                    ep.tool_call("search", {"query": f"book {i}"})
                ep.tool_result("search", ok=True, output=f"Book {i} was written by someone.")
                ep.end(success=True)
        pending = recorder.flush(30)
    return pending


def run(args: argparse.Namespace, settings: Settings) -> int:
    if stack.up(settings) != 0:
        return 1
    topics = Topics(settings.topic_prefix)
    before = TopicReader(settings.bootstrap, topics.episodes, Bounds()).ends
    if _record_episodes(settings, args.episodes):
        print("demo: some events are still spooled; is the broker up?")
        return 1
    reader = TopicReader(settings.bootstrap, topics.episodes, Bounds())
    reader.starts.update({p: max(reader.starts[p], before.get(p, 0)) for p in reader.starts})
    kinds: dict[str, int] = {}
    for record in reader.records():
        kind = (record.value or {}).get("payload", {}).get("type", "undecodable")
        kinds[kind] = kinds.get(kind, 0) + 1
    print(f"recorded {args.episodes} episodes; replayed from {topics.episodes}:")
    for kind, count in sorted(kinds.items()):
        print(f"  {kind:<16} {count}")
    return 0
