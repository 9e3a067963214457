"""Curation: one experience per lesson, growing support, lineage, scoping and replay safety."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections import defaultdict, deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaizen.processors.learning.curation import (
    EVIDENCE_PER_VERSION,
    EXPERIENCE_NAMESPACE,
    CurationState,
    apply_signal,
    canonical_json,
    content_digest,
    curation_key,
)
from kaizen.processors.learning.distinct import EXACT_CAP
from kaizen.processors.learning.extractors import Extractor, Lesson, RecordedLLMExtractor
from kaizen.schemas.model import (
    ArgumentChange,
    Evidence,
    Experience,
    Signal,
    ToolCallPatch,
    Trigger,
)

T0 = 1_700_000_000_000
QUOTED = "Search: Could not find [<quoted>]."
STRIP = ToolCallPatch("Search", [ArgumentChange("reformat", "query", rule="strip_quotes")])


def replace_patch(value: str) -> ToolCallPatch:
    return ToolCallPatch(
        "Search", [ArgumentChange("replace", "query", value_json=json.dumps(value))]
    )


def signal(kind: str, episode: str, at: int, **kw: Any) -> Signal:
    base: dict[str, Any] = dict(
        event_id=f"{episode}/{kind}",
        occurred_at=at,
        tenant="acme",
        agent="bot",
        episode_id=episode,
        kind=kind,
        user="u1",
        task=f"task of {episode}",
        task_type="qa",
        source_partition=0,
        source_offset=at - T0,
    )
    if kind in ("failure", "recovery"):
        base.update(tool="Search", signature=QUOTED, arguments_json='{"query": "\\"x\\""}')
    return Signal(**{**base, **kw})


def run(
    signals: Iterable[Signal],
    states: dict[str, CurationState] | None = None,
    **kw: Any,
) -> tuple[dict[str, CurationState], list[Experience]]:
    """Fold signals the way the processor does: one state per curation key."""
    states = {} if states is None else states
    out: list[Experience] = []
    for s in signals:
        key = curation_key(s)
        if key is None:
            continue
        states[key], experiences = apply_signal(states.get(key), s, **kw)
        out += experiences
    return states, out


def lineage(experiences: Iterable[Experience]) -> dict[str, Evidence]:
    """The union of evidence over all versions, by episode: the full lineage of the lessons."""
    return {e.episode_id: e for x in experiences for e in x.evidence}


def snapshot(states: dict[str, CurationState]) -> str:
    return json.dumps({k: v.to_dict() for k, v in sorted(states.items())}, sort_keys=True)


def restore(states: dict[str, CurationState]) -> dict[str, CurationState]:
    data = json.loads(snapshot(states))
    return {k: CurationState.from_dict(v) for k, v in data.items()}


def test_same_lesson_from_many_episodes_is_one_experience_with_growing_support() -> None:
    users = ["u1", "u1", "u2", "u3", "u3"]
    signals = [
        signal("recovery", f"ep{i}", T0 + i * 1000, patch=STRIP, user=u, source_partition=i % 2)
        for i, u in enumerate(users)
    ]
    _, out = run(signals)
    assert len({e.experience_id for e in out}) == 1
    assert [e.version for e in out] == [1, 2, 3, 4, 5]
    assert [e.support_episodes for e in out] == [1, 2, 3, 4, 5]
    assert [e.support_users for e in out] == [1, 1, 2, 3, 3]
    assert [e.status for e in out] == ["candidate"] + ["proposed"] * 4
    last = out[-1]
    expected = [
        Evidence(s.episode_id, s.source_partition, s.source_offset, s.user) for s in signals
    ]
    assert last.evidence == expected[-1:] + expected[:-1]  # the cause first, then by time
    assert lineage(out) == {e.episode_id: e for e in expected}
    assert last.occurred_at == signals[-1].occurred_at
    assert (last.kind, last.tool, last.patch, last.user) == ("recovery", "Search", STRIP, None)
    assert last.trigger.signature == QUOTED and last.trigger.example_task == "task of ep0"
    assert "do not wrap `query` in quotes" in last.guidance
    assert [e.event_id for e in out] == [
        str(uuid.uuid5(EXPERIENCE_NAMESPACE, f"{last.experience_id}/{v}")) for v in range(1, 6)
    ]
    assert len(last.experience_id) == 32 and int(last.experience_id, 16) >= 0


def test_a_widely_supported_lesson_spreads_its_lineage_over_bounded_versions() -> None:
    n = EXACT_CAP  # exact counting: every episode makes a version
    signals = [
        signal("recovery", f"ep{i:03}", T0 + (i * 7919) % n * 10, patch=STRIP, user=f"u{i % 40}")
        for i in range(n)
    ]
    _, out = run(signals)
    assert len(out) == n and len({e.experience_id for e in out}) == 1
    assert max(len(x.evidence) for x in out) == EVIDENCE_PER_VERSION == 32
    assert set(lineage(out)) == {s.episode_id for s in signals}
    assert [x.evidence[0].episode_id for x in out] == [s.episode_id for s in signals]
    last = out[-1]
    assert (last.support_episodes, last.support_users) == (n, 40)
    newest = sorted(signals, key=lambda s: (s.occurred_at, s.episode_id))[-31:]
    assert [e.episode_id for e in last.evidence[1:]] == [s.episode_id for s in newest]
    assert last.occurred_at == max(s.occurred_at for s in signals)


def test_curation_state_stays_bounded_however_wide_the_support() -> None:
    """Issue 13: a lesson's state must not grow per supporting episode (exact sets are capped,
    then a sketch); its support is then an estimate within a few percent."""
    sizes = {}
    for n in (200, 2000):
        signals = [
            signal("recovery", f"ep{i}", T0 + i, patch=STRIP, user=f"u{i}") for i in range(n)
        ]
        states, out = run(signals)
        [state] = states.values()
        sizes[n] = len(json.dumps(state.to_dict()))
        [group] = state.groups.values()
        assert abs(group.episodes.count() - n) <= 0.15 * n
        assert abs(group.users.count() - n) <= 0.15 * n
        assert out[-1].support_episodes > EXACT_CAP
    assert sizes[2000] <= sizes[200] * 1.1


def test_a_pitfall_first_published_late_carries_all_its_unpublished_evidence() -> None:
    signals = [signal("failure", f"ep{i}", T0 + i) for i in range(40)]
    _, out = run(signals, min_support=40)
    [pitfall] = out
    assert pitfall.evidence[0].episode_id == "ep39"
    assert {e.episode_id for e in pitfall.evidence} == {s.episode_id for s in signals}


def test_only_a_recovery_becoming_proposed_touches_its_pitfalls() -> None:
    states, _ = run([signal("failure", "ep1", T0), signal("failure", "ep2", T0 + 1)])
    states, out = run([signal("recovery", "ep3", T0 + 2, patch=STRIP)], states)
    assert [(x.kind, x.status) for x in out] == [("recovery", "candidate")]  # support 1
    states, out = run([signal("recovery", "ep4", T0 + 3, patch=STRIP)], states)
    assert [(x.kind, x.status) for x in out] == [("recovery", "proposed"), ("pitfall", "candidate")]
    other_shape = replace_patch("x")
    _, out = run([signal("recovery", "ep5", T0 + 4, patch=other_shape)], states)
    assert [(x.kind, x.version) for x in out] == [("recovery", 1)]


def test_a_version_2_state_is_read_with_its_counts_derived() -> None:
    signals = [
        signal("recovery", f"ep{i}", T0 + 40 - i, patch=STRIP, user=f"u{i % 2}") for i in range(40)
    ]
    states, _ = run(signals)
    [(key, state)] = states.items()
    v3 = json.loads(json.dumps(state.to_dict()))
    rows = {s.episode_id: [s.user, s.source_partition, s.source_offset, s.occurred_at]
            for s in signals}
    v2_groups = {}
    for gid, g in v3["groups"].items():
        rest = {k: v for k, v in g.items()
                if k not in ("episodes", "tasks", "users", "successes", "rows", "status")}
        v2_groups[gid] = {**rest, "evidence": rows, "users": {"u0": 20, "u1": 20}}
    restored = CurationState.from_dict({"version": 2, "key": key, "groups": v2_groups})
    [group] = restored.groups.values()
    assert (group.episodes.count(), group.users.count(), group.tasks.count()) == (40, 2, 40)
    assert group.recent == state.groups[gid].recent
    with pytest.raises(ValueError, match="version"):
        CurationState.from_dict({**v3, "version": 9})


def test_the_same_lesson_learned_twice_has_the_same_id() -> None:
    _, first = run([signal("recovery", "ep1", T0, patch=STRIP)])
    _, again = run([signal("recovery", "ep9", T0 + 5000, patch=STRIP, user="u5")])
    assert first[0].experience_id == again[0].experience_id


def test_near_duplicates_merge_but_other_shapes_do_not() -> None:
    _, out = run(
        [
            signal("recovery", "ep1", T0 + 10, patch=replace_patch("Kafka on the Shore")),
            signal("recovery", "ep2", T0 + 20, patch=replace_patch("Norwegian Wood")),
            signal("recovery", "ep3", T0 + 30, patch=STRIP),
            signal(
                "recovery",
                "ep4",
                T0 + 40,
                patch=ToolCallPatch(
                    "Search", [ArgumentChange("reformat", "query", rule="lowercase")]
                ),
            ),
            signal(
                "recovery",
                "ep5",
                T0 + 50,
                patch=ToolCallPatch(
                    "Search", [ArgumentChange("reformat", "title", rule="strip_quotes")]
                ),
            ),
        ]
    )
    ids = [e.experience_id for e in out]
    assert ids[0] == ids[1]
    assert len(set(ids)) == 4
    merged = out[1]
    assert merged.support_episodes == 2
    assert merged.patch == replace_patch("Kafka on the Shore")  # from the earliest evidence


def test_tenants_never_share_a_lesson() -> None:
    _, out = run(
        [
            signal("recovery", "ep1", T0, patch=STRIP),
            signal("recovery", "ep2", T0, patch=STRIP, tenant="beta"),
        ]
    )
    assert out[0].experience_id != out[1].experience_id
    assert [e.tenant for e in out] == ["acme", "beta"]


def test_preference_is_scoped_to_its_user() -> None:
    _, out = run(
        [
            signal(
                "correction", "ep1", T0, user="u1", correction="Use the order id, not the email."
            ),
            signal(
                "correction", "ep2", T0 + 1, user="u2", correction="use the order id, not the email"
            ),
            signal(
                "correction",
                "ep3",
                T0 + 2,
                user="u1",
                correction="use the order id,  not the EMAIL",
            ),
        ]
    )
    assert [e.user for e in out] == ["u1", "u2", "u1"]
    assert out[0].experience_id == out[2].experience_id != out[1].experience_id
    assert (out[2].support_episodes, out[2].status) == (2, "proposed")
    assert out[1].status == "candidate"
    assert all(e.kind == "preference" and e.tool is None for e in out)
    assert '"Use the order id, not the email."' in out[2].guidance and "u1" in out[2].guidance


def test_min_support_is_respected() -> None:
    signals = [signal("recovery", f"ep{i}", T0 + i, patch=STRIP) for i in range(4)]
    _, out = run(signals, min_support=3)
    assert [e.status for e in out] == ["candidate", "candidate", "proposed", "proposed"]


def test_pitfall_needs_min_support_and_is_superseded_by_a_proposed_recovery() -> None:
    _, out = run([signal("failure", "ep1", T0)])
    assert out == []
    states, out = run([signal("failure", "ep1", T0), signal("failure", "ep2", T0 + 1)])
    [pitfall] = out
    assert (pitfall.kind, pitfall.status, pitfall.support_episodes) == ("pitfall", "proposed", 2)
    assert pitfall.patch is None and "Search fails with 'Could not find [<quoted>]'" in (
        pitfall.guidance
    )
    states, out = run([signal("recovery", "ep3", T0 + 2, patch=STRIP)], states)
    assert [(e.kind, e.status, e.version) for e in out] == [("recovery", "candidate", 1)]
    states, out = run([signal("recovery", "ep4", T0 + 3, patch=STRIP)], states)
    assert [(e.kind, e.status, e.version) for e in out] == [
        ("recovery", "proposed", 2),
        ("pitfall", "candidate", 2),
    ]
    states, out = run([signal("failure", "ep5", T0 + 4)], states)
    assert [(e.kind, e.status, e.support_episodes) for e in out] == [("pitfall", "candidate", 3)]
    _, out = run([signal("recovery", "ep6", T0 + 5, patch=STRIP)], states)
    assert [e.kind for e in out] == ["recovery"]  # the pitfall has nothing new to say


def test_pitfall_after_a_proposed_recovery_is_never_proposed() -> None:
    _, out = run(
        [signal("recovery", f"ep0{i}", T0 + i, patch=STRIP) for i in range(2)]
        + [signal("failure", f"ep{i}", T0 + i) for i in range(1, 4)]
    )
    pitfalls = [e for e in out if e.kind == "pitfall"]
    assert [e.support_episodes for e in pitfalls] == [2, 3]
    assert {e.status for e in pitfalls} == {"candidate"}


def test_duplicates_and_second_signals_of_an_episode_emit_nothing() -> None:
    first = signal("recovery", "ep1", T0, patch=STRIP)
    states, _ = run([first])
    before = snapshot(states)
    again = dataclasses.replace(first, event_id="ep1/other", occurred_at=T0 + 50)
    states, out = run([first, again], states)
    assert out == []
    assert snapshot(states) == before


def test_first_evidence_is_the_earliest_in_event_time_not_in_arrival() -> None:
    _, out = run(
        [
            signal("recovery", "ep2", T0 + 500, patch=STRIP),
            signal("recovery", "ep1", T0 + 100, patch=STRIP),
        ]
    )
    assert out[-1].trigger.example_task == "task of ep1"
    assert [e.episode_id for e in out[-1].evidence] == ["ep1", "ep2"]
    assert out[-1].occurred_at == T0 + 500


def test_retry_recovery_has_no_patch() -> None:
    _, out = run([signal("recovery", "ep1", T0, patch=ToolCallPatch("Search", []))])
    assert out[0].patch is None and "retry after a short back-off" in out[0].guidance


def test_signals_without_key_leave_the_state_alone() -> None:
    state, out = apply_signal(None, signal("rating", "ep1", T0, rating=1.0))
    assert out == [] and state.groups == {}
    assert curation_key(signal("correction", "ep1", T0, user=None, correction="x")) is None
    assert curation_key(signal("correction", "ep1", T0, correction="x")) == "acme/bot/user:u1"
    assert curation_key(signal("failure", "ep1", T0)) == f"acme/bot/{QUOTED}"


def test_a_signal_of_another_key_is_a_bug() -> None:
    states, _ = run([signal("failure", "ep1", T0)])
    [state] = states.values()
    with pytest.raises(ValueError, match="key"):
        apply_signal(state, signal("failure", "ep2", T0, signature="Search: HTTP 503"))


def test_an_extractor_that_changes_the_kind_is_a_bug() -> None:
    class Confused:
        name = "confused"

        def lesson(self, signals: Any) -> Lesson:
            return Lesson(kind="strategy", guidance="think harder")

    extractor: Extractor = Confused()
    with pytest.raises(ValueError, match="strategy"):
        run([signal("recovery", "ep1", T0, patch=STRIP)], extractor=extractor)


def test_state_round_trips_through_json() -> None:
    states, _ = run(
        [
            signal("recovery", "ep1", T0, patch=replace_patch("x")),
            signal("failure", "ep2", T0 + 1),
            signal("failure", "ep3", T0 + 2),
            signal("correction", "ep4", T0 + 3, correction="be brief"),
        ]
    )
    restored = restore(states)
    assert restored == states
    assert snapshot(restored) == snapshot(states)


def test_recorded_llm_extractor_words_the_experience_and_is_asked_only_on_new_samples() -> None:
    recording = json.loads(
        (Path(__file__).parent / "recorded" / "recovery_strip_quotes.json").read_text()
    )
    prompts: list[str] = []

    def recorded_transport(prompt: str) -> str:
        prompts.append(prompt)
        return json.dumps(recording["response"])

    extractor = RecordedLLMExtractor(recorded_transport, model="gpt-4o-mini")
    signals = [signal("recovery", f"ep{i}", T0 + i, patch=STRIP) for i in range(6)]
    _, out = run(signals, extractor=extractor)
    assert {e.extractor for e in out} == {"llm:gpt-4o-mini"}
    assert out[-1].guidance.startswith("Pass the Search `query` as plain text")
    assert len(prompts) == 3  # the three earliest signals are the samples; later ones add support
    _, deterministic = run(signals)
    assert out[-1].experience_id == deterministic[-1].experience_id  # wording never forks ids


# --- properties -------------------------------------------------------------------------------

PATCHES = [
    STRIP,
    replace_patch("a"),
    replace_patch("b"),
    None,
    ToolCallPatch("Search", [ArgumentChange("rename", "query", new_argument="q")]),
    ToolCallPatch("Search", [], use_tool="SearchV2"),
]
EVENTS = st.tuples(
    st.sampled_from(["recovery", "recovery", "failure", "failure", "correction", "rating"]),
    st.integers(0, 9),  # episode
    st.integers(0, 100_000),  # time
    st.sampled_from(PATCHES),
    st.sampled_from([QUOTED, "Search: HTTP 503"]),
    st.sampled_from(["use the order id", "Use the order  id.", "answer in French"]),
)


def build(steps: list[tuple[str, int, int, Any, str, str]], *, own_episodes: bool) -> list[Signal]:
    """Signals from drawn steps; an episode's user and tenant are fixed by its number."""
    out = []
    for i, (kind, ep, dt, patch, signature, correction) in enumerate(steps):
        ep = i if own_episodes else ep
        out.append(
            signal(
                kind,
                f"ep{ep}",
                T0 + dt,
                event_id=f"s{i}",
                user=f"u{ep % 3}",
                tenant="acme" if ep % 4 else "beta",
                patch=patch,
                signature=signature,
                correction=correction,
                source_offset=i,
                source_partition=ep % 2,
            )
        )
    return out


@settings(max_examples=150, deadline=None)  # a shared 2-core machine: no timing
@given(steps=st.lists(EVENTS, max_size=40), data=st.data())
def test_duplicates_change_nothing(steps: list, data: st.DataObject) -> None:
    signals = build(steps, own_episodes=False)
    copies: dict[int, list[Signal]] = {}
    if signals:
        for i in data.draw(st.lists(st.integers(0, len(signals) - 1), max_size=15)):
            copies.setdefault(data.draw(st.integers(i, len(signals) - 1)), []).append(signals[i])
    redelivered = [x for k, s in enumerate(signals) for x in [s, *copies.get(k, [])]]
    states, out = run(signals)
    states_dup, out_dup = run(redelivered)
    assert out_dup == out
    assert snapshot(states_dup) == snapshot(states)


@settings(max_examples=150, deadline=None)  # a shared 2-core machine: no timing
@given(steps=st.lists(EVENTS, min_size=1, max_size=40), data=st.data())
def test_restoring_mid_stream_gives_identical_outputs(steps: list, data: st.DataObject) -> None:
    signals = build(steps, own_episodes=False)
    cut = data.draw(st.integers(0, len(signals)))
    states, out = run(signals)
    head_states, head = run(signals[:cut])
    tail_states, tail = run(signals[cut:], restore(head_states))
    assert head + tail == out
    assert snapshot(tail_states) == snapshot(states)


def final(experiences: list[Experience]) -> dict[str, Experience]:
    """Last version of each experience, without what depends on emission order (its evidence
    starts with the entry whose signal came last)."""
    return {
        e.experience_id: dataclasses.replace(e, event_id="", version=0, evidence=[])
        for e in experiences
    }


def lineages(experiences: list[Experience]) -> dict[str, dict[str, Evidence]]:
    by_id: dict[str, list[Experience]] = defaultdict(list)
    for x in experiences:
        by_id[x.experience_id].append(x)
    return {k: lineage(v) for k, v in by_id.items()}


def interleave(signals: list[Signal], order: list[int]) -> list[Signal]:
    """Another arrival order across episodes; one episode's signals keep their order."""
    queues: dict[str, deque[Signal]] = defaultdict(deque)
    for s in signals:
        queues[s.episode_id].append(s)
    return [queues[signals[i].episode_id].popleft() for i in order]


@settings(max_examples=150, deadline=None)  # a shared 2-core machine: no timing
@given(steps=st.lists(EVENTS, min_size=1, max_size=30), own=st.booleans(), data=st.data())
def test_arrival_order_across_episodes_does_not_change_the_final_experiences(
    steps: list, own: bool, data: st.DataObject
) -> None:
    signals = build(steps, own_episodes=own)
    order = data.draw(st.permutations(range(len(signals))))
    _, out = run(signals)
    _, shuffled = run(interleave(signals, order))
    assert final(shuffled) == final(out)
    assert lineages(shuffled) == lineages(out)
    latest = {x.experience_id: x for x in out}
    assert {k: len(v) for k, v in lineages(out).items()} == {
        k: x.support_episodes for k, x in latest.items()
    }
    assert all(len(x.evidence) <= EVIDENCE_PER_VERSION for x in out)


def test_a_replacement_with_different_values_per_episode_is_not_proposed() -> None:
    from kaizen.schemas.model import ArgumentChange, ToolCallPatch

    def recovery(episode: str, value: str) -> Signal:
        patch = ToolCallPatch("Search", [ArgumentChange("replace", "query", value_json=value)])
        return Signal(f"id-{episode}", 1_000 + len(episode), "t", "a", episode, "recovery",
                      tool="Search", signature="Search: Could not find [<str>].", patch=patch)

    state, varying = None, []
    for episode, value in (("e1", '"Nick Park"'), ("e2", '"Alan Moore"'), ("e3", '"Dune"')):
        state, out = apply_signal(state, recovery(episode, value), min_support=2)
        varying += out
    assert varying and all(x.status == "candidate" for x in varying)

    state, constant = None, []
    for episode in ("e1", "e2", "e3"):
        state, out = apply_signal(state, recovery(episode, '"v2"'), min_support=2)
        constant += out
    assert constant[-1].status == "proposed"


_TEXT = st.text(max_size=8)
_CHANGES = st.lists(st.builds(ArgumentChange, _TEXT, _TEXT, st.none() | _TEXT, st.none() | _TEXT,
                              st.none() | _TEXT), max_size=3)


@settings(max_examples=60, deadline=None)
@given(patch=st.none() | st.builds(ToolCallPatch, _TEXT, _CHANGES, st.none() | _TEXT),
       signature=st.none() | _TEXT, guidance=_TEXT, support=st.integers(0, 500))
def test_a_versions_content_hash_is_the_one_stored_states_hold(
        patch: ToolCallPatch | None, signature: str | None, guidance: str, support: int) -> None:
    """`emitted_hash` in stored states was computed over `dataclasses.asdict` of the trigger
    and patch: the faster content dict hashes to exactly that, or every stored lesson would
    emit a spurious version after an upgrade."""
    draft = Experience("", 1, "t", "a", "x", 0, "recovery", Trigger(signature, "qa", "task"),
                       guidance, [], support, 1, tool="orders.get", patch=patch)
    content = {"kind": draft.kind, "status": draft.status, "guidance": draft.guidance,
               "trigger": dataclasses.asdict(draft.trigger),
               "patch": dataclasses.asdict(patch) if patch else None,
               "support": [draft.support_episodes, draft.support_users], "tool": draft.tool,
               "user": draft.user, "extractor": draft.extractor}
    assert content_digest(draft) == hashlib.sha256(canonical_json(content).encode()).hexdigest()
