"""The OpenAI chat-trajectory parser, on small realistic fixtures written here."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaizen.importers.model import ImportedEpisode, Skipped
from kaizen.importers.openai_chat import NO_RESULT, NO_TRAJECTORIES, parse_openai_chat, tool_error


def call(call_id: str, name: str, arguments: dict[str, Any] | str) -> dict[str, Any]:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}


def assistant(*calls: dict[str, Any], content: str | None = None) -> dict[str, Any]:
    return {"role": "assistant", "content": content, "tool_calls": list(calls)}


def tool(call_id: str, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


SYSTEM = {"role": "system", "content": "You are a support agent for an online shop."}

ORDER_STATUS = {
    "id": "conv-17",
    "user": "u-42",
    "task_type": "orders",
    "reward": 1.0,
    "messages": [
        SYSTEM,
        {"role": "user", "content": "Where is my order 1187?"},
        assistant(
            call("call_a", "get_order", {"order_id": 1187}),
            content="I will look the order up.",
        ),
        tool("call_a", json.dumps({"error": "order_id must be a string like 'A-1187'"})),
        assistant(call("call_b", "get_order", {"order_id": "A-1187"})),
        tool("call_b", json.dumps({"status": "shipped", "carrier": "DHL"})),
        {"role": "assistant", "content": "Your order A-1187 has shipped with DHL."},
    ],
}

REFUND_FAILED = {
    "outcome": "failure",
    "reward": 0.0,
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Refund order A-9"}]},
        assistant(
            call("c1", "refund", {"order": "A-9"}),
            call("c2", "notify", "{not json"),
        ),
        tool("c2", "ok"),
        tool("c1", "Error: refunds over 30 days need approval"),
    ],
}

UNFINISHED = [  # a bare message list: no reward, no outcome, the last call never answered
    {"role": "user", "content": "Cancel my subscription"},
    assistant(call("x1", "find_subscription", {"email": "a@b.c"})),
]


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def parse(path: Path) -> list[ImportedEpisode | Skipped]:
    return list(parse_openai_chat(path))


def test_tool_calls_are_paired_with_their_results_by_id(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "support.jsonl", [json.dumps(ORDER_STATUS)])
    (episode,) = parse(path)
    assert isinstance(episode, ImportedEpisode)
    assert (episode.task, episode.user, episode.task_type) == (
        "Where is my order 1187?", "u-42", "orders"
    )
    assert (episode.outcome, episode.reward, episode.source) == ("success", 1.0, "support.jsonl:1")
    first, second = episode.steps
    assert (first.tool, first.arguments, first.ok) == ("get_order", {"order_id": 1187}, False)
    assert first.error == "order_id must be a string like 'A-1187'"
    assert first.thought == "I will look the order up."
    assert (second.ok, second.error, second.thought) == (True, None, None)
    assert json.loads(second.output or "") == {"status": "shipped", "carrier": "DHL"}


def test_results_out_of_order_text_errors_and_bad_arguments(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "refunds.jsonl", [json.dumps(REFUND_FAILED)])
    (episode,) = parse(path)
    assert isinstance(episode, ImportedEpisode)
    assert episode.task == "Refund order A-9"
    refund, notify = episode.steps
    assert (refund.ok, refund.error) == (False, "Error: refunds over 30 days need approval")
    assert (notify.arguments, notify.ok, notify.output) == ({"_raw": "{not json"}, True, "ok")
    assert (episode.outcome, episode.reward) == ("failure", 0.0)


def test_a_call_without_a_result_and_no_reward(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "x.jsonl", [json.dumps(UNFINISHED)])
    (episode,) = parse(path)
    assert isinstance(episode, ImportedEpisode)
    assert [(s.ok, s.error) for s in episode.steps] == [(False, NO_RESULT)]
    assert (episode.outcome, episode.reward) == ("abandoned", None)


@pytest.mark.parametrize(("reward", "outcome"), [(0.5, "success"), (0, "failure"), (-1, "failure")])
def test_outcome_follows_the_reward_when_not_given(
    tmp_path: Path, reward: float, outcome: str
) -> None:
    item = {"messages": UNFINISHED, "reward": reward}
    (episode,) = parse(write_jsonl(tmp_path / "r.jsonl", [json.dumps(item)]))
    assert isinstance(episode, ImportedEpisode)
    assert (episode.outcome, episode.reward) == (outcome, float(reward))


def test_reused_call_ids_pair_each_result_with_the_call_before_it(tmp_path: Path) -> None:
    item = [
        {"role": "user", "content": "Weather in Oslo, then Bergen"},
        assistant(call("call_0", "weather", {"city": "Oslo"})),
        tool("call_0", "Error: rate limited"),
        assistant(call("call_0", "weather", {"city": "Bergen"})),
        tool("call_0", "rain"),
    ]
    (episode,) = parse(write_jsonl(tmp_path / "w.jsonl", [json.dumps(item)]))
    assert isinstance(episode, ImportedEpisode)
    pairs = [(s.arguments["city"], s.ok) for s in episode.steps]
    assert pairs == [("Oslo", False), ("Bergen", True)]


def test_legacy_function_call_messages_are_read(tmp_path: Path) -> None:
    item = [
        {"role": "user", "content": "Convert 10 USD to EUR"},
        {"role": "assistant", "content": None,
         "function_call": {"name": "convert", "arguments": '{"amount": 10}'}},
        {"role": "function", "name": "convert", "content": "9.2 EUR"},
    ]
    (episode,) = parse(write_jsonl(tmp_path / "f.jsonl", [json.dumps(item)]))
    assert isinstance(episode, ImportedEpisode)
    assert [(s.tool, s.arguments, s.output) for s in episode.steps] == [
        ("convert", {"amount": 10}, "9.2 EUR")
    ]


def test_malformed_entries_are_skipped_with_a_reason(tmp_path: Path) -> None:
    lines = [
        json.dumps(ORDER_STATUS),
        "{not json",
        json.dumps({"reward": 1}),
        json.dumps([{"role": "system", "content": "hi"}]),
        json.dumps({**ORDER_STATUS, "outcome": "maybe"}),
        json.dumps({**ORDER_STATUS, "reward": "high"}),
        json.dumps([{"content": "no role"}]),
        json.dumps([{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [{}]}]),
        "",
        json.dumps(42),
    ]
    items = parse(write_jsonl(tmp_path / "mixed.jsonl", lines))
    assert isinstance(items[0], ImportedEpisode)
    skipped = [(item.source, item.reason) for item in items if isinstance(item, Skipped)]
    lines_skipped = (2, 3, 4, 5, 6, 7, 8, 10)  # line 9 is blank
    assert [source for source, _ in skipped] == [f"mixed.jsonl:{n}" for n in lines_skipped]
    reasons = [reason for _, reason in skipped]
    assert reasons[0].startswith("invalid JSON")
    assert reasons[1:] == [
        "no messages list",
        "no user message",
        "unknown outcome 'maybe'",
        "reward is not a number",
        "message 0 has no role",
        "tool call without a function name",
        "no messages list",
    ]


def test_a_json_file_holds_a_list_or_a_single_trajectory(tmp_path: Path) -> None:
    many = tmp_path / "many.json"
    many.write_text(json.dumps([ORDER_STATUS, REFUND_FAILED, UNFINISHED]), encoding="utf-8")
    items = parse(many)
    assert [i.source for i in items] == ["many.json[0]", "many.json[1]", "many.json[2]"]
    assert all(isinstance(i, ImportedEpisode) for i in items)
    single = tmp_path / "one.json"
    single.write_text(json.dumps(UNFINISHED), encoding="utf-8")
    (one,) = parse(single)
    assert isinstance(one, ImportedEpisode) and one.task == "Cancel my subscription"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    assert parse(empty) == [Skipped("empty.jsonl", NO_TRAJECTORIES)]
    broken = tmp_path / "broken.json"
    broken.write_text("[{", encoding="utf-8")
    (skip,) = parse(broken)
    assert isinstance(skip, Skipped) and skip.reason.startswith("invalid JSON")


def test_episode_ids_are_deterministic_and_distinct(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "ids.jsonl", [json.dumps(ORDER_STATUS), json.dumps(REFUND_FAILED)] * 2
    )
    first, second = parse(path), parse(path)
    ids = [e.episode_id for e in first if isinstance(e, ImportedEpisode)]
    assert ids == [e.episode_id for e in second if isinstance(e, ImportedEpisode)]
    # same explicit id -> same episode; no id -> the position in the file tells them apart
    assert ids[0] == ids[2] and len({ids[0], ids[1], ids[3]}) == 3


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ('{"error": "not found"}', "not found"),
        ('{"error": {"code": 404}}', '{"code": 404}'),
        ('{"error": null, "result": 3}', None),
        ("Error: timeout after 30s", "Error: timeout after 30s"),
        ("Error 502 from upstream", "Error 502 from upstream"),
        ("error: bad input", "error: bad input"),
        ("Errors: none found", None),
        ("error rate is 2%", None),
        ("The error was fixed", None),
        ('["error"]', None),
    ],
)
def test_the_tool_error_rule(content: str, error: str | None) -> None:
    assert tool_error(content) == error


JSON = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["role", "content", "messages", "tool_calls", "id", "function", "name",
                         "arguments", "tool_call_id", "reward", "outcome", "user", "error"]),
        inner, max_size=5,
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(JSON, min_size=1, max_size=5))
def test_any_json_line_gives_exactly_one_episode_or_skip(values: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = write_jsonl(Path(folder) / "any.jsonl", [json.dumps(v) for v in values])
        items = parse(path)
    assert [i.source for i in items] == [f"any.jsonl:{n}" for n in range(1, len(values) + 1)]
