"""Everything a deployment holds, as text: every topic's records, every ClickHouse table's rows and
every Qdrant point's payload. Privacy tests search it for strings that must not be there."""

from __future__ import annotations

import json
from pathlib import Path

from confluent_kafka.admin import AdminClient

from kaizen.processors import bundles
from kaizen.processors.bundles import unpack
from kaizen.schemas.codec import Codec
from kaizen.schemas.records import to_json
from kaizen.sinks.clickhouse import ClickHouseSink
from kaizen.sinks.qdrant_library import ExperienceLibrary
from kaizen.streams.replay import Bounds, TopicReader
from kaizen.streams.topics import Topics


def topics_text(bootstrap: str, topics: Topics) -> str:
    """Every record of every main topic, decoded to JSON (undecodable ones as raw bytes)."""
    out = []
    for topic in (topics.episodes, topics.signals, topics.patterns, topics.experiences,
                  topics.snapshots, topics.deadletter):
        for record in TopicReader(bootstrap, topic, Bounds()).records():
            event = record.event
            out.append(json.dumps(to_json(event), default=str) if event is not None
                       else repr(record))
    return "\n".join(out)


def deployment_topics(bootstrap: str, prefix: str) -> list[str]:
    """Every topic of a deployment as the broker lists it (its metadata, not the catalog): the
    main topics, the processors' internal topics and their tables' changelogs."""
    names = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=30).topics
    return sorted(n for n in names if n.startswith((f"{prefix}.", f"{prefix}-")))


def every_topic_text(bootstrap: str, prefix: str, codec: Codec | None = None) -> dict[str, str]:
    """Per topic of the deployment: every record's key and value bytes as text, and the record
    decoded through `codec` where it is an event, or each event of a bundle (changelogs hold
    JSON, they stay raw)."""
    codec = codec or Codec()
    out: dict[str, str] = {}
    for topic in deployment_topics(bootstrap, prefix):
        lines = []
        for batch in TopicReader(bootstrap, topic, Bounds()).raw_batches():
            for record in batch:
                raw = (record.key or b"") + b" " + record.value
                lines.append(raw.decode("utf-8", errors="replace"))
                carried = (unpack(record.value) if record.value.startswith(bundles.MAGIC)
                           else [record.value])
                for value in carried:
                    try:
                        lines.append(json.dumps(to_json(codec.decode(value)), default=str))
                    except ValueError:  # DecodeError: not an event (a changelog's JSON)
                        pass
        out[topic] = "\n".join(lines)
    return out


def stores_text(home: Path) -> str:
    """Every row of every ClickHouse table and every Qdrant payload under a service's home."""
    out = []
    sink = ClickHouseSink(f"chdb://{(home / 'clickhouse').resolve()}",
                          signature_of=lambda tool, error: "")
    try:
        tables = [row[0] for row in sink.client.query("SHOW TABLES").result_rows]
        for table in tables:
            for row in sink.client.query(f"SELECT * FROM `{table}`").result_rows:
                out.append(f"{table}: {row!r}")
    finally:
        sink.close()
    with ExperienceLibrary.open(path=home / "qdrant") as library:
        for entry in library.scroll():
            out.append(json.dumps(to_json(entry.experience), default=str))
    return "\n".join(out)
