"""Tests of the in-process recall index and the prompt block it feeds.

Scope rules are checked as a Hypothesis property against an independent
statement of the rules (``eligible``), with the fast HashingEmbedder; ranking
quality with the real MiniLM model.
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaizen.readmodel.embedding import HashingEmbedder, MiniLMEmbedder
from kaizen.readmodel.index import (
    SIGNATURE_BOOST,
    IndexEntry,
    Recalled,
    RecallIndex,
    _top,
    content_hash,
    recall_from_index,
    recall_text,
)
from kaizen.readmodel.prompt import HEADER, render_lessons, summarise_patch
from kaizen.schemas.model import ArgumentChange, Evidence, Experience, ToolCallPatch, Trigger

QUOTES = ToolCallPatch("search", [ArgumentChange("reformat", "q", rule="strip_quotes")])


def experience(
    experience_id: str,
    *,
    tenant: str = "acme",
    agent: str = "bot",
    user: str | None = None,
    tool: str | None = None,
    status: str = "proposed",
    version: int = 1,
    guidance: str = "Check the order id first.",
    example_task: str = "where is my order",
    signature: str | None = None,
    kind: str = "strategy",
    patch: ToolCallPatch | None = None,
) -> Experience:
    """An experience with the fields recall looks at; the rest fixed."""
    return Experience(
        event_id=f"ev-{experience_id}-{version}", occurred_at=1_000 * version,
        tenant=tenant, agent=agent, experience_id=experience_id, version=version, kind=kind,
        trigger=Trigger(signature, "qa", example_task), guidance=guidance,
        evidence=[Evidence("ep-1", 0, 1, user)], support_episodes=1, support_users=1,
        user=user, tool=tool, patch=patch, status=status,
    )


def ids(results: list[Recalled]) -> list[str]:
    return [r.experience_id for r in results]


@pytest.fixture
def index() -> RecallIndex:
    return RecallIndex(HashingEmbedder())


# -- scope property ---------------------------------------------------------------

TENANTS, AGENTS = ["t1", "t2"], ["a1", "a2"]
USERS: list[str | None] = [None, "u1", "u2"]
TOOLS: list[str | None] = [None, "search", "sql"]
WORDS = ["order", "refund", "search", "quotes", "invoice", "kafka", "date", "user"]

lesson_specs = st.fixed_dictionaries({
    "tenant": st.sampled_from(TENANTS), "agent": st.sampled_from(AGENTS),
    "user": st.sampled_from(USERS), "tool": st.sampled_from(TOOLS),
    "status": st.sampled_from(["candidate", "proposed", "quarantined"]),
    "words": st.lists(st.sampled_from(WORDS), min_size=1, max_size=4),
})
queries = st.fixed_dictionaries({
    "tenant": st.sampled_from(TENANTS), "agent": st.sampled_from(AGENTS),
    "user": st.sampled_from(USERS),
    "tools": st.none() | st.sets(st.sampled_from(["search", "sql", "mail"])),
    "words": st.lists(st.sampled_from(WORDS), max_size=4),
    "k": st.integers(1, 8),
})


def eligible(e: Experience, q: dict, active: dict[tuple[str, str], set[str] | None]) -> bool:
    """The scope rules, stated independently of the implementation."""
    members = active.get((e.tenant, e.agent))
    is_active = e.status == "proposed" if members is None else e.experience_id in members
    return (
        e.tenant == q["tenant"] and e.agent == q["agent"] and is_active
        and (e.user is None or e.user == q["user"])
        and (q["tools"] is None or e.tool is None or e.tool in q["tools"])
    )


@settings(max_examples=150, deadline=None)
@given(
    specs=st.lists(lesson_specs, max_size=25),
    snapshots=st.dictionaries(
        st.tuples(st.sampled_from(TENANTS), st.sampled_from(AGENTS)),
        st.none() | st.sets(st.integers(0, 30)),
    ),
    query=queries,
)
def test_recall_returns_only_eligible_lessons_and_all_it_can(
    specs: list[dict], snapshots: dict, query: dict
) -> None:
    lessons = [
        experience(f"x{i}", tenant=s["tenant"], agent=s["agent"], user=s["user"],
                   tool=s["tool"], status=s["status"], guidance=" ".join(s["words"]))
        for i, s in enumerate(specs)
    ]
    active = {
        scope: None if members is None else {f"x{i}" for i in members}
        for scope, members in snapshots.items()
    }
    index = RecallIndex(HashingEmbedder(64))
    index.load(lessons)
    for (tenant, agent), members in active.items():
        index.set_active(tenant, agent, members)

    got = index.recall(" ".join(query["words"]), agent=query["agent"], tenant=query["tenant"],
                       user=query["user"], tools=query["tools"], k=query["k"])

    by_id = {e.experience_id: e for e in lessons}
    assert all(eligible(by_id[r.experience_id], query, active) for r in got)
    n_eligible = sum(eligible(e, query, active) for e in lessons)
    assert len(got) == min(query["k"], n_eligible)
    assert len(set(ids(got))) == len(got)
    scores = [r.score for r in got]
    assert scores == sorted(scores, reverse=True)


# -- behaviour ----------------------------------------------------------------------


def test_most_similar_lesson_ranks_first(index: RecallIndex) -> None:
    index.load([
        experience("quotes", guidance="do not wrap the search query in quotes",
                   example_task="search the docs for kafka"),
        experience("refund", guidance="refunds need the order id",
                   example_task="refund my order"),
    ])
    got = index.recall("search the docs for kafka retention", agent="bot", tenant="acme")
    assert ids(got) == ["quotes", "refund"]
    assert got[0].score > got[1].score


def test_user_lesson_is_only_for_that_user(index: RecallIndex) -> None:
    index.load([experience("pref", user="u1", kind="preference"), experience("shared")])
    assert set(ids(index.recall("order", agent="bot", tenant="acme", user="u1"))) == {
        "pref", "shared"}
    assert ids(index.recall("order", agent="bot", tenant="acme", user="u2")) == ["shared"]
    assert ids(index.recall("order", agent="bot", tenant="acme")) == ["shared"]


def test_without_snapshot_only_proposed_are_active_then_snapshot_decides(
    index: RecallIndex,
) -> None:
    index.load([experience("p"), experience("c", status="candidate"),
                experience("q", status="quarantined")])
    assert index.active_ids("acme", "bot") == {"p"}
    index.set_active("acme", "bot", {"c", "unknown"})
    assert ids(index.recall("order", agent="bot", tenant="acme")) == ["c"]
    index.set_active("acme", "bot", set())
    assert index.recall("order", agent="bot", tenant="acme") == []
    index.set_active("acme", "bot", None)
    assert ids(index.recall("order", agent="bot", tenant="acme")) == ["p"]


def test_older_version_is_ignored_and_newer_replaces(index: RecallIndex) -> None:
    index.upsert(experience("x", version=2, guidance="version two"))
    index.upsert(experience("x", version=1, guidance="version one"))
    assert [r.guidance for r in index.recall("order", agent="bot", tenant="acme")] == [
        "version two"]
    index.upsert(experience("x", version=3, guidance="version three", status="quarantined"))
    assert index.recall("order", agent="bot", tenant="acme") == []
    assert len(index) == 1


def test_remove_forgets_the_lesson(index: RecallIndex) -> None:
    index.load([experience("a"), experience("b")])
    index.remove("a")
    index.remove("never-seen")
    assert ids(index.recall("order", agent="bot", tenant="acme")) == ["b"]


def test_signature_and_tool_boosts(index: RecallIndex) -> None:
    sig = "search: Could not find [<str>]."
    index.load([
        experience("generic", guidance="order lookup tips", example_task="order lookup"),
        experience("fix", guidance="strip quotes", example_task="unrelated words here",
                   signature=sig, tool="search"),
    ])
    plain = {r.experience_id: r.score for r in index.recall(
        "order lookup", agent="bot", tenant="acme")}
    boosted = index.recall("order lookup", agent="bot", tenant="acme", signature=sig)
    assert boosted[0].experience_id == "fix" or plain["generic"] - plain["fix"] > SIGNATURE_BOOST
    assert {r.experience_id: r.score for r in boosted}["fix"] == pytest.approx(
        plain["fix"] + SIGNATURE_BOOST, abs=1e-5)
    with_tools = {r.experience_id: r.score for r in index.recall(
        "order lookup", agent="bot", tenant="acme", tools=["search"])}
    assert with_tools["fix"] > plain["fix"]
    assert with_tools["generic"] == pytest.approx(plain["generic"], abs=1e-6)


def test_precomputed_vectors_are_used_and_checked(index: RecallIndex) -> None:
    vector = np.zeros(index._embedder.dimension, dtype=np.float32)
    vector[0] = 1.0
    index.upsert(IndexEntry(experience("v"), vector))
    (got,) = index.recall("order", agent="bot", tenant="acme")
    query = HashingEmbedder().embed(["order"])[0]
    assert got.score == pytest.approx(float(query[0]), abs=1e-6)
    with pytest.raises(ValueError, match="shape"):
        index.upsert(IndexEntry(experience("w"), np.zeros(3, dtype=np.float32)))


def test_min_score_and_k(index: RecallIndex) -> None:
    index.load([experience(f"x{i}", guidance=f"lesson {i}") for i in range(6)])
    assert len(index.recall("order", agent="bot", tenant="acme", k=3)) == 3
    assert index.recall("order", agent="bot", tenant="acme", k=0) == []
    assert index.recall("order", agent="bot", tenant="acme", min_score=1.5) == []


def test_tool_keeps_only_that_tools_lessons_and_margin_cuts_far_below_the_best(
        index: RecallIndex) -> None:
    index.load([
        experience("pay-1", tool="pay", guidance="pay needs a currency", example_task="pay"),
        experience("pay-2", tool="pay", guidance="refund rules differ", example_task="other"),
        experience("ship", tool="ship", guidance="pay attention to ship dates"),
        experience("general", guidance="pay the customer kindly"),
    ])
    got = index.recall("pay currency", agent="bot", tenant="acme", tool="pay", k=5)
    assert set(ids(got)) == {"pay-1", "pay-2"}  # not ship, and not the tool-less lesson
    assert index.recall("pay", agent="bot", tenant="acme", tool="never-seen") == []
    best = got[0].score
    near = index.recall("pay currency", agent="bot", tenant="acme", tool="pay", k=5,
                        margin=best - got[1].score - 1e-4)
    assert ids(near) == ids(got)[:1]  # the second is just past the margin
    body = {"task": "pay currency", "agent": "bot", "tenant": "acme", "tool": "pay",
            "margin": 0.0, "k": 5}
    assert [x["experience_id"] for x in recall_from_index(index, body)["lessons"]] == ids(got)[:1]


def test_recall_while_updating_from_other_threads(index: RecallIndex) -> None:
    """Readers never see an inconsistent view while writers replace and remove lessons."""
    index.load([experience(f"x{i}") for i in range(50)])
    errors: list[BaseException] = []
    stop = threading.Event()

    def write() -> None:
        for round_ in range(200):
            index.upsert(experience(f"x{round_ % 60}", version=round_ + 2,
                                    user="u1" if round_ % 2 else None))
            index.remove(f"x{(round_ * 7) % 60}")

    def read() -> None:
        try:
            while not stop.is_set():
                for r in index.recall("order", agent="bot", tenant="acme", user="u2", k=10):
                    assert r.experience_id.startswith("x")
        except BaseException as error:  # collected and re-raised in the main thread
            errors.append(error)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    write()
    stop.set()
    for t in readers:
        t.join()
    assert errors == []


def test_recall_text_and_content_hash() -> None:
    e = experience("x", signature="search: err", guidance="Strip quotes.")
    assert recall_text(e) == "where is my order\nStrip quotes.\nsearch: err"
    counted = dataclasses.replace(e, version=9, helpful=4, status="quarantined")
    assert content_hash(counted) == content_hash(e)
    assert content_hash(dataclasses.replace(e, guidance="other")) != content_hash(e)
    assert content_hash(dataclasses.replace(e, user="u1")) != content_hash(e)


# -- prompt block ---------------------------------------------------------------------


def test_render_lessons_numbers_guidance_and_summarises_patches() -> None:
    patch = ToolCallPatch("search", [
        ArgumentChange("reformat", "q", rule="strip_quotes"),
        ArgumentChange("rename", "query", new_argument="q"),
        ArgumentChange("add", "limit", value_json="10"),
    ], use_tool="web_search")
    block = render_lessons([
        Recalled("a", 0.9, "Do not quote the query.\nIt fails.", patch, "recovery", "search"),
        Recalled("b", 0.5, "Answer in French.", None, "preference", None),
    ])
    lines = block.splitlines()
    assert lines[0] == HEADER
    assert lines[1] == "1. Do not quote the query."
    assert lines[2].strip() == "It fails."
    assert "`web_search` instead" in lines[3] and "strip_quotes" in lines[3]
    assert "rename `query` to `q`" in lines[3] and "add `limit` = 10" in lines[3]
    assert lines[4] == "2. Answer in French."
    assert len(lines) == 5
    assert render_lessons([]) == ""


def test_summarise_patch_shortens_long_values() -> None:
    long = ToolCallPatch("sql", [ArgumentChange("replace", "query", value_json='"' + "x" * 500)])
    text = summarise_patch(long)
    assert text.startswith("Fix for `sql` calls: set `query` to ")
    assert len(text) < 150


# -- real model ----------------------------------------------------------------------


def test_minilm_ranks_the_quotes_lesson_first_for_a_search_task() -> None:
    index = RecallIndex(MiniLMEmbedder())
    index.load([
        experience("quotes", tool="search", kind="recovery", patch=QUOTES,
                   guidance="Don't wrap the search query in quotes: exact-phrase search "
                            "finds nothing.",
                   example_task="find articles about Kafka consumer groups"),
        experience("refund", guidance="Ask for the order number before issuing a refund.",
                   example_task="I want my money back for order 1234"),
        experience("date", tool="calendar", guidance="Send dates to the calendar tool as "
                   "YYYY-MM-DD.", example_task="book a meeting with Anna next Tuesday"),
        experience("tone", guidance="Keep answers under three sentences.",
                   example_task="summarise this email thread"),
    ])
    for task in ("search the web for the latest release notes of PostgreSQL",
                 "search for the kafka docs on retention",
                 "web search: best pizza in Rome"):
        got = index.recall(task, agent="bot", tenant="acme", k=4)
        assert [r.experience_id for r in got][0] == "quotes", task


@given(st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0]), min_size=1, max_size=40),
       st.integers(1, 45))
def test_top_k_equals_a_full_stable_sort(scores: list[float], k: int) -> None:
    values = np.asarray(scores)
    want = np.argsort(-values, kind="stable")[:k]
    assert _top(values, k).tolist() == want.tolist()
