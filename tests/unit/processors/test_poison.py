"""Poison records and topic boundaries in the pure steps (no faust): a record that makes a fold
raise is dead-lettered with its traceback after bounded attempts and changes nothing else; records
of the wrong type, size or time are dead letters and move no watermark."""

from __future__ import annotations

import json
import random
import uuid

import pytest

from kaizen.processors.config import ProcessorConfig
from kaizen.processors.folding import Outgoing, Record, RecordFolds
from kaizen.processors.learning.sketch import Distinct
from kaizen.processors.steps import AssembleStep, DictStore
from kaizen.schemas import model
from kaizen.schemas.boundary import Limits
from kaizen.schemas.codec import Codec
from kaizen.schemas.dead_letters import MAX_LETTER_VALUE, is_cut
from kaizen.schemas.scope import scope_key
from tests.factories import episode_event

CODEC = Codec()
T = 1_700_000_000_000
DEEP = "[" * 100_000 + "]" * 100_000  # json.loads raises RecursionError on it


def _episode(eid: str, t: int, first_args: str, offset: int) -> list[Record]:
    payloads: list[model.EpisodePayload] = [
        model.EpisodeStarted("find"), model.ToolCall("a", "orders.get", first_args),
        model.ToolResult("a", "orders.get", False, "unknown field 'order'"),
        model.ToolCall("b", "orders.get", json.dumps({"order_id": 1})),
        model.ToolResult("b", "orders.get", True), model.EpisodeEnded("success")]
    return [Record("kaizen.episodes", 0, offset + seq, eid.encode(),
                   CODEC.encode(episode_event(p, episode_id=eid, seq=seq, occurred_at=t + seq)),
                   t + seq) for seq, p in enumerate(payloads)]


def _router(**limits: int) -> RecordFolds:
    return RecordFolds(ProcessorConfig(bootstrap="unused", idle_ms=4_000, linger_ms=2_000,
                                  idle_scan_ms=1_000, limits=Limits(**limits)))


def _letters(out: list[Outgoing]) -> list[model.DeadLetter]:
    return [e for e in (CODEC.decode(o.value) for o in out if o.topic.endswith("deadletter"))
            if isinstance(e, model.DeadLetter)]


def _signals(outgoing: list[Outgoing]) -> list[model.Signal]:
    """The signals a batch sent to the signals topic (the curation copies go in bundles)."""
    return [s for o in outgoing if o.topic.endswith(".signals")
            and isinstance(s := CODEC.decode(o.value), model.Signal)]


def test_a_record_whose_fold_raises_is_dead_lettered_after_bounded_attempts() -> None:
    good = _episode("ep-good", T, json.dumps({"order": 1}), 0)
    bad = _episode("ep-deep", T + 100, DEEP, 6)
    after = _episode("ep-after", T + 200, json.dumps({"order": 2}), 12)
    step, table = AssembleStep(_router()), DictStore()
    with pytest.raises(RecursionError):  # as a faust batch sees it: the plain fold raises
        step.process(table, good + bad + after)
    batch = step.process(table, good + bad + after, careful=True)
    [letter] = _letters(batch.outgoing)
    assert (letter.error_type, letter.source_offset) == ("RecursionError", 10)
    assert "raised on 3 attempts" in letter.reason and "Traceback" in letter.reason
    kinds = sorted((s.episode_id, s.kind) for s in _signals(batch.outgoing)
                   if s.episode_id != "ep-deep")
    clean_step = AssembleStep(_router())
    clean = clean_step.process(DictStore(), good + after)
    assert kinds == sorted((s.episode_id, s.kind) for s in _signals(clean.outgoing))


def test_careful_folding_gives_what_plain_folding_gives_on_good_records() -> None:
    rng = random.Random(3)
    records = [r for i in range(20) for r in
               _episode(f"ep{i}", T + 1000 * i, json.dumps({"order": rng.randrange(9)}), 6 * i)]
    plain = AssembleStep(_router()).process(DictStore(), records).outgoing
    careful = AssembleStep(_router()).process(DictStore(), records, careful=True).outgoing
    assert plain == careful


def test_wrong_type_oversize_and_far_future_records_are_dead_letters_and_move_no_watermark(
) -> None:
    step, table = AssembleStep(_router(max_record_bytes=4096)), DictStore()
    open_ = _episode("ep-open", T, json.dumps({"order": 1}), 0)[:3]
    experience = model.Experience(str(uuid.uuid4()), T, "acme", "bot", "x", 1, "pitfall",
                                  model.Trigger(), "INJECTED", [], 2, 2)
    future = episode_event(model.EpisodeStarted("far"), episode_id="ep-far", seq=0,
                           occurred_at=253_402_300_000_000)
    bad = [Record("kaizen.episodes", 0, 3, b"x", CODEC.encode(experience), T + 5),
           Record("kaizen.episodes", 0, 4, b"z", b"\0" * 10_000, T + 6),
           Record("kaizen.episodes", 0, 5, b"ep-far", CODEC.encode(future), T + 7)]
    batch = step.process(table, open_ + bad)
    letters = _letters(batch.outgoing)
    assert [(d.source_offset, d.error_type) for d in letters] == [
        (3, "WrongType"), (4, "Oversize"), (5, "OutOfTime")]
    batch.commit()
    assert step._watermarks[0] == T + 2  # noqa: SLF001 - the far-future event moved nothing
    stored = table.get(scope_key("acme", "support-bot", "ep-open"))  # tenant/agent/episode
    assert stored is not None and not stored["episode"]["closed"]


def test_a_dead_letter_of_a_large_record_is_cut_and_points_at_the_record() -> None:
    folds = _router()
    letter = _letters([folds.dead_letter(Record("kaizen.episodes", 1, 7, b"k", b"\0" * 5_000_000),
                                          "assemble", ValueError("too big"))])[0]
    assert len(letter.value or b"") == MAX_LETTER_VALUE and is_cut(letter)
    assert "kaizen.episodes/1/7" in letter.reason


@pytest.mark.parametrize("n", [0, 1, 32, 33, 500, 20_000])
def test_distinct_counts_exactly_while_few_and_within_the_sketch_error_beyond(n: int) -> None:
    sketch = Distinct.of(f"v{i}" for i in range(n))
    again = Distinct.of(f"v{i}" for i in range(n))
    assert sketch == again
    assert Distinct.from_json(json.loads(json.dumps(sketch.to_json()))) == sketch
    if n <= 32:
        assert sketch.count() == n
    else:
        assert abs(sketch.count() - n) <= 0.3 * n
    assert len(json.dumps(sketch.to_json())) < 400


def test_distinct_sketches_merge_like_one_sketch_of_both() -> None:
    left, right = Distinct.of(f"a{i}" for i in range(300)), Distinct.of(f"b{i}" for i in range(40))
    left.merge(right)
    assert left == Distinct.of([*(f"a{i}" for i in range(300)), *(f"b{i}" for i in range(40))])
