"""The stores one service owns: ClickHouse, the experience library (Qdrant) and the recall index."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from kaizen.client.embedded import open_library
from kaizen.processors.learning.signatures import error_signature
from kaizen.readmodel.index import RecallIndex
from kaizen.settings import Settings
from kaizen.sinks.clickhouse import ClickHouseSink
from kaizen.sinks.qdrant_library import ExperienceLibrary


def open_clickhouse(settings: Settings) -> ClickHouseSink:
    if not settings.clickhouse_url:
        (settings.home / "clickhouse").mkdir(parents=True, exist_ok=True)
    sink = ClickHouseSink(settings.clickhouse_dsn, signature_of=error_signature)
    sink.setup()
    return sink


@dataclass
class Stores:
    """The stores of one service; `lock` serializes use of the ClickHouse client across threads."""

    clickhouse: ClickHouseSink
    library: ExperienceLibrary
    index: RecallIndex
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, settings: Settings) -> Stores:
        library = open_library(settings)
        return cls(open_clickhouse(settings), library, RecallIndex(library.embedder,
                                                                 min_score=settings.recall_min_score))

    def close(self) -> None:
        self.clickhouse.close()
        self.library.close()
