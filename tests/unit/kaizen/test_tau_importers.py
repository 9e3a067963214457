"""τ²-bench and τ-bench v1 importers, the JSON stream reader, format detection and the time line,
on small synthetic files written here, plus one real shared file."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from kaizen.importers.formats import detect_format
from kaizen.importers.jsonstream import JsonPositionError, JsonStream, read_text
from kaizen.importers.model import ImportedEpisode, ReadError, Skipped
from kaizen.importers.tau2 import parse_tau2
from kaizen.importers.tau_bench import agent_version_of, parse_arguments, parse_tau_bench
from kaizen.importers.timeline import ordered

ROOT = Path(__file__).resolve().parents[3]
SHARED = next((p for p in (ROOT.parent / "shared" / "data", ROOT.parents[1] / "shared" / "data",
                           Path("/work/shared/data")) if p.is_dir()), None)


def simulation(task_id: str, start: str, *, error: bool = True, trial: int = 0) -> dict:
    return {
        "id": f"sim-{task_id}-{trial}", "task_id": task_id, "trial": trial,
        "start_time": start, "end_time": start.replace(":00.", ":30."),
        "reward_info": {"reward": 0.0 if error else 1.0},
        "messages": [
            {"role": "assistant", "content": "Hi! How can I help you today?"},
            {"role": "user", "content": f"Please exchange my lamp ({task_id})"},
            {"role": "assistant", "content": None, "timestamp": start, "tool_calls": [
                {"id": "c1", "name": "exchange", "arguments": {"order_id": "#W1"},
                 "requestor": "assistant"},
                {"id": "c2", "name": "toggle_airplane_mode", "arguments": {},
                 "requestor": "user"}]},
            {"role": "tool", "id": "c1", "content": "Error: Non-delivered order cannot be "
             "exchanged" if error else "done", "error": error},
            {"role": "tool", "id": "c2", "content": "ok", "error": False},
        ],
    }


def tau2_file(path: Path, sims: list[dict], *, compress: bool = True) -> Path:
    doc = {"timestamp": "2025-01-01T00:00:00", "info": {
        "agent_info": {"llm": "gpt-4o"}, "environment_info": {"domain_name": "retail"}},
        "tasks": [{"id": "7", "evaluation_criteria": {"actions": [
            {"name": "find", "arguments": {"user_id": "mei_kovacs_8020"}}]}}],
        "simulations": sims}
    data = json.dumps(doc).encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def episodes(items: list[ImportedEpisode | Skipped]) -> list[ImportedEpisode]:
    return [i for i in items if isinstance(i, ImportedEpisode)]


def test_a_tau2_simulation_becomes_an_episode(tmp_path: Path) -> None:
    path = tau2_file(tmp_path / "run.json.gz", [simulation("7", "2025-02-01T10:00:00.000")])
    [episode] = episodes(list(parse_tau2(path)))
    assert episode.task == "Please exchange my lamp (7)"
    assert (episode.task_id, episode.agent_version, episode.agent) == ("7", "gpt-4o",
                                                                      "tau2-retail")
    assert episode.user == "mei_kovacs_8020" and episode.outcome == "failure"
    assert [(s.tool, s.ok, s.error) for s in episode.steps] == [
        ("exchange", False, "Error: Non-delivered order cannot be exchanged")]  # not the user's
    assert episode.started_ms == 1738404000000 and episode.ended_ms == 1738404030000


def test_a_truncated_tau2_file_keeps_what_was_read_and_names_the_position(
        tmp_path: Path) -> None:
    sims = [simulation(str(i), f"2025-02-01T10:{i:02}:00.000") for i in range(30)]
    full = tau2_file(tmp_path / "full.json.gz", sims)
    cut = tmp_path / "cut.json.gz"
    data = gzip.decompress(full.read_bytes())
    cut.write_bytes(gzip.compress(data)[: len(gzip.compress(data)) * 2 // 3])
    items = list(parse_tau2(cut))
    assert isinstance(items[-1], ReadError)
    assert items[-1].source == "cut.json.gz"
    assert "gzip data ends early" in items[-1].reason and "line 1 column" in items[-1].reason
    read = episodes(items)
    whole = episodes(list(parse_tau2(full)))
    assert 0 < len(read) < 30
    assert [(e.task_id, e.steps) for e in read] == [(e.task_id, e.steps) for e in whole][:len(read)]


def test_a_malformed_element_is_an_error_with_its_position(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    good = json.dumps(simulation("7", "2025-02-01T10:00:00.000"))
    path.write_text('{"info": {}, "simulations": [' + good + ',\n {"task_id": 1,, }]}')
    items = list(parse_tau2(path))
    assert len(episodes(items)) == 1
    assert isinstance(items[-1], ReadError) and "line 2 column" in items[-1].reason


def test_json_stream_reads_items_one_by_one() -> None:
    stream = JsonStream(' {"a": 1, "b": [1, {"c": 2}, 3], "d": null} ')
    seen = []
    for key in stream.object_keys():
        seen.append((key, list(stream.array_items()) if key == "b" else stream.value()))
    assert seen == [("a", 1), ("b", [1, {"c": 2}, 3]), ("d", None)]
    with pytest.raises(JsonPositionError, match="expected ',' or ']'"):
        list(JsonStream("[1, 2").array_items())


def test_read_text_reads_gzip_whatever_the_name(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_bytes(gzip.compress(b"[1]"))
    assert read_text(path) == ("[1]", None)


def v1_run(task_id: int, *, with_ids: bool) -> dict:
    call = {"type": "function", "function": {"name": "find_user_id_by_email",
                                             "arguments": "{'email': 'a@b.c'}"}}
    if with_ids:
        call["id"] = "call_1"
    tool = {"role": "tool", "content": "Error: user not found"}
    tool.update({"tool_call_id": "call_1", "name": "find_user_id_by_email"} if with_ids else {})
    return {"task_id": task_id, "trial": 0, "reward": 1.0,
            "info": {"task": {"user_id": "yusuf_rossi_9620"}},
            "traj": [{"role": "system", "content": "# Retail agent policy\n..."},
                     {"role": "user", "content": "I want to exchange an item."},
                     {"role": "assistant", "tool_calls": [call]}, tool,
                     {"role": "assistant", "tool_calls": [dict(call, id="call_2") if with_ids
                                                          else call]},
                     {"role": "tool", "tool_call_id": "call_2", "content": "# var_0 = "
                      '"Error: user not found"'}]}


def test_tau_bench_runs_pair_by_id_by_name_or_in_order(tmp_path: Path) -> None:
    path = tmp_path / "final_results__tool-calling-gpt-4o-0.1_range_0-100_user-x.json.gz"
    path.write_bytes(gzip.compress(json.dumps([v1_run(0, with_ids=True),
                                               v1_run(1, with_ids=False), 3]).encode()))
    items = list(parse_tau_bench(path))
    first, second = episodes(items)
    assert [i.reason for i in items if isinstance(i, Skipped)] == ["run is not an object"]
    for episode in (first, second):
        assert [(s.tool, s.ok, s.error) for s in episode.steps] == [
            ("find_user_id_by_email", False, "Error: user not found")] * 2
        assert episode.steps[0].arguments == {"email": "a@b.c"}
    assert (first.task_id, first.user, first.task_type) == ("0", "yusuf_rossi_9620", "retail")
    assert first.agent_version == "tool-calling-gpt-4o-0.1" and first.agent == "tau-bench"


def test_tau_bench_arguments_and_versions() -> None:
    assert parse_arguments('{"a": 1}') == {"a": 1} == parse_arguments("{'a': 1}")
    assert parse_arguments("not json") == {"_raw": "not json"}
    assert parse_arguments(None) == {}
    assert agent_version_of("tau_bench__tool-calling-grok-3-0.0_range_0--1_user-grok.json.gz"
                            ) == "tool-calling-grok-3-0.0"


def test_formats_are_detected_from_the_content(tmp_path: Path) -> None:
    tau2 = tau2_file(tmp_path / "a.json.gz", [])
    v1 = tmp_path / "b.json.gz"
    v1.write_bytes(gzip.compress(json.dumps([v1_run(0, with_ids=True)]).encode()))
    chat = tmp_path / "c.json"
    chat.write_text(json.dumps([{"role": "user", "content": "hi"}]))
    assert [detect_format(p) for p in (tau2, v1, chat)] == ["tau2", "tau-bench", "openai"]


def test_several_files_go_on_one_time_line(tmp_path: Path) -> None:
    late = tau2_file(tmp_path / "late.json.gz", [simulation("7", "2025-03-01T10:00:00.000")])
    early = tau2_file(tmp_path / "early.json.gz", [simulation("7", "2025-02-01T10:00:00.000")])
    untimed = tmp_path / "v1.json"
    untimed.write_text(json.dumps([v1_run(0, with_ids=True), v1_run(1, with_ids=True)]))
    placed, _ = ordered([parse_tau2(late), parse_tau2(early), parse_tau_bench(untimed)], 0)
    starts = [p.episode.started_ms or 0 for p in placed]
    assert [p.file_index for p in placed] == [1, 0, 2, 2]
    assert starts == sorted(starts) and len(set(starts)) == 4  # not one base time for all
    for p in placed:
        times = [p.episode.started_ms] + [t for s in p.episode.steps
                                          for t in (s.called_ms, s.answered_ms)]
        assert None not in times and p.episode.ended_ms is not None
        known = [t for t in times if t is not None]
        assert known == sorted(known) and p.episode.ended_ms >= known[-1]


@pytest.mark.skipif(SHARED is None, reason="shared data not found")
def test_a_real_tau2_file_reads_whole() -> None:
    assert SHARED is not None
    path = SHARED / "tau2-bench" / "retail" / (
        "evaluations__new_prompt__chloe__eval_chloe_gpt4o-refined_gpt-4o_test_1trial.json.gz")
    items = list(parse_tau2(path))
    read = episodes(items)
    assert len(read) == len(items) == 40  # nothing skipped
    assert {e.agent_version for e in read} == {"gpt-4o"} and len({e.task_id for e in read}) == 40
    assert sum(not s.ok for e in read for s in e.steps) == 19  # the file's error flags
    assert all(e.started_ms and e.ended_ms and e.started_ms <= e.ended_ms for e in read)
