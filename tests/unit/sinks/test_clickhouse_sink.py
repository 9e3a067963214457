"""ClickHouseSink on embedded chdb: events in -> rows out, idempotent on replay; Sink batching."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from kaizen.processors.learning.signatures import error_signature
from kaizen.schemas import model
from kaizen.sinks.base import Sink
from kaizen.sinks.clickhouse import NO_ERROR_TEXT, ClickHouseSink

T0 = 1_700_000_000_000
MINUTE = 60_000
TENANTS = ("acme", "globex", "initech")
AGENTS = ("support-bot", "sales-bot")
USERS = ("u1", "u2", "u3", "u4", "u5", "u6")
TASKS = tuple(f"task {i}" for i in range(8))
ERRORS = {
    "search": ('Could not find ["{q}"].', "Could not find [{q}]."),
    "lookup": ("Order {n} not found", "HTTP 429 Too Many Requests"),
    "fetch": ("timeout after {n} ms", ""),
}
TOOLS = tuple(ERRORS)


def signature(tool: str, error: str | None) -> str:
    return error_signature(tool, error or NO_ERROR_TEXT)


def _episode(rng: random.Random, i: int) -> list[model.Event]:
    """One random episode: start, 1-4 tool calls (some fail, some lack a result), maybe an end."""
    tenant, agent = rng.choice(TENANTS), rng.choice(AGENTS)
    user, snapshot = rng.choice((*USERS, None)), rng.choice((None, "snap-a", "snap-b"))
    ep, start = f"ep-{i}", T0 + i * 30 * MINUTE + rng.randrange(MINUTE)
    events: list[model.Event] = []

    def add(payload: model.EpisodePayload) -> None:
        seq = len(events)
        events.append(model.EpisodeEvent(f"{ep}/{seq}", start + seq * 1000, tenant, agent, ep,
                                          seq, payload, user, snapshot))

    add(model.EpisodeStarted(rng.choice(TASKS), rng.choice(("qa", "orders")), "v1"))
    if rng.random() < 0.3:
        add(model.Recall([f"x{rng.randrange(5)}"], "q"))
    for c in range(rng.randint(1, 4)):
        tool, call_id = rng.choice(TOOLS), f"c{c}"
        if rng.random() > 0.05:
            add(model.ToolCall(call_id, tool, f'{{"q": "{rng.randrange(100)}"}}'))
        if rng.random() < 0.1:
            continue  # a call without a result
        ok = rng.random() < 0.55
        error = None if ok else rng.choice(ERRORS[tool]).format(q=rng.choice("XYZ"),
                                                               n=rng.randrange(10_000))
        add(model.ToolResult(call_id, tool, ok, error, None, float(rng.randrange(500))))
    if rng.random() < 0.3:
        add(model.LlmCall("gpt-x", 10, 5, 100.0))
        add(model.Feedback(rating=1.0))
    if rng.random() < 0.85:
        add(model.EpisodeEnded(rng.choice(("success", "success", "failure", "abandoned")), 1.0))
    return events


def _experiences(rng: random.Random) -> list[model.Event]:
    """Lessons for a few signatures, some fleet-wide ('*'), some in two versions."""
    out: list[model.Event] = []
    for k, (tool, template) in enumerate((("search", ERRORS["search"][0]),
                                          ("lookup", ERRORS["lookup"][0]),
                                          ("fetch", ERRORS["fetch"][1]),
                                          ("search", ERRORS["search"][1]))):
        sig = signature(tool, template.format(q="X", n=1))
        tenant = "*" if k % 2 else rng.choice(TENANTS)
        for version in (1, 2):
            at = T0 + rng.randrange(2, 20) * 60 * MINUTE + version * MINUTE
            out.append(model.Experience(
                f"xp-{k}-{version}", at, tenant, rng.choice(AGENTS), f"xid-{k}", version,
                "recovery", model.Trigger(sig, "qa", "t"), "do it differently",
                [model.Evidence("ep-1", 0, 7, "u1"), model.Evidence("ep-2", 1, 9, None)], 2, 1,
                tool=tool, status="active" if version == 2 else "candidate"))
    return out


def fleet_events(seed: int = 7, episodes: int = 80) -> list[model.Event]:
    """A seeded fleet: several tenants, agents, tools, users; failures, outcomes, lessons."""
    rng = random.Random(seed)
    events: list[model.Event] = []
    for i in range(episodes):
        events += _episode(rng, i)
    events += _experiences(rng)
    events += [
        model.Signal(f"sig-{i}", T0 + i, "acme", "support-bot", f"ep-{i}", "failure",
                     tool="search", signature="search: x", recalled_ids=["x1"])
        for i in range(5)
    ]
    events += [
        model.Pattern(f"pat-{i}", T0 + i, "*", "support-bot", "search", "search: x", T0, 60,
                      i, 1, 1, 1, 10, 0.1 * i, 0.0, T0, T0 + i, "new")
        for i in range(3)
    ]
    events += [
        model.SnapshotEvent(f"snap-{i}", T0 + i, "acme", "support-bot", "snap-a", action,
                            members=[model.Member("xid-0", "h0")], scores={"coverage": 0.5})
        for i, action in enumerate(("proposed", "evaluated", "activated"))
    ]
    events.append(model.DeadLetter("dl-1", T0, "extractor", "kaizen.episodes", 0, 1, "bad", "E"))
    return events


def write_all(sink: ClickHouseSink, events: Sequence[model.Event], batch: int = 97) -> None:
    """Write through the public lifecycle, in batches that split call/result and start/end."""
    for offset, event in enumerate(events):
        sink.add(event, ("topic", offset % 3, offset))
        if sink.pending() >= batch:
            sink.flush()
    sink.flush()


def open_sink(path: Path) -> ClickHouseSink:
    sink = ClickHouseSink(f"chdb://{path}", signature_of=error_signature)
    sink.setup()
    return sink


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[ClickHouseSink]:
    s = open_sink(tmp_path)
    yield s
    s.close()


def counts(sink: ClickHouseSink) -> dict[str, int]:
    tables = ("episodes_v1", "steps_v1", "signals_v1", "patterns_v1", "experiences_v1",
              "snapshot_events_v1", "recalls_v1")
    return {t: count(sink, f"{t} FINAL") for t in tables}


def count(sink: ClickHouseSink, source: str) -> int:
    return int(sink.client.query(f"SELECT count() FROM {source}").result_rows[0][0])


def expected_steps(events: Sequence[model.Event]) -> dict[tuple[str, ...], dict[str, Any]]:
    """Tool calls joined with results, computed in plain Python."""
    tasks = {(e.tenant, e.agent, e.episode_id): e.payload.task for e in episode_events(events)
             if isinstance(e.payload, model.EpisodeStarted)}
    steps: dict[tuple[str, ...], dict[str, Any]] = {}
    for e in episode_events(events):
        p, key = e.payload, (e.tenant, e.agent, e.episode_id)
        if not isinstance(p, model.ToolCall | model.ToolResult):
            continue
        row = steps.setdefault((*key, p.call_id), {
            "tool": p.tool_name, "arguments_json": None, "called_ms": None, "result_ms": None,
            "ok": None, "error": None, "signature": None, "latency_ms": None, "user": e.user,
            "task": tasks.get(key)})
        if isinstance(p, model.ToolCall):
            row.update(arguments_json=p.arguments_json, called_ms=e.occurred_at)
        else:
            row.update(result_ms=e.occurred_at, ok=p.ok, error=p.error, latency_ms=p.latency_ms,
                       signature=None if p.ok else signature(p.tool_name, p.error))
    return steps


def episode_events(events: Sequence[model.Event]) -> list[model.EpisodeEvent]:
    return [e for e in events if isinstance(e, model.EpisodeEvent)]


def test_rows_match_the_events(sink: ClickHouseSink) -> None:
    events = fleet_events()
    write_all(sink, events)
    eps = episode_events(events)
    assert counts(sink) == {
        "episodes_v1": len({(e.tenant, e.agent, e.episode_id) for e in eps
                            if isinstance(e.payload, model.EpisodeStarted | model.EpisodeEnded)}),
        "steps_v1": len(expected_steps(events)),
        "signals_v1": 5, "patterns_v1": 3, "experiences_v1": 8, "snapshot_events_v1": 3,
        "recalls_v1": sum(isinstance(e.payload, model.Recall) for e in eps),
    }
    cols = "tenant, agent, episode_id, call_id, " + ", ".join(
        next(iter(expected_steps(events).values())))
    got = {tuple(r[k] for k in ("tenant", "agent", "episode_id", "call_id")): r
           for r in sink.client.query(f"SELECT {cols} FROM steps_final_v1").named_results()}
    want = expected_steps(events)
    assert got.keys() == want.keys()
    for key, row in want.items():
        assert {k: got[key][k] for k in row} == row, key


def test_episode_rows_join_start_and_end_across_batches(sink: ClickHouseSink) -> None:
    events = fleet_events(seed=3, episodes=20)
    write_all(sink, events, batch=1)  # every event in its own insert
    ends = {e.episode_id: e for e in episode_events(events)
            if isinstance(e.payload, model.EpisodeEnded)}
    rows = sink.client.query("SELECT * FROM episodes_final_v1").named_results()
    for row in rows:
        end = ends.get(row["episode_id"])
        assert row["task"] in TASKS
        assert row["outcome"] == (end.payload.outcome if end else None)  # type: ignore[union-attr]
        assert row["ended_ms"] == (end.occurred_at if end else None)


def test_writing_everything_twice_changes_no_count(sink: ClickHouseSink) -> None:
    sink.client.command("SYSTEM STOP MERGES")  # so the duplicates really sit in the parts
    events = fleet_events()
    write_all(sink, events)
    before = counts(sink)
    write_all(sink, list(reversed(events)), batch=41)
    assert counts(sink) == before
    assert count(sink, "steps_v1") > before["steps_v1"]  # duplicates stored, FINAL hides them


def test_setup_is_idempotent_and_unknown_types_fail_loudly(sink: ClickHouseSink) -> None:
    sink.setup()
    sink.add("not an event", ("t", 0, 0))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sink.flush()
    assert sink.pending() == 1  # kept: the caller must not commit


def test_a_second_store_path_works_after_the_first_is_closed(tmp_path: Path) -> None:
    first = open_sink(tmp_path / "a")
    write_all(first, fleet_events(episodes=3))
    first.close()
    second = open_sink(tmp_path / "b")
    try:
        assert counts(second)["steps_v1"] == 0
    finally:
        second.close()


class ListSink(Sink[str]):
    """A minimal subclass to test the base-class batching; `fail` makes the next write raise."""

    def __init__(self, clock: list[float], **kwargs: Any) -> None:
        super().__init__(clock=lambda: clock[0], **kwargs)
        self.written: list[list[str]] = []
        self.fail = False

    def setup(self) -> None:
        pass

    def write(self, batch: Sequence[str]) -> None:
        if self.fail:
            raise RuntimeError("store down")
        self.written.append(list(batch))


def test_base_sink_batches_by_size_and_age() -> None:
    now = [0.0]
    s = ListSink(now, max_batch=3, max_age_s=2.0)
    assert not s.due() and s.flush() == {}
    s.add("a", ("t", 0, 10))
    s.add("b", ("t", 1, 4))
    assert not s.due()
    now[0] = 2.0
    assert s.due()
    now[0] = 0.0
    s.add("c", ("t", 0, 11))
    assert s.due()
    assert s.flush() == {("t", 0): 12, ("t", 1): 5}
    assert s.written == [["a", "b", "c"]] and s.pending() == 0


def test_failed_flush_keeps_batch_and_offsets() -> None:
    s = ListSink([0.0], max_batch=10)
    s.add("a", ("t", 0, 7))
    s.fail = True
    with pytest.raises(RuntimeError):
        s.flush()
    assert s.pending() == 1 and s.written == []
    s.fail = False
    assert s.flush() == {("t", 0): 8}
    assert s.written == [["a"]]


def test_invalid_batching_settings_are_rejected() -> None:
    with pytest.raises(ValueError):
        ListSink([0.0], max_batch=0)
