"""`import_episodes` and `kaizen import`, without Kafka: a recording double stands at the
`recorder.episode(...)` seam (the real broker path is covered by integration tests)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaizen import cli
from kaizen.importers.formats import detect_format
from kaizen.importers.model import ImportedEpisode, ImportedStep, Skipped
from kaizen.importers.run import (
    EVENT_SPACING_MS,
    import_episodes,
    parse_base_time,
)
from kaizen.schemas import model
from kaizen.schemas.codec import Codec
from kaizen.streams.episode import Episode
from kaizen.streams.recorder import RecorderStats

BASE_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z


@dataclass
class Event:
    episode_id: str
    kind: str
    occurred_at: int | None
    fields: dict[str, Any]


@dataclass
class RecordingEpisode:
    """Implements the Episode calls an import makes, appending what it is told to `log`."""

    log: list[Event]
    episode_id: str
    started_at: int | None
    task: dict[str, Any]
    calls: int = 0

    def start(self) -> None:
        self.log.append(Event(self.episode_id, "started", self.started_at, self.task))

    def tool_call(
        self,
        tool_name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        call_id: str | None = None,
        occurred_at: int | None = None,
    ) -> str:
        call_id = call_id or f"{self.episode_id}/call-{self.calls}"
        self.calls += 1
        fields = {"tool": tool_name, "arguments": dict(arguments or {}), "call_id": call_id}
        self.log.append(Event(self.episode_id, "tool_call", occurred_at, fields))
        return call_id

    def tool_result(
        self,
        tool_name: str,
        *,
        ok: bool = True,
        error: str | None = None,
        output: str | None = None,
        latency_ms: float = 0.0,
        call_id: str | None = None,
        occurred_at: int | None = None,
    ) -> None:
        fields = {"tool": tool_name, "ok": ok, "error": error, "output": output,
                  "call_id": call_id}
        self.log.append(Event(self.episode_id, "tool_result", occurred_at, fields))

    def end(
        self,
        success: bool | None = None,
        *,
        outcome: str | None = None,
        reward: float | None = None,
        occurred_at: int | None = None,
    ) -> None:
        fields = {"outcome": outcome, "reward": reward}
        self.log.append(Event(self.episode_id, "ended", occurred_at, fields))


@dataclass
class RecordingRecorder:
    events: list[Event] = field(default_factory=list)

    def episode(
        self,
        task: str,
        *,
        user: str | None = None,
        task_type: str = "",
        episode_id: str | None = None,
        occurred_at: int | None = None,
        task_id: str = "",
        agent_version: str | None = None,
    ) -> RecordingEpisode:
        assert episode_id is not None, "imports must pass their deterministic episode id"
        fields = {"task": task, "user": user, "task_type": task_type}
        if task_id or agent_version:
            fields.update(task_id=task_id, agent_version=agent_version)
        return RecordingEpisode(self.events, episode_id, occurred_at, fields)


def step(tool: str, ok: bool = True, **arguments: object) -> ImportedStep:
    error, output = (None, f"{tool} result") if ok else (f"{tool} failed", None)
    return ImportedStep(tool, dict(arguments), ok, error, output, None)


def episode(name: str, steps: list[ImportedStep], outcome: str = "success") -> ImportedEpisode:
    reward = {"success": 1.0, "failure": 0.0}.get(outcome)
    return ImportedEpisode(name, f"task {name}", "qa", "u1", steps, outcome, reward, [], name)


ITEMS: list[ImportedEpisode | Skipped] = [
    episode("ep-1", [step("Search", False, query='"X"'), step("Search", query="X"),
                     step("Finish", answer="Y")]),
    Skipped("log.txt:9", "already solved"),
    episode("ep-2", [], "abandoned"),
    Skipped("log.txt:12", "already solved"),
    Skipped("log.txt:15", "listed twice"),
    episode("ep-3", [step("Lookup", False, query="born")], "failure"),
]


def test_each_episode_is_started_stepped_and_ended_in_order() -> None:
    recorder = RecordingRecorder()
    import_episodes(ITEMS, recorder, base_time_ms=BASE_MS, progress=False)
    kinds = [(e.episode_id, e.kind) for e in recorder.events]
    assert kinds == [
        ("ep-1", "started"),
        *[("ep-1", kind) for _ in range(3) for kind in ("tool_call", "tool_result")],
        ("ep-1", "ended"),
        ("ep-2", "started"), ("ep-2", "ended"),
        ("ep-3", "started"), ("ep-3", "tool_call"), ("ep-3", "tool_result"), ("ep-3", "ended"),
    ]
    calls = [e for e in recorder.events if e.kind == "tool_call"]
    results = [e for e in recorder.events if e.kind == "tool_result"]
    assert [c.fields["call_id"] for c in calls] == [r.fields["call_id"] for r in results]
    assert [c.fields["arguments"] for c in calls][:2] == [{"query": '"X"'}, {"query": "X"}]
    assert [(r.fields["ok"], r.fields["error"]) for r in results][:2] == [
        (False, "Search failed"), (True, None)
    ]
    ended = [e.fields for e in recorder.events if e.kind == "ended"]
    assert ended == [
        {"outcome": "success", "reward": 1.0},
        {"outcome": "abandoned", "reward": None},
        {"outcome": "failure", "reward": 0.0},
    ]


def test_event_times_are_synthetic_increasing_and_repeatable() -> None:
    first, second = RecordingRecorder(), RecordingRecorder()
    import_episodes(ITEMS, first, base_time_ms=BASE_MS, progress=False)
    import_episodes(ITEMS, second, base_time_ms=BASE_MS, progress=False)
    times = [e.occurred_at for e in first.events]
    assert times == [e.occurred_at for e in second.events]
    assert times == [BASE_MS + i * EVENT_SPACING_MS for i in range(len(times))]


def test_the_summary_counts_what_was_emitted_and_skipped() -> None:
    recorder = RecordingRecorder()
    summary = import_episodes(ITEMS, recorder, base_time_ms=BASE_MS, progress=False)
    assert (summary.episodes, summary.events) == (3, len(recorder.events))
    assert (summary.tool_calls, summary.tool_errors) == (4, 2)
    assert summary.outcomes == {"success": 1, "abandoned": 1, "failure": 1}
    assert summary.skipped == {"already solved": 2, "listed twice": 1}
    assert (summary.first_event_ms, summary.last_event_ms) == (
        recorder.events[0].occurred_at, recorder.events[-1].occurred_at
    )
    text = summary.render()
    assert "imported 3 episodes (1 abandoned, 1 failure, 1 success), 14 events" in text
    assert "tool calls: 4, errors: 2 (50.0%)" in text
    assert "event time: 2024-01-01T00:00:00Z .. 2024-01-01T00:00:13Z" in text
    assert text.endswith("skipped: 3\n       2  already solved\n       1  listed twice")


def test_summaries_of_several_files_merge() -> None:
    one = import_episodes(ITEMS[:2], RecordingRecorder(), base_time_ms=BASE_MS, progress=False)
    two = import_episodes(ITEMS[2:], RecordingRecorder(), base_time_ms=BASE_MS, progress=False)
    whole = import_episodes(ITEMS, RecordingRecorder(), base_time_ms=BASE_MS, progress=False)
    merged = one.merge(two)
    assert (merged.episodes, merged.events, merged.tool_calls, merged.tool_errors) == (
        whole.episodes, whole.events, whole.tool_calls, whole.tool_errors
    )
    assert (merged.outcomes, merged.skipped) == (whole.outcomes, whole.skipped)


def test_progress_goes_to_stderr_only(capsys: pytest.CaptureFixture[str]) -> None:
    import_episodes(ITEMS, RecordingRecorder(), base_time_ms=0, progress=True, label="run.txt")
    out, err = capsys.readouterr()
    assert out == ""
    assert "run.txt" in err and "6" in err


class EmitCollector:
    """Stands where the streams Recorder is, so the real `Episode` builds the real events."""

    agent, tenant, agent_version, snapshot_id = "react-hotpotqa", "default", "", None

    def __init__(self) -> None:
        self.events: list[model.EpisodeEvent] = []

    def episode(self, task: str, **kwargs: Any) -> Episode:
        return Episode(self, task, **kwargs)  # type: ignore[arg-type]

    def now_ms(self) -> int:
        raise AssertionError("an import must never fall back to the wall clock")

    def emit(self, event: model.EpisodeEvent) -> None:
        self.events.append(event)


def test_the_real_episode_builds_events_that_encode() -> None:
    collector = EmitCollector()
    import_episodes(ITEMS, collector, base_time_ms=BASE_MS, progress=False)
    codec = Codec()
    round_tripped = [codec.decode(codec.encode(event)) for event in collector.events]
    decoded = [e for e in round_tripped if isinstance(e, model.EpisodeEvent)]
    assert len(decoded) == len(round_tripped)
    assert [(e.episode_id, e.seq) for e in decoded] == [
        (e.episode_id, e.seq) for e in collector.events
    ]
    first = [e for e in decoded if e.episode_id == "ep-1"]
    assert [e.seq for e in first] == list(range(8))
    assert [type(e.payload).__name__ for e in first] == [
        "EpisodeStarted", *["ToolCall", "ToolResult"] * 3, "EpisodeEnded"
    ]
    call, result = first[1].payload, first[2].payload
    assert isinstance(call, model.ToolCall) and isinstance(result, model.ToolResult)
    assert (call.call_id, json.loads(call.arguments_json)) == (result.call_id, {"query": '"X"'})
    assert (result.ok, result.error) == (False, "Search failed")
    assert all(e.user == "u1" and e.tenant == "default" for e in first)


steps_strategy = st.lists(
    st.builds(step, st.sampled_from(["Search", "Lookup"]), st.booleans()), max_size=4
)
items_strategy = st.lists(
    st.one_of(
        st.builds(episode, st.uuids().map(str), steps_strategy,
                  st.sampled_from(["success", "failure", "abandoned"])),
        st.builds(Skipped, st.just("f:1"), st.sampled_from(["a", "b"])),
    ),
    max_size=8,
)


@given(items_strategy, st.integers(min_value=0, max_value=2**41))
def test_counts_and_times_for_any_input(
    items: list[ImportedEpisode | Skipped], base: int
) -> None:
    recorder = RecordingRecorder()
    summary = import_episodes(items, recorder, base_time_ms=base, progress=False)
    imported = [i for i in items if isinstance(i, ImportedEpisode)]
    assert summary.events == len(recorder.events) == sum(2 + 2 * len(i.steps) for i in imported)
    assert summary.tool_errors == sum(not s.ok for i in imported for s in i.steps)
    assert sum(summary.skipped.values()) == len(items) - len(imported)
    assert [e.occurred_at for e in recorder.events] == [
        base + n * EVENT_SPACING_MS for n in range(summary.events)
    ]


# --- the command --------------------------------------------------------------------------------


class FakeRecorder(RecordingRecorder):
    """`kaizen.Recorder` for the command test: records how it was built and closed."""

    built: list[tuple[str, str]] = []  # reset by the fixture
    undelivered = 0

    def __init__(self, agent: str, tenant: str, *, settings: object) -> None:
        super().__init__()
        self.built.append((agent, tenant))
        self.stats = RecorderStats()
        self.closed = False

    def flush(self, timeout: float = 10.0) -> int:
        return 0

    def close(self, timeout: float = 10.0) -> None:
        self.closed = True
        self.stats.emitted = len(self.events)
        self.stats.spooled = self.undelivered
        self.stats.delivered = len(self.events) - self.undelivered


@pytest.fixture
def fake_recorder(monkeypatch: pytest.MonkeyPatch) -> type[FakeRecorder]:
    monkeypatch.setattr("kaizen.client.recorder.Recorder", FakeRecorder)
    # structlog would keep pytest's captured stderr after it is closed, breaking later tests
    monkeypatch.setattr(cli, "configure_logging", lambda *args: None)
    monkeypatch.setattr(FakeRecorder, "built", [])
    return FakeRecorder


REACT_LOG = """\
BEGIN TRIAL 1
------------- BEGIN CORRECT AGENTS -------------
Question: Who wrote Dune?
Thought 1: Search it.
Action 1: Search[Dune (novel)]
Observation 1: Dune is a 1965 novel by Frank Herbert.
Action 2: Finish[Frank Herbert]
Observation 2: Answer is CORRECT
Correct answer: Frank Herbert
"""


def test_kaizen_import_emits_and_prints_the_summary(
    tmp_path: Path, fake_recorder: type[FakeRecorder], capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "run.txt"
    log.write_text(REACT_LOG, encoding="utf-8")
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps([{"role": "user", "content": "hi"}]) + "\n", encoding="utf-8")
    assert cli.main(["import", str(log), str(chat), "--tenant", "acme"]) == 0
    assert fake_recorder.built == [("react-hotpotqa", "acme"), ("imported", "acme")]
    out = capsys.readouterr().out
    assert "react-hotpotqa: delivered 6 of 6 events" in out
    assert "imported 2 episodes (1 abandoned, 1 success), 8 events" in out


def test_kaizen_import_agent_override_and_base_time(
    tmp_path: Path, fake_recorder: type[FakeRecorder], capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "run.txt"
    log.write_text(REACT_LOG, encoding="utf-8")
    args = ["import", str(log), "--agent", "qa-bot", "--base-time", "2025-03-01T12:00:00"]
    assert cli.main(args) == 0
    assert fake_recorder.built == [("qa-bot", "default")]
    assert "event time: 2025-03-01T12:00:00Z .. 2025-03-01T12:00:05Z" in capsys.readouterr().out


def test_kaizen_import_fails_when_events_stay_undelivered(
    tmp_path: Path, fake_recorder: type[FakeRecorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FakeRecorder, "undelivered", 2)
    log = tmp_path / "run.txt"
    log.write_text(REACT_LOG, encoding="utf-8")
    assert cli.main(["import", str(log)]) == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["import", "missing.txt"],
        ["import", "notes.log"],
        ["import", "x.txt", "--base-time", "soon"],
    ],
)
def test_kaizen_import_rejects_bad_arguments_before_connecting(
    argv: list[str], fake_recorder: type[FakeRecorder], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2
    assert fake_recorder.built == []
    assert "kaizen import:" in capsys.readouterr().err


def test_format_detection_and_base_time_parsing() -> None:
    assert [detect_format(Path(n), "auto") for n in ("a.txt", "b.JSON", "c.jsonl")] == [
        "react", "openai", "openai"
    ]
    assert detect_format(Path("a.log"), "react") == "react"
    with pytest.raises(ValueError, match="--format"):
        detect_format(Path("a.log"), "auto")
    assert parse_base_time("2024-01-01T00:00:00") == BASE_MS
    assert parse_base_time("2024-01-01T01:00:00+01:00") == BASE_MS


def test_kaizen_import_reads_tau2_results_with_their_times_and_task_ids(
    tmp_path: Path, fake_recorder: type[FakeRecorder], capsys: pytest.CaptureFixture[str]
) -> None:
    import gzip

    from tests.unit.kaizen.test_tau_importers import simulation, tau2_file

    path = tau2_file(tmp_path / "runs.json.gz", [simulation("7", "2025-02-01T10:00:00.000")])
    whole = tau2_file(tmp_path / "whole.json", [simulation("8", "2025-02-01T11:00:00.000"),
                                                 simulation("9", "2025-02-01T12:00:00.000")])
    cut = tmp_path / "cut.json"
    cut.write_bytes(gzip.decompress(whole.read_bytes())[:-40])
    assert cli.main(["import", str(path), str(cut)]) == 1  # the cut file is an error ...
    assert fake_recorder.built == [("tau2-retail", "default")]
    out, err = capsys.readouterr()
    assert "imported 2 episodes (2 failure)" in out  # ... after what it held is imported
    assert "event time: 2025-02-01T10:00:00Z .. 2025-02-01T11:00:30Z" in out
    assert "kaizen import: cut.json: " in err and "line 1 column" in err
