"""The processors' tables keep users' text sealed under their keys (their changelogs are topics
too): nothing readable in what is stored, everything back on load, and a forgotten user's part
gone while other users' parts stay (issue 15, forget everywhere)."""

from __future__ import annotations

import json
from pathlib import Path

from kaizen.processors.config import CURATION_TOPIC, ProcessorConfig
from kaizen.processors.folding import Record, RecordFolds
from kaizen.processors.sealing import StateSealer
from kaizen.processors.steps import AssembleStep, DictStore, StoredEpisode, curate_step
from kaizen.schemas import model
from kaizen.schemas.scope import parse_scope_key
from kaizen.streams.personal import KeyStore
from tests.factories import episode_event

MARKS = {"u1": "zebra-u1-secret", "u2": "okapi-u2-secret"}


def _episode(folds: RecordFolds, user: str, eid: str, at: int) -> list[Record]:
    mark = MARKS[user]
    payloads: list[model.EpisodePayload] = [
        model.EpisodeStarted(f"find order of {mark}"),
        model.ToolCall("a", "orders.get", json.dumps({"order": mark})),
        model.ToolResult("a", "orders.get", False, "unknown field 'order'"),
        model.ToolCall("b", "orders.get", json.dumps({"order_id": mark})),
        model.ToolResult("b", "orders.get", True, output=f"order of {mark}"),
        model.Feedback(rating=-1.0, correction=f"call me {mark}"),
        model.EpisodeEnded("success"),
    ]
    return [Record("kaizen.episodes", 0, at + seq, eid.encode(), folds.codec.encode(
        episode_event(p, episode_id=eid, seq=seq, user=user, occurred_at=at + seq)), at + seq)
        for seq, p in enumerate(payloads)]


def _fold(folds: RecordFolds) -> tuple[DictStore, DictStore]:
    episodes, curation = DictStore(), DictStore()
    records = [r for i, user in enumerate(["u1", "u2", "u1", "u2"])
               for r in _episode(folds, user, f"ep{i}", 1_700_000_000_000 + i * 100)]
    batch = AssembleStep(folds).process(episodes, records)
    batch.commit()
    signals = [Record(o.topic, 0, i, o.key, o.value) for i, o in enumerate(batch.outgoing)
               if o.topic == folds.config.internal(CURATION_TOPIC)]
    assert signals
    curate_step(folds).process(curation, signals).commit()
    return episodes, curation


def test_stored_states_hold_no_users_text_and_a_forgotten_users_part_is_gone(
    tmp_path: Path,
) -> None:
    keys_path = tmp_path / "keys.sqlite"
    folds = RecordFolds(ProcessorConfig(bootstrap="unused", keys_path=keys_path))
    episodes, curation = _fold(folds)
    stored = json.dumps([dict(episodes), dict(curation)])
    assert not [m for m in MARKS.values() if m in stored]

    load = StoredEpisode.loader(folds.sealer)
    opened = {k: load(v) for k, v in episodes.items()}
    assert {s.state.task for s in opened.values() if s} == {
        f"find order of {m}" for m in MARKS.values()}
    curate = curate_step(folds)

    def readable() -> str:
        return json.dumps([curate._load(v).to_dict() for v in curation.values()])  # type: ignore[union-attr]

    assert all(m in readable() for m in MARKS.values())
    shared = [g for v in curation.values() for g in curate._load(v).to_dict()["groups"].values()  # type: ignore[union-attr]
              if g["identity"]["user"] is None and g["lesson"]]
    assert shared and all(g["lesson"]["example_task"] for g in shared)  # some user's task

    KeyStore(keys_path).forget("acme", "u1")
    fresh = RecordFolds(ProcessorConfig(bootstrap="unused", keys_path=keys_path))
    load = StoredEpisode.loader(fresh.sealer)  # a new process: no cached key
    kept = {parse_scope_key(k)[-1] for k, v in episodes.items() if load(v) is not None}
    assert kept == {"ep1", "ep3"}  # u2's episodes
    curate = curate_step(fresh)
    after = readable()
    assert MARKS["u1"] not in after and MARKS["u2"] in after


def test_without_encryption_states_are_stored_as_they_are() -> None:
    sealer = StateSealer(None)
    state = {"tenant": "acme", "user": "u1", "task": "t", "last_event_at": 1, "closed": False}
    assert sealer.seal_episode(state) is state
    assert sealer.open_episode(state) is state
