"""What a worker keeps of the records it forwards to itself is what decoding them gives."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from kaizen.processors.config import ProcessorConfig
from kaizen.processors.folding import Record, RecordFolds
from kaizen.processors.forwarded import Forwarded
from kaizen.processors.steps import AssembleStep, DictStore
from kaizen.schemas import model
from kaizen.schemas.codec import Codec
from kaizen.schemas.model import Event
from kaizen.streams.personal import CipherCodec
from tests.factories import episode_event

CODEC = Codec()
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)
VALUE = st.one_of(st.integers(), st.floats(allow_nan=False), TEXT, st.booleans(), st.none())


class Checked(Forwarded):
    """Checks every event kept against the codec's answer for its bytes, field types too."""

    def __init__(self) -> None:
        super().__init__()
        self.kept = 0

    def keep(self, value: bytes, event: Event) -> None:
        decoded = CODEC.decode(value)
        assert decoded == event and repr(decoded) == repr(event)
        self.kept += 1
        super().keep(value, event)


@st.composite
def episodes(draw: st.DrawFn) -> list[model.EpisodePayload]:
    tool = draw(st.sampled_from(["orders.get", "orders.fetch", "search"]))
    failed = {draw(TEXT): draw(VALUE)}
    worked = {**failed, draw(TEXT): draw(VALUE)} if draw(st.booleans()) else {draw(TEXT): 1}
    payloads: list[model.EpisodePayload] = [
        model.EpisodeStarted(draw(TEXT), draw(TEXT), "v1", draw(TEXT)),
        model.ToolCall("a", tool, json.dumps(failed)),
        model.ToolResult("a", tool, False, draw(TEXT), draw(st.none() | TEXT)),
        model.ToolCall("b", draw(st.sampled_from([tool, "orders.fetch"])), json.dumps(worked)),
        model.ToolResult("b", tool, True, None, draw(st.none() | TEXT)),
        model.Feedback(draw(st.none() | st.floats(-1, 1)), draw(st.none() | TEXT), "user"),
    ]
    if draw(st.booleans()):
        payloads.append(model.EpisodeEnded(draw(st.sampled_from(["success", "failure"]))))
    return payloads


@settings(max_examples=40, deadline=None)
@given(st.lists(episodes(), min_size=1, max_size=4))
def test_every_event_kept_is_what_its_bytes_decode_to(fleet: list[list[model.EpisodePayload]]
                                                      ) -> None:
    folds = RecordFolds(ProcessorConfig(bootstrap="unused", idle_ms=1, linger_ms=1,
                                        idle_scan_ms=1))
    folds.forwarded = checked = Checked()
    records = []
    for n, payloads in enumerate(fleet):
        for seq, payload in enumerate(payloads):
            event = episode_event(payload, episode_id=f"ep{n}", seq=seq, user=f"u{n % 2}",
                                  occurred_at=1_700_000_000_000 + 1000 * n + seq)
            records.append(Record("kaizen.episodes", 0, len(records), b"k", CODEC.encode(event),
                                  event.occurred_at))
    AssembleStep(folds).process(DictStore(), records)
    assert checked.kept >= len(fleet)  # a tool result each, at least


def test_a_value_is_taken_once_and_the_oldest_go_past_the_limit() -> None:
    forwarded = Forwarded(limit=2)
    events = [episode_event(model.EpisodeStarted(f"t{i}")) for i in range(3)]
    for i, event in enumerate(events):
        forwarded.keep(b"v%d" % i, event)
    assert len(forwarded) == 2 and forwarded.take(b"v0") is None
    assert forwarded.take(b"v2") is events[2] and forwarded.take(b"v2") is None


def test_the_oldest_go_once_the_values_pass_the_byte_limit() -> None:
    forwarded = Forwarded(limit=100, limit_bytes=250)
    event = episode_event(model.EpisodeStarted("t"))
    for i in range(3):
        forwarded.keep(bytes([i]) * 100, event)
    forwarded.keep(bytes([2]) * 100, event)  # the same bytes again count once
    assert len(forwarded) == 2 and forwarded.take(bytes([0]) * 100) is None
    assert forwarded.take(bytes([1]) * 100) is event
    forwarded.keep(bytes([3]) * 100, event)
    assert len(forwarded) == 2  # 200 bytes wait: nothing more had to go


def test_nothing_is_kept_under_per_user_keys(tmp_path: Path) -> None:
    folds = RecordFolds(ProcessorConfig(bootstrap="unused", keys_path=tmp_path / "keys.sqlite"))
    assert isinstance(folds.codec, CipherCodec) and folds.forwarded is None
    assert RecordFolds(ProcessorConfig(bootstrap="unused")).forwarded is not None
