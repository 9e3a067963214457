"""The bulk episode loader writes exactly the rows of the per-record sink, decoded by ClickHouse."""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from processors.learning.signatures import error_signature
from schemas import model
from schemas.catalog import latest
from schemas.codec import Codec
from schemas.container import container
from sinks.clickhouse import ClickHouseSink
from sinks.clickhouse_bulk import BulkLoadError, EpisodeBulkLoader, clickhouse_type
from tests.unit.sinks.test_clickhouse_sink import _episode, open_sink, write_all

TABLES = ("episodes_v1", "steps_v1", "recalls_v1")
SCHEMA = latest("episode_event")


def episode_events(seed: int, episodes: int = 150) -> list[model.EpisodeEvent]:
    """Seeded random episodes (every payload kind, failures with and without error text), with
    UUID event ids as the schema's logical type wants."""
    rng, out = random.Random(seed), []
    for i in range(episodes):
        for event in _episode(rng, i):
            assert isinstance(event, model.EpisodeEvent)
            event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, event.event_id))
            out.append(dataclasses.replace(event, event_id=event_id))
    return out


def bodies(events: list[model.EpisodeEvent]) -> list[bytes]:
    codec = Codec()
    return [codec.encode(e)[10:] for e in events]


def table_rows(sink: ClickHouseSink) -> dict[str, list[str]]:
    return {t: sorted(map(repr, sink.client.query(f"SELECT * FROM {t} FINAL").result_rows))
            for t in TABLES}


def bulk_sink(path: Path) -> tuple[ClickHouseSink, EpisodeBulkLoader]:
    sink = open_sink(path)
    return sink, EpisodeBulkLoader(sink.client, SCHEMA, signature_of=error_signature)


@pytest.fixture
def bulk(tmp_path: Path) -> Iterator[tuple[ClickHouseSink, EpisodeBulkLoader]]:
    sink, loader = bulk_sink(tmp_path)
    yield sink, loader
    sink.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bulk_rows_equal_per_record_rows(tmp_path: Path, seed: int) -> None:
    events = episode_events(seed)
    per_record = open_sink(tmp_path / "per-record")
    write_all(per_record, events)
    expected = table_rows(per_record)
    per_record.close()
    assert all(expected[t] for t in TABLES)  # the fleet exercises every table

    sink, loader = bulk_sink(tmp_path / "bulk")
    try:
        half = len(events) // 2  # two loads: start/end and call/result pairs split across them
        loader.load(container(SCHEMA, bodies(events[:half])))
        loader.load(container(SCHEMA, bodies(events[half:])))
        assert table_rows(sink) == expected
    finally:
        sink.close()


def test_failed_results_get_the_extractors_signature(
    bulk: tuple[ClickHouseSink, EpisodeBulkLoader],
) -> None:
    sink, loader = bulk
    events = [e for e in episode_events(4)
              if isinstance(e.payload, model.ToolResult) and not e.payload.ok]
    loader.load(container(SCHEMA, bodies(events)))
    rows = sink.client.query("SELECT call_id || episode_id, signature FROM steps_v1").result_rows
    stored = {key: signature for key, signature in rows}
    assert events and len(stored) == len(events)
    for e in events:
        assert isinstance(e.payload, model.ToolResult)
        expected = error_signature(e.payload.tool_name, e.payload.error or "(no error text)")
        assert stored[e.payload.call_id + e.episode_id] == expected


def test_a_corrupt_container_raises_and_leaves_no_staging_table(
    bulk: tuple[ClickHouseSink, EpisodeBulkLoader],
) -> None:
    sink, loader = bulk
    good = bodies(episode_events(5, episodes=3))
    with pytest.raises(BulkLoadError):
        loader.load(container(SCHEMA, [*good, good[0][:7]]))
    tables = {row[0] for row in sink.client.query("SHOW TABLES").result_rows}
    assert not [t for t in tables if t.startswith("_bulk")]
    assert sink.client.query("SELECT count() FROM steps_v1").result_rows[0][0] == 0


def test_clickhouse_type_reads_the_union_as_variant_of_named_tuples() -> None:
    records: dict[str, str] = {}
    payload = next(f for f in SCHEMA.raw["fields"] if f["name"] == "payload")
    text = clickhouse_type(payload["type"], records)
    assert text.startswith("Variant(") and text.count("Tuple(") == 7
    assert records["ToolCall"] == ("Tuple(call_id String, tool_name String, "
                                   "arguments_json String)")
    assert "Enum8('success' = 0, 'failure' = 1, 'abandoned' = 2)" in records["EpisodeEnded"]
    assert clickhouse_type(["null", "string"], {}) == "Nullable(String)"
    assert clickhouse_type({"type": "long", "logicalType": "timestamp-millis"}, {}) == (
        "DateTime64(3)")
