"""`kaizen backtest` through the real pipeline on a constructed log whose answer is known.

Eight customers in turn hit the same failure (a renamed argument) and recover with the renamed
call. With min support 2 and one episode per window, episodes 2..7 recall after two earlier
episodes went through the pipeline: each of their repeats must get the lesson beforehand, and
no episode may get a lesson about a tool it does not call. With the defaults (tool-less lessons
at the start, `recall_for_call` before each call) the lesson must arrive right before the
failing `charge` call, and never before `lookup_order`.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from kaizen.backtest.html import write_backtest_page
from kaizen.backtest.run import BacktestConfig, run_backtest
from kaizen.settings import load_settings
from tests.integration.conftest import KafkaBroker

pytestmark = pytest.mark.integration
EPISODES = 8
ERROR = "Error: unknown argument 'amount_cents'; expected 'amount'"


def _simulation(i: int) -> dict[str, object]:
    start = f"2025-03-01T10:{i:02}:00"
    at = f"2025-03-01T10:{i:02}:10"
    return {
        "id": f"sim-{i}", "task_id": str(i), "trial": 0, "start_time": start,
        "end_time": f"2025-03-01T10:{i:02}:50", "reward_info": {"reward": 1.0},
        "messages": [
            {"role": "user", "content": f"Please charge order {i} for the new headphones"},
            {"role": "assistant", "timestamp": at, "tool_calls": [
                {"id": f"a{i}", "name": "lookup_order", "arguments": {"order": i}}]},
            {"role": "tool", "id": f"a{i}", "content": "{\"total\": 5}", "error": False,
             "timestamp": at},
            {"role": "assistant", "timestamp": at, "tool_calls": [
                {"id": f"b{i}", "name": "charge", "arguments": {"amount_cents": 500}}]},
            {"role": "tool", "id": f"b{i}", "content": ERROR, "error": True, "timestamp": at},
            {"role": "assistant", "timestamp": at, "tool_calls": [
                {"id": f"c{i}", "name": "charge", "arguments": {"amount": 500}}]},
            {"role": "tool", "id": f"c{i}", "content": "charged", "error": False,
             "timestamp": at},
        ],
    }


def _log(path: Path) -> Path:
    tasks = [{"id": str(i), "evaluation_criteria": {"actions": [
        {"name": "charge", "arguments": {"user_id": f"customer_{i}"}}]}} for i in range(EPISODES)]
    doc = {"timestamp": "2025-03-01T10:00:00", "tasks": tasks,
           "info": {"agent_info": {"llm": "gpt-test"},
                    "environment_info": {"domain_name": "shop"}},
           "simulations": [_simulation(i) for i in range(EPISODES)]}
    path.write_bytes(gzip.compress(json.dumps(doc).encode()))
    return path


def test_later_repeats_of_a_recovered_failure_get_the_lesson(
        kafka_broker: KafkaBroker, unique_topic_prefix: str, tmp_path: Path) -> None:
    settings = load_settings(kafka_bootstrap=kafka_broker.bootstrap, home=tmp_path / "home",
                             topic_prefix=unique_topic_prefix, min_support=2)
    log = _log(tmp_path / "shop.json.gz")
    report = run_backtest([str(log)], settings,
                          BacktestConfig(window=1, progress=False, tools="available"))
    figures = report.figures()
    assert figures["episodes"] == EPISODES
    assert (figures["failures"], figures["novel_failures"]) == (EPISODES, 1)
    assert figures["recurring_failures"] == EPISODES - 1
    assert figures["recurring_after_support"] == EPISODES - 2
    assert figures["recurring_with_relevant_lesson"] == EPISODES - 2
    assert figures["recurring_with_relevant_lesson_at_start"] == EPISODES - 2
    assert figures["episodes_with_off_target_lesson"] == 0
    assert figures["dead_letters"] == 0
    charge = [x for x in report.lessons if x.tool == "charge"]
    assert charge and any(x.status in ("active", "proposed") for x in charge)
    assert sum(x.relevant for x in charge) >= EPISODES - 2
    assert report.to_json()["recurring_with_relevant_lesson"] == EPISODES - 2
    page = write_backtest_page(tmp_path / "bt.html", report).read_text()
    assert (f'data-figure="recurring_with_relevant_lesson" data-count="{EPISODES - 2}" '
            f'data-total="{EPISODES - 2}"') in page
    assert not (tmp_path / "home" / "backtest").exists() or not any(
        (tmp_path / "home" / "backtest").iterdir())  # the fresh data dir is removed


def test_the_point_of_use_recall_brings_the_lesson_right_before_the_failing_call(
        kafka_broker: KafkaBroker, unique_topic_prefix: str, tmp_path: Path) -> None:
    settings = load_settings(kafka_bootstrap=kafka_broker.bootstrap, home=tmp_path / "home",
                             topic_prefix=unique_topic_prefix, min_support=2)
    log = _log(tmp_path / "shop.json.gz")
    report = run_backtest([str(log)], settings, BacktestConfig(window=1, progress=False))
    figures = report.figures()
    assert (figures["episodes"], figures["recurring_after_support"]) == (EPISODES, EPISODES - 2)
    assert figures["recurring_with_relevant_lesson"] == EPISODES - 2
    assert figures["recurring_with_relevant_lesson_at_call"] == EPISODES - 2
    assert figures["recurring_with_relevant_lesson_at_start"] == 0  # the start has no tool lesson
    assert figures["episodes_with_lesson_at_start"] == 0
    assert figures["episodes_with_off_target_lesson"] == 0
    # 3 calls per episode; the lesson is recalled before both charge calls of episodes 2..7
    # (and never before lookup_order, which has no lesson): 2 calls each
    assert figures["calls"] == 3 * EPISODES
    assert figures["calls_with_lesson"] == 2 * (EPISODES - 2)
    page = write_backtest_page(tmp_path / "bt.html", report).read_text()
    assert (f'data-figure="recurring_with_relevant_lesson_at_call" data-count="{EPISODES - 2}" '
            f'data-total="{EPISODES - 2}"') in page
