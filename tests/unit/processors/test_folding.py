"""The processor steps without faust: live processing and a replay of the same log agree; bad
records become dead letters with their position."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kaizen.processors.bundles import unpack
from kaizen.processors.config import CURATION_TOPIC, TOOL_RESULTS_TOPIC, ProcessorConfig
from kaizen.processors.folding import Outgoing, Record, RecordFolds
from kaizen.processors.steps import (
    AssembleStep,
    Batch,
    DictStore,
    aggregate_step,
    curate_step,
    unstored_writes,
)
from kaizen.schemas import model
from kaizen.schemas.codec import Codec
from tests.factories import episode_event

CODEC = Codec()


def _log(seed: int, episodes: int = 30) -> list[Record]:
    rng, records = random.Random(seed), []
    for i in range(episodes):
        t, user, eid = 1_700_000_000_000 + i * 1000, f"u{rng.randrange(4)}", f"ep{i}"
        payloads: list[model.EpisodePayload] = [model.EpisodeStarted(f"order {i}")]
        if rng.random() < 0.6:
            payloads += [model.ToolCall("a", "orders.get", json.dumps({"order": i})),
                         model.ToolResult("a", "orders.get", False, f"unknown field 'order' {i}")]
        payloads += [model.ToolCall("b", "orders.get", json.dumps({"order_id": i})),
                     model.ToolResult("b", "orders.get", rng.random() < 0.9)]
        if rng.random() < 0.8:  # the others go idle and are closed as abandoned
            payloads.append(model.EpisodeEnded("success"))
        for seq, payload in enumerate(payloads):
            event = episode_event(payload, episode_id=eid, seq=seq, user=user, occurred_at=t + seq)
            records.append(Record("kaizen.episodes", 0, len(records), eid.encode(),
                                  CODEC.encode(event), t + seq))
    return records


def _chunks(records: list[Record], size: int) -> list[list[Record]]:
    return [records[i:i + size] for i in range(0, len(records), size)]


def _run(records: list[Record], batch: int = 1, in_flight: int = 0, forwarded: bool = True
         ) -> dict[str, list[bytes]]:
    """Feed the three steps as the faust agents do: batches of `batch` records, outputs sent
    before states are committed, the repartitioned topics read in the order they were written;
    what each topic got, key by key.
    `in_flight`: as the worker does, up to that many batches of a step are folded but not yet
    stored when the next is folded, over their pending writes (`processors/app.py`).
    `forwarded=False`: the steps decode what the assemble step forwarded instead of taking the
    events it kept (`processors/forwarded.py`)."""
    # idle and linger short against the 1 s between episodes: closes and deletions happen
    folds = RecordFolds(ProcessorConfig(bootstrap="unused", min_support=2, idle_ms=4_000,
                                    linger_ms=2_000, idle_scan_ms=1_000))
    if not forwarded:
        folds.forwarded = None
    steps = {"assemble": AssembleStep(folds), "aggregate": aggregate_step(folds),
             "curate": curate_step(folds)}
    tables = {name: DictStore() for name in steps}
    inputs: dict[str, list[Record]] = {"aggregate": [], "curate": []}
    by_key: dict[tuple[str, bytes], list[bytes]] = {}
    unstored: dict[str, list[Batch]] = {name: [] for name in steps}

    def run(name: str, chunk: list[Record]) -> None:
        flying = unstored[name]
        result = steps[name].process(tables[name], chunk, pending=unstored_writes(flying))
        flying.append(result)
        while len(flying) > in_flight:  # stored in batch order
            flying.pop(0).commit()
        for item in result.outgoing:
            step = {folds.config.internal(TOOL_RESULTS_TOPIC): "aggregate",
                    folds.config.internal(CURATION_TOPIC): "curate"}.get(item.topic)
            # what a bundle carries is compared, not how a batch happened to bundle it
            by_key.setdefault((item.topic, item.key), []).extend(
                unpack(item.value) if step else [item.value])
            if step:
                inputs[step].append(Record(item.topic, 0, len(inputs[step]), item.key,
                                           item.value))

    for chunk in _chunks(records, batch):
        run("assemble", chunk)
        for name, pending in inputs.items():
            inputs[name] = []
            for downstream in _chunks(pending, batch):
                run(name, downstream)
    # Kafka orders records per key, not across keys (a batch bundles its forwarded records by
    # key): each topic's records key by key, every key's in the order it was written
    out: dict[str, list[bytes]] = {}
    for (topic, _), values in sorted(by_key.items()):
        out.setdefault(topic, []).extend(values)
    return out


def _latest_experiences(out: dict[str, list[bytes]]) -> dict[str, tuple[Any, ...]]:
    latest: dict[str, tuple[Any, ...]] = {}
    for value in out.get("kaizen.experiences", []):
        x = CODEC.decode(value)
        assert isinstance(x, model.Experience)
        latest[x.experience_id] = (x.version, x.support_episodes, x.status, x.guidance)
    return latest


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000))
def test_a_replay_of_the_log_gives_exactly_what_live_processing_gave(seed: int) -> None:
    log = _log(seed)
    assert _run(log) == _run(list(log))


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 60))
def test_outputs_do_not_depend_on_how_the_stream_is_cut_into_batches(seed: int, batch: int
                                                                      ) -> None:
    log = _log(seed)
    one_by_one = _run(log)
    assert _run(log, batch) == one_by_one
    assert one_by_one["kaizen.experiences"] and one_by_one["kaizen.patterns"]
    outcomes = [signal.outcome for value in one_by_one["kaizen.signals"]
                if (signal := CODEC.decode(value)) and isinstance(signal, model.Signal)]
    assert "abandoned" in outcomes


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 40), st.integers(1, 8))
def test_folding_batches_before_the_ones_before_them_are_stored_changes_no_output(
        seed: int, batch: int, in_flight: int) -> None:
    log = _log(seed)
    assert _run(log, batch, in_flight) == _run(log, batch)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 40))
def test_taking_the_forwarded_events_instead_of_decoding_them_changes_no_output(
        seed: int, batch: int) -> None:
    log = _log(seed)
    assert _run(log, batch, forwarded=False) == _run(log, batch)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000), st.data())
def test_duplicated_records_change_no_experience(seed: int, data: st.DataObject) -> None:
    log = _log(seed)
    extra = data.draw(st.lists(st.sampled_from(log), max_size=20))
    duplicated = sorted([*log, *extra], key=lambda r: r.offset)
    assert _latest_experiences(_run(duplicated)) == _latest_experiences(_run(log))
    assert _latest_experiences(_run(log))  # the fleet does teach something


def test_an_undecodable_record_becomes_a_dead_letter_with_its_position() -> None:
    folds = RecordFolds(ProcessorConfig(bootstrap="unused"))
    record = Record("kaizen.episodes", 2, 41, b"k", b"\x00\x01garbage")
    letter = folds.decode_episode_event(record, "assemble")
    assert isinstance(letter, Outgoing) and letter.topic == "kaizen.deadletter"
    decoded = CODEC.decode(letter.value)
    assert isinstance(decoded, model.DeadLetter)
    assert (decoded.source_partition, decoded.source_offset, decoded.value) == (2, 41,
                                                                               record.value)
    assert decoded.reason


def test_an_event_whose_names_cannot_be_a_scope_becomes_a_dead_letter_with_the_reason() -> None:
    folds = RecordFolds(ProcessorConfig(bootstrap="unused"))
    bad = episode_event(model.EpisodeStarted("task"), tenant="acme", agent="bot\x00", user="u1")
    record = Record("kaizen.episodes", 0, 7, b"ep-1", CODEC.encode(bad))
    letter = folds.decode_episode_event(record, "assemble")
    assert isinstance(letter, Outgoing) and letter.topic == "kaizen.deadletter"
    decoded = CODEC.decode(letter.value)
    assert isinstance(decoded, model.DeadLetter) and "control character" in decoded.reason
    slashed = episode_event(model.EpisodeStarted("task"), tenant="c/x", agent="y")
    assert folds.decode_episode_event(Record("kaizen.episodes", 0, 8, b"e",
                                              CODEC.encode(slashed)), "assemble") == slashed
