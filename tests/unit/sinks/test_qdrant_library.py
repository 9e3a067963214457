"""Tests of the Qdrant experience library, on embedded Qdrant (local mode) in tmp dirs.

Local mode is qdrant-client's own engine, not a fake: the same calls run against
a server when ``url=`` is given.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from kaizen.readmodel.embedding import HashingEmbedder
from kaizen.readmodel.index import RecallIndex, content_hash, recall_text
from kaizen.schemas.model import ArgumentChange, Evidence, Experience, ToolCallPatch, Trigger
from kaizen.sinks.qdrant_library import (
    ExperienceLibrary,
    LibraryError,
    LibraryLockedError,
    point_id,
)

QUOTES = ToolCallPatch("search", [ArgumentChange("reformat", "q", rule="strip_quotes")],
                       use_tool=None)


def experience(
    experience_id: str,
    *,
    version: int = 1,
    tenant: str = "acme",
    agent: str = "bot",
    user: str | None = None,
    guidance: str = "Do not wrap the search query in quotes.",
    status: str = "proposed",
    helpful: int = 0,
) -> Experience:
    return Experience(
        event_id=f"ev-{experience_id}-{version}", occurred_at=1_700_000_000_000 + version,
        tenant=tenant, agent=agent, experience_id=experience_id, version=version,
        kind="recovery", trigger=Trigger("search: Could not find [<str>].", "qa",
                                         f"search the docs for {experience_id}"),
        guidance=guidance, evidence=[Evidence("ep-1", 0, 7, "u1"), Evidence("ep-2", 1, 9)],
        support_episodes=2, support_users=1, user=user, tool="search", patch=QUOTES,
        helpful=helpful, status=status,
    )


@pytest.fixture
def library(tmp_path: Path) -> Iterator[ExperienceLibrary]:
    with ExperienceLibrary.open(path=tmp_path / "qdrant", embedder=HashingEmbedder()) as lib:
        yield lib


def test_upsert_round_trips_the_whole_experience(library: ExperienceLibrary) -> None:
    e = experience("x1", user="u1")
    library.upsert([e])
    assert library.get(["x1"]) == [e]
    assert library.get(["missing", "x1", "x1"]) == [e]


def test_upsert_is_idempotent(library: ExperienceLibrary) -> None:
    batch = [experience("x1"), experience("x2")]
    library.upsert(batch)
    library.upsert(batch)
    assert library.count() == 2
    assert library.get(["x1", "x2"]) == batch


def test_older_version_never_overwrites_newer(library: ExperienceLibrary) -> None:
    v3 = experience("x1", version=3, guidance="newest", helpful=5)
    library.upsert([v3])
    library.upsert([experience("x1", version=2, guidance="stale")])
    assert library.get(["x1"]) == [v3]
    v4 = experience("x1", version=4, guidance="newer still")
    library.upsert([v4])
    assert library.get(["x1"]) == [v4]


def test_latest_version_in_one_batch_wins_whatever_the_order(
    library: ExperienceLibrary,
) -> None:
    library.upsert([experience("x1", version=5), experience("x1", version=2),
                    experience("x2", version=1), experience("x1", version=4)])
    assert [e.version for e in library.get(["x1", "x2"])] == [5, 1]
    assert library.count() == 2


def test_payload_carries_scope_fields_hash_and_model(tmp_path: Path) -> None:
    client = QdrantClient(path=str(tmp_path / "q"))
    try:
        library = ExperienceLibrary(client, HashingEmbedder(), collection="c")
        e = experience("x1", user="u1")
        library.upsert([e])
        (record,) = client.retrieve("c", [point_id("x1")], with_vectors=True)
        payload = record.payload or {}
        assert {k: payload[k] for k in ("tenant", "agent", "user", "tool", "kind", "status",
                                        "version", "experience_id")} == {
            "tenant": "acme", "agent": "bot", "user": "u1", "tool": "search",
            "kind": "recovery", "status": "proposed", "version": 1, "experience_id": "x1"}
        assert payload["content_hash"] == content_hash(e)
        assert payload["support"] == {"episodes": 2, "users": 1}
        assert isinstance(payload["patch"], str) and "strip_quotes" in payload["patch"]
        assert payload["model_id"] == HashingEmbedder().model_id
        expected = HashingEmbedder().embed([recall_text(e)])[0]
        assert np.allclose(np.asarray(record.vector), expected, atol=1e-6)
    finally:
        client.close()


def test_scroll_and_count_are_scoped(library: ExperienceLibrary) -> None:
    library.upsert([experience(f"a{i}") for i in range(600)]
                   + [experience("b", agent="other"), experience("c", tenant="globex")])
    scope = library.scroll(tenant="acme", agent="bot")
    assert len(scope) == 600  # more than one scroll page
    assert {entry.experience.experience_id for entry in scope} == {f"a{i}" for i in range(600)}
    assert all(entry.vector is not None for entry in scope)
    assert library.count(tenant="acme", agent="bot") == 600
    assert library.count(tenant="acme") == 601
    assert library.count() == 602


def test_reloaded_scope_recalls_like_the_live_index(tmp_path: Path) -> None:
    embedder = HashingEmbedder()
    lessons = [experience(f"lesson-{i}", guidance=f"tip {i} about {w}")
               for i, w in enumerate(["quotes", "dates", "orders", "refunds", "kafka"])]
    lessons.append(experience("pref", user="u1", guidance="answer in French"))
    lessons.append(experience("cand", status="candidate"))
    live = RecallIndex(embedder)
    live.load(lessons)
    with ExperienceLibrary.open(path=tmp_path / "q", embedder=embedder) as library:
        library.upsert(lessons)
    with ExperienceLibrary.open(path=tmp_path / "q", embedder=embedder) as library:
        reloaded = RecallIndex(embedder)
        reloaded.load(library.scroll(tenant="acme", agent="bot"))
    for task in ["search the docs for kafka", "refund my order", "what date is it"]:
        for user in [None, "u1", "u2"]:
            want = live.recall(task, agent="bot", tenant="acme", user=user, k=4)
            got = reloaded.recall(task, agent="bot", tenant="acme", user=user, k=4)
            assert [r.experience_id for r in got] == [r.experience_id for r in want]
            assert [r.score for r in got] == pytest.approx([r.score for r in want], abs=1e-6)


def test_vectors_of_another_model_are_reembedded(tmp_path: Path) -> None:
    e = experience("x1")
    with ExperienceLibrary.open(path=tmp_path / "q", embedder=HashingEmbedder()) as library:
        library.upsert([e])

    class OtherModel(HashingEmbedder):
        def __init__(self) -> None:
            super().__init__()
            self.model_id = "other-model"

    with ExperienceLibrary.open(path=tmp_path / "q", embedder=OtherModel()) as library:
        (entry,) = library.scroll()
    assert entry.vector is None and entry.experience == e


def test_dimension_mismatch_is_refused(tmp_path: Path) -> None:
    with ExperienceLibrary.open(path=tmp_path / "q", embedder=HashingEmbedder(384)):
        pass
    with pytest.raises(LibraryError, match="size 384"):
        ExperienceLibrary.open(path=tmp_path / "q", embedder=HashingEmbedder(64))
    # the failed open released the directory
    with ExperienceLibrary.open(path=tmp_path / "q", embedder=HashingEmbedder(384)) as lib:
        assert lib.count() == 0


def test_persists_across_reopen(tmp_path: Path) -> None:
    with ExperienceLibrary.open(path=tmp_path / "q", embedder=HashingEmbedder()) as library:
        library.upsert([experience("x1", version=2)])
    with ExperienceLibrary.open(path=tmp_path / "q", embedder=HashingEmbedder()) as library:
        assert [e.version for e in library.get(["x1"])] == [2]
        library.upsert([experience("x1", version=1)])
        assert [e.version for e in library.get(["x1"])] == [2]


def test_locked_directory_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "q"
    holder = subprocess.Popen(  # another process owns the directory, as in production
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from qdrant_client import QdrantClient
            client = QdrantClient(path={str(path)!r})
            print("ready", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(LibraryLockedError, match="in use by another process"):
            ExperienceLibrary.open(path=path, embedder=HashingEmbedder())
    finally:
        holder.communicate("")
    with ExperienceLibrary.open(path=path, embedder=HashingEmbedder()) as library:
        assert library.count() == 0


def test_open_needs_exactly_one_location() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        ExperienceLibrary.open(embedder=HashingEmbedder())
    with pytest.raises(ValueError, match="exactly one"):
        ExperienceLibrary.open(path="x", url="http://localhost:6333", embedder=HashingEmbedder())


def test_point_id_is_a_stable_uuid_per_experience() -> None:
    assert point_id("x1") == point_id("x1") != point_id("x2")
    assert uuid.UUID(point_id("x1")).version == 5
