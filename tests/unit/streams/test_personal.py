"""Per-user encryption: sealed fields round-trip, nothing personal is readable on the wire, and
a deleted key makes every copy unreadable (crypto-shredding)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from kaizen.schemas import model
from kaizen.schemas.codec import Codec
from kaizen.streams.personal import FORGOTTEN, CipherCodec, KeyStore, PersonalCipher
from tests.factories import episode_event, one_of_each_payload

SECRET = "my parcel to 12 Baker Street"


def _payloads() -> list[model.EpisodePayload]:
    return [model.EpisodeStarted(SECRET), model.LlmCall("m", content=SECRET),
            model.ToolCall("c", "ship", json.dumps({"address": SECRET})),
            model.ToolResult("c", "ship", False, error=SECRET, output=SECRET),
            model.Feedback(correction=SECRET), model.Recall(["x"], query=SECRET)]


def test_personal_fields_are_sealed_on_the_wire_and_open_again(tmp_path: Path) -> None:
    codec = CipherCodec(PersonalCipher(KeyStore(tmp_path / "keys.sqlite")))
    for payload in [*_payloads(), *one_of_each_payload()]:
        event = episode_event(payload, user="u1")
        wire = codec.encode(event)
        assert SECRET.encode() not in wire
        assert codec.decode(wire) == event
        assert codec.decode_full(wire).event == event  # the audit / replay path opens it too


def test_events_without_a_user_are_not_touched(tmp_path: Path) -> None:
    codec = CipherCodec(PersonalCipher(KeyStore(tmp_path / "keys.sqlite")))
    event = episode_event(model.EpisodeStarted(SECRET), user=None)
    assert codec.encode(event) == Codec().encode(event)


def test_forgetting_shreds_every_copy_for_every_reader_but_only_that_users(
    tmp_path: Path
) -> None:
    path = tmp_path / "keys.sqlite"
    writer = CipherCodec(PersonalCipher(KeyStore(path)))
    mine = [writer.encode(episode_event(p, user="u1")) for p in _payloads()]
    theirs = writer.encode(episode_event(model.EpisodeStarted(SECRET), user="u2"))
    signal = writer.encode(model.Signal(str(uuid.uuid4()), 1, "acme", "bot", "ep", "correction",
                                        user="u1", task=SECRET, correction=SECRET,
                                        arguments_json="{}"))
    assert KeyStore(path).forget("acme", "u1")
    reader = CipherCodec(PersonalCipher(KeyStore(path)))  # a fresh process: a replay, a rebuild
    for data in [*mine, signal]:
        opened = reader.decode(data)
        text = repr(opened)
        assert SECRET not in text
        assert FORGOTTEN in text or "arguments_json='{}'" in text
    assert reader.decode(theirs).payload == model.EpisodeStarted(SECRET)  # type: ignore[union-attr]


def test_a_ciphertext_cannot_be_moved_to_another_user(tmp_path: Path) -> None:
    cipher = PersonalCipher(KeyStore(tmp_path / "keys.sqlite"))
    sealed = cipher.seal(episode_event(model.EpisodeStarted(SECRET), user="u1"))
    assert isinstance(sealed.payload, model.EpisodeStarted)
    moved = episode_event(model.EpisodeStarted(sealed.payload.task), user="u2")
    opened = cipher.open(moved)
    assert isinstance(opened.payload, model.EpisodeStarted)
    assert SECRET not in opened.payload.task


def test_a_users_own_lesson_is_sealed_and_a_shared_one_carries_no_example_task(
    tmp_path: Path
) -> None:
    codec = CipherCodec(PersonalCipher(KeyStore(tmp_path / "keys.sqlite")))
    own = model.Experience(str(uuid.uuid4()), 1, "acme", "bot", "x1", 0, "preference",
                           model.Trigger(None, "", SECRET), f"prefer {SECRET}", [], 1, 1,
                           user="u1")
    wire = codec.encode(own)
    assert SECRET.encode() not in wire and codec.decode(wire) == own
    shared = model.Experience(str(uuid.uuid4()), 1, "acme", "bot", "x2", 0, "recovery",
                              model.Trigger("sig", "", SECRET), "rename a to b", [], 2, 2)
    wire = codec.encode(shared)
    assert SECRET.encode() not in wire
    assert codec.decode(wire).trigger.example_task == ""  # type: ignore[union-attr]
