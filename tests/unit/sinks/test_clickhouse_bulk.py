"""The bulk episode loader writes exactly the rows of the per-record sink, decoded by ClickHouse."""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from kaizen.processors.learning.signatures import error_signature
from kaizen.schemas import model
from kaizen.schemas.catalog import latest
from kaizen.schemas.codec import SINGLE_OBJECT_HEADER_SIZE, Codec
from kaizen.schemas.container import container
from kaizen.sinks.clickhouse import ClickHouseSink
from kaizen.sinks.clickhouse_bulk import (
    BulkLoadError,
    EpisodeBulkLoader,
    PatternBulkLoader,
    SignalBulkLoader,
    clickhouse_type,
)
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


def bodies(events: Sequence[model.Event]) -> list[bytes]:
    codec = Codec()
    return [codec.encode(e)[SINGLE_OBJECT_HEADER_SIZE:] for e in events]


def table_rows(sink: ClickHouseSink, tables: tuple[str, ...] = TABLES) -> dict[str, list[str]]:
    return {t: sorted(map(repr, sink.client.query(f"SELECT * FROM {t} FINAL").result_rows))
            for t in tables}


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


def learning_events(seed: int, count: int = 300) -> list[model.Signal | model.Pattern]:
    """Seeded signals of every kind (patches with awkward values: quotes, non-ASCII, nulls) and
    pattern updates."""
    rng = random.Random(seed)
    values = ('"quoted"', "caf\u00e9 \u2603", "back\\slash", None, '{"a": [1, 2]}', "/path")
    out: list[model.Signal | model.Pattern] = []
    for i in range(count):
        event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        kind = rng.choice(("failure", "recovery", "correction", "rating", "outcome"))
        patch = None
        if kind == "recovery" and rng.random() < 0.8:
            changes = [model.ArgumentChange(rng.choice(("rename", "add", "remove", "reformat",
                                                        "replace")),
                                            f"arg{rng.randrange(3)}", rng.choice((None, "new")),
                                            rng.choice(values), rng.choice((None, "strip_quotes")))
                       for _ in range(rng.randint(1, 3))]
            patch = model.ToolCallPatch("search", changes, rng.choice((None, "lookup")))
        out.append(model.Signal(
            event_id, T0 + i, rng.choice(("acme", "*")), "bot", f"ep-{i % 40}", kind,
            user=rng.choice((None, "u1")), snapshot_id=rng.choice((None, "s1")), task=f"t{i}",
            tool=rng.choice((None, "search")), signature=rng.choice((None, "search: x")),
            error=rng.choice((None, "boom")), arguments_json=rng.choice((None, '{"q": 1}')),
            patch=patch, outcome="success" if kind == "outcome" else None,
            rating=rng.choice((None, 0.5)), correction=rng.choice((None, "do X")),
            recalled_ids=[f"x{k}" for k in range(rng.randrange(3))],
            source_partition=i % 3, source_offset=i))
        if i % 3 == 0:
            out.append(model.Pattern(
                str(uuid.UUID(int=rng.getrandbits(128), version=4)), T0 + i, "acme", "bot",
                "search", f"search: e{i % 5}", T0, 60, i, 1, 2, 1, 10 + i, 0.1, 0.05, T0 - i,
                T0 + i, rng.choice(("steady", "new", "spiking"))))
    return out


T0 = 1_700_000_000_000


@pytest.mark.parametrize("seed", [1, 2])
def test_signal_and_pattern_rows_equal_per_record_rows(tmp_path: Path, seed: int) -> None:
    events = learning_events(seed)
    tables = ("signals_v1", "patterns_v1")
    per_record = open_sink(tmp_path / "per-record")
    try:
        write_all(per_record, events)
        expected = table_rows(per_record, tables)
    finally:
        per_record.close()
    assert all(expected.values())
    assert sum('"changes": [' in row for row in expected["signals_v1"]) > 10  # patches stored
    sink = open_sink(tmp_path / "bulk")
    try:
        for loader, cls in ((SignalBulkLoader(sink.client, latest("signal")), model.Signal),
                            (PatternBulkLoader(sink.client, latest("pattern")), model.Pattern)):
            loader.load(container(loader.schema,
                                  bodies([e for e in events if isinstance(e, cls)])))
        got = table_rows(sink, tables)
    finally:
        sink.close()
    assert got == expected
