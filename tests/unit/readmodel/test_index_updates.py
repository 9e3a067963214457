"""The recall index under writes: base segment + overlay + background compiles answer exactly
as a brute-force scan of the current lessons, after every write (read-your-writes), with
filters, across the exact / ANN switch; and readers never see a lesson twice or not at all.

The ANN is forced on for tiny segments with every inverted list probed (so any difference is
a bug in the bookkeeping, not approximation); the oracle is an independent brute-force
statement of the scope and scoring rules of kaizen/readmodel/index.py.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kaizen.readmodel import vector_search
from kaizen.readmodel.index import SIGNATURE_BOOST, TOOL_BOOST, IndexEntry, RecallIndex
from kaizen.schemas.model import Evidence, Experience, Trigger

DIM = 16
TOOLS = ["search", "billing", "orders.get", None]
USERS = ["ann", "bob", None, None, None]
SIGNATURES = ["search: <n> timeout", "billing: declined", None]


class Fixed:
    """Query texts "q<n>" map to fixed random vectors."""

    dimension, model_id = DIM, "fixed"

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.stack([unit(10_000 + int(t[1:])) for t in texts])


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM)
    return (v / np.linalg.norm(v)).astype(np.float32)


def lesson(i: int, version: int, traits: int, status: str = "proposed") -> IndexEntry:
    experience = Experience(
        event_id=f"ev-{i}-{version}", occurred_at=version, tenant="acme", agent="bot",
        experience_id=f"x{i:03d}", version=version, kind="strategy",
        trigger=Trigger(SIGNATURES[traits % 3], "qa", f"task {i}"), guidance=f"do {i}",
        evidence=[Evidence("ep", 0, i, None)], support_episodes=1, support_users=1,
        user=USERS[traits % 5], tool=TOOLS[traits % 4], status=status)
    return IndexEntry(experience, unit(i * 1_000 + version))  # unique: no exact score ties


def oracle(held: dict[str, IndexEntry], q: int, user: str | None, tools: list[str] | None,
           tool: str | None, signature: str | None, k: int) -> list[str]:
    """Brute force over the lessons held, by the rules the index documents."""
    query = Fixed().embed([f"q{q}"])[0]
    scored = []
    for entry in held.values():
        e = entry.experience
        if e.status != "proposed" or (e.user is not None and e.user != user):
            continue
        if tools is not None and e.tool is not None and e.tool not in tools:
            continue
        if tool is not None and e.tool != tool:
            continue
        score = float(entry.vector @ query)  # type: ignore[operator]
        score += TOOL_BOOST if tools is not None and e.tool is not None else 0.0
        score += SIGNATURE_BOOST if signature is not None and e.trigger.signature == signature \
            else 0.0
        scored.append((-score, e.experience_id))
    return [i for _, i in sorted(scored)[:k]]


@pytest.fixture(autouse=True)
def ann_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vector_search, "EXACT_MAX_ALLOWED", 0)
    monkeypatch.setattr(vector_search, "OVERFETCH", 2)
    monkeypatch.setattr(vector_search, "NPROBE", 10_000)  # every list: ANN == exact


OPS = st.lists(st.tuples(st.sampled_from(["put", "put", "put", "remove", "flush", "bulk"]),
                         st.integers(0, 39), st.integers(0, 59)), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_every_write_is_seen_by_the_next_recall_as_by_a_brute_force_scan(
        ops: list[tuple[str, int, int]]) -> None:
    index = RecallIndex(Fixed(), ann_min_rows=8, overlay_max=4)
    held: dict[str, IndexEntry] = {}
    versions: dict[int, int] = {}
    for n, (op, i, traits) in enumerate(ops):
        if op == "remove":
            index.remove(f"x{i:03d}")
            held.pop(f"x{i:03d}", None)
        elif op == "flush":
            index.flush()
        else:
            count = 12 if op == "bulk" else 1  # a bulk write of >= overlay_max: compiled now
            entries = []
            for j in range(i, i + count):
                versions[j] = versions.get(j, 0) + 1
                status = "quarantined" if (traits + j) % 7 == 0 else "proposed"
                entries.append(lesson(j, versions[j], traits + j, status))
            index.load(entries)
            held.update({e.experience.experience_id: e for e in entries})
        user, tools = USERS[n % 5], [None, ["search"], ["billing", "orders.get"]][n % 3]
        tool = "search" if n % 4 == 0 else None
        signature = SIGNATURES[n % 3]
        for k in (1, 5, 50):
            got = index.recall(f"q{n % 7}", agent="bot", tenant="acme", user=user,
                               tools=tools, tool=tool, signature=signature, k=k)
            assert [r.experience_id for r in got] == oracle(
                held, n % 7, user, tools, tool, signature, k), (op, i, k)
    index.flush()
    assert index.active_ids("acme", "bot") == {
        x for x, e in held.items() if e.experience.status == "proposed"}


def test_readers_see_every_lesson_exactly_once_while_it_is_rewritten_and_compiled() -> None:
    """A write masks the old row and adds the new one in one published view; a background
    compile swaps base and overlay in one view: no gap, no duplicate, whatever the timing."""
    index = RecallIndex(Fixed(), ann_min_rows=20, overlay_max=8)
    index.load([lesson(i, 1, i) for i in range(60)])
    want = {f"x{i:03d}" for i in range(60) if (i % 5) in (2, 3, 4)}  # the user-less ones
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                got = [r.experience_id for r in index.recall("q1", agent="bot", tenant="acme",
                                                             k=100)]
                assert len(got) == len(set(got)) and set(got) == want
        except BaseException as error:  # re-raised in the main thread
            errors.append(error)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    for version in range(2, 40):
        for i in range(0, 60, 7):
            index.upsert(lesson(i, version, i))
    index.flush()
    stop.set()
    for thread in readers:
        thread.join()
    assert errors == []
