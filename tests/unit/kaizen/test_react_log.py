"""The ReAct log parser, checked on the real Reflexion HotpotQA logs against counts taken from the
raw text in a different way (line scans and the logs' own `Trial summary` lines)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kaizen.importers.model import OUTPUT_LIMIT, ImportedEpisode, Skipped
from kaizen.importers.react_log import (
    ALREADY_SOLVED,
    LISTED_TWICE,
    NO_AGENTS,
    normalize_question,
    parse_react_log,
)

DATA = Path(__file__).resolve().parents[4] / "shared" / "data" / "reflexion" / "hotpotqa_react"
BASE = DATA / "base_100q_5trials.txt"
REFLEXION = DATA / "reflexion_100q_7trials.txt"
real_logs = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data not found at {DATA}")

_ACTION = re.compile(r"^Action \d+:")
_ERROR_OBSERVATION = re.compile(r"^Observation \d+: (Could not find|Invalid Action)")
_SUMMARY = re.compile(r"^Trial summary: Correct: (\d+), Incorrect: (\d+), Halted: (\d+)")


@dataclass
class RawAgent:
    """What a line scan sees of one printed agent: no pairing, no interpretation."""

    trial: int
    section: str
    question: str
    actions: int = 0
    errors: int = 0
    bullets: int = 0
    error_kinds: Counter[str] = field(default_factory=Counter)


def scan(path: Path) -> tuple[dict[int, RawAgent], list[tuple[int, int, int]]]:
    """Agents by the line number of their `Question:`, and each trial's (correct, incorrect,
    halted) from its summary line."""
    agents: dict[int, RawAgent] = {}
    summaries: list[tuple[int, int, int]] = []
    current: RawAgent | None = None
    trial, section = 0, ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("BEGIN TRIAL"):
            trial, current = trial + 1, None
        elif summary := _SUMMARY.match(line):
            c, i, h = (int(g) for g in summary.groups())
            summaries.append((c, i, h))
        elif match := re.search(r"BEGIN (\w+) AGENTS", line):
            section = match.group(1)
        elif line.startswith("Question:"):
            question = " ".join(line[9:].split("You have attempted")[0].split())
            current = agents[number] = RawAgent(trial, section, question)
        elif current is not None:
            current.actions += bool(_ACTION.match(line))
            current.bullets += line.startswith("- ")
            if _ERROR_OBSERVATION.match(line):
                current.errors += 1
                current.error_kinds[_error_kind(line)] += 1
    return agents, summaries


def _error_kind(line: str) -> str:
    text = line.split(": ", 1)[1]
    for kind in ("Could not find [", "Could not find that page", "Invalid Action"):
        if text.startswith(kind):
            return kind
    return text


@pytest.fixture(scope="module")
def parsed() -> dict[Path, list[ImportedEpisode | Skipped]]:
    return {path: list(parse_react_log(path)) for path in (BASE, REFLEXION)}


def line_of(item: ImportedEpisode | Skipped) -> int:
    return int(item.source.rsplit(":", 1)[1])


def episodes(items: list[ImportedEpisode | Skipped]) -> list[ImportedEpisode]:
    return [item for item in items if isinstance(item, ImportedEpisode)]


@real_logs
@pytest.mark.parametrize("path", [BASE, REFLEXION], ids=["base", "reflexion"])
def test_every_printed_agent_is_imported_or_skipped_once(
    path: Path, parsed: dict[Path, list[ImportedEpisode | Skipped]]
) -> None:
    agents, _ = scan(path)
    lines = [line_of(item) for item in parsed[path]]
    assert sorted(lines) == sorted(agents)
    assert all(item.source.startswith(path.name + ":") for item in parsed[path])


@real_logs
@pytest.mark.parametrize("path", [BASE, REFLEXION], ids=["base", "reflexion"])
def test_steps_errors_and_reflections_match_a_line_scan(
    path: Path, parsed: dict[Path, list[ImportedEpisode | Skipped]]
) -> None:
    agents, _ = scan(path)
    for episode in episodes(parsed[path]):
        raw = agents[line_of(episode)]
        assert len(episode.steps) == raw.actions, episode.source
        assert sum(not step.ok for step in episode.steps) == raw.errors, episode.source
        assert len(episode.reflections) == raw.bullets, episode.source


def listed(agents: dict[int, RawAgent], trial: int, section: str) -> set[str]:
    return {a.question for a in agents.values() if (a.trial, a.section) == (trial, section)}


# Base trial 3's summary says Halted: 9, but its HALTED section lists 10 distinct agents that are
# not also under INCORRECT (the summary adds up to 99 of 100 questions).
SUMMARY_MISCOUNTS = {(BASE.name, 3): 1}


@real_logs
@pytest.mark.parametrize("path", [BASE, REFLEXION], ids=["base", "reflexion"])
def test_outcomes_per_trial_match_the_sections_and_the_trial_summaries(
    path: Path, parsed: dict[Path, list[ImportedEpisode | Skipped]]
) -> None:
    agents, summaries = scan(path)
    solved: set[str] = set()
    for trial, (correct, incorrect, halted) in enumerate(summaries, start=1):
        in_trial = [e for e in episodes(parsed[path]) if agents[line_of(e)].trial == trial]
        outcomes = Counter(e.outcome for e in in_trial)
        failed = listed(agents, trial, "INCORRECT")
        halted_only = listed(agents, trial, "HALTED") - failed
        newly_solved = listed(agents, trial, "CORRECT") - solved
        solved |= newly_solved
        assert outcomes == Counter(
            success=len(newly_solved), failure=len(failed), abandoned=len(halted_only)
        ), f"trial {trial}"
        assert (len(solved), len(failed)) == (correct, incorrect), f"trial {trial}"
        assert len(halted_only) == halted + SUMMARY_MISCOUNTS.get((path.name, trial), 0)


@real_logs
def test_solved_counts_match_the_data_readme(
    parsed: dict[Path, list[ImportedEpisode | Skipped]],
) -> None:
    """README: with reflections 32 -> 53 solved; without, 34 stays 34."""
    for path, first, last in [(BASE, 34, 34), (REFLEXION, 32, 53)]:
        agents, _ = scan(path)
        solved = [e for e in episodes(parsed[path]) if e.outcome == "success"]
        assert sum(agents[line_of(e)].trial == 1 for e in solved) == first
        assert len(solved) == last
        assert len({e.task for e in solved}) == last


@real_logs
def test_totals_match_the_data_readme(parsed: dict[Path, list[ImportedEpisode | Skipped]]) -> None:
    """README: about 3,100 tool calls, about 970 of them errors of 3 kinds."""
    steps = [s for items in parsed.values() for e in episodes(items) for s in e.steps]
    errors = [s for s in steps if not s.ok]
    assert 3000 <= len(steps) <= 3200
    assert 920 <= len(errors) <= 1020
    kinds: Counter[str] = Counter()
    for path, items in parsed.items():
        agents, _ = scan(path)
        for episode in episodes(items):
            kinds += agents[line_of(episode)].error_kinds
    assert set(kinds) == {"Could not find [", "Could not find that page", "Invalid Action"}
    assert sum(kinds.values()) == len(errors)
    assert all(s.error and s.output is None for s in errors)
    assert all(s.output is not None and s.error is None for s in steps if s.ok)


@real_logs
@pytest.mark.parametrize("path", [BASE, REFLEXION], ids=["base", "reflexion"])
def test_reprints_are_skipped_with_a_reason(
    path: Path, parsed: dict[Path, list[ImportedEpisode | Skipped]]
) -> None:
    agents, summaries = scan(path)
    skipped = Counter(item.reason for item in parsed[path] if isinstance(item, Skipped))
    trials = range(1, len(summaries) + 1)
    listed_twice = [listed(agents, t, "INCORRECT") & listed(agents, t, "HALTED") for t in trials]
    assert skipped[LISTED_TWICE] == sum(len(questions) for questions in listed_twice)
    # already solved: every trial after the first reprints the questions solved before it
    assert skipped[ALREADY_SOLVED] == sum(s[0] for s in summaries[:-1])
    assert set(skipped) <= {LISTED_TWICE, ALREADY_SOLVED}


@real_logs
@pytest.mark.parametrize("path", [BASE, REFLEXION], ids=["base", "reflexion"])
def test_no_question_is_imported_after_it_was_solved(
    path: Path, parsed: dict[Path, list[ImportedEpisode | Skipped]]
) -> None:
    solved: set[str] = set()
    ids: set[str] = set()
    for episode in episodes(parsed[path]):
        assert episode.task not in solved
        assert episode.episode_id not in ids
        ids.add(episode.episode_id)
        if episode.outcome == "success":
            solved.add(episode.task)
        assert episode.task_type == "hotpotqa" and episode.user is None
        assert "You have attempted" not in episode.task


@real_logs
def test_reflections_are_carried_only_into_later_reflexion_trials(
    parsed: dict[Path, list[ImportedEpisode | Skipped]],
) -> None:
    agents, _ = scan(REFLEXION)
    with_lessons = [e for e in episodes(parsed[REFLEXION]) if e.reflections]
    assert with_lessons
    assert all(agents[line_of(e)].trial > 1 for e in with_lessons)
    assert all(r and not r.startswith("- ") for e in with_lessons for r in e.reflections)
    assert not any(e.reflections for e in episodes(parsed[BASE]))


def quoted_failures(episode: ImportedEpisode) -> list[tuple[int, str]]:
    """(step index, unquoted title) of each `Search["X"]` that failed."""
    found = []
    for i, step in enumerate(episode.steps):
        query = str(step.arguments.get("query", ""))
        if step.tool == "Search" and not step.ok and re.fullmatch(r'"[^"]+"', query):
            assert step.error is not None and step.error.startswith(f"Could not find [{query}]")
            found.append((i, query.strip('"')))
    return found


@real_logs
def test_a_quoted_search_failure_is_followed_by_an_unquoted_search_that_works(
    parsed: dict[Path, list[ImportedEpisode | Skipped]],
) -> None:
    """In one episode: `Search["X"]` -> `Could not find ["X"]. Similar: ['X', ...]` -> a later
    unquoted Search that works. (Retrying exactly `Search[X]` in the same episode never happens in
    these logs; the agents pick another title instead -- see the cross-trial test below.)"""
    recoveries = []
    for episode in episodes(parsed[BASE]) + episodes(parsed[REFLEXION]):
        for i, title in quoted_failures(episode):
            similar = episode.steps[i].error or ""
            later = [s for s in episode.steps[i + 1:] if s.tool == "Search"]
            if f"'{title}'" in similar and later and later[0].ok and '"' not in str(
                later[0].arguments["query"]
            ):
                recoveries.append((episode.source, title, later[0].arguments["query"]))
    assert ("base_100q_5trials.txt:20", "Wallace and Gromit", "Nick Park") in recoveries
    assert len(recoveries) >= 10


@real_logs
def test_the_same_title_unquoted_works_in_a_later_trial(
    parsed: dict[Path, list[ImportedEpisode | Skipped]],
) -> None:
    """Reflexion: trial 1 `Search["Wallace and Gromit"]` fails, trial 2 `Search[Wallace and
    Gromit]` works, for the same question: the recovery a learning system should pick up."""
    failed: dict[str, set[str]] = {}
    recovered = set()
    for episode in episodes(parsed[REFLEXION]):
        titles = failed.setdefault(episode.task, set())
        for step in episode.steps:
            query = str(step.arguments.get("query", ""))
            if step.tool == "Search" and step.ok and query in titles:
                recovered.add(query)
        titles.update(title for _, title in quoted_failures(episode))
    assert {"Wallace and Gromit", "Speed of Sound"} <= recovered


@real_logs
def test_parsing_is_deterministic(parsed: dict[Path, list[ImportedEpisode | Skipped]]) -> None:
    assert list(parse_react_log(BASE)) == parsed[BASE]


# --- edge cases on small hand-written logs --------------------------------------------------------

LOG = """\
########################################
BEGIN TRIAL 1
Trial summary: Correct: 1, Incorrect: 1, Halted: 0
#######################################
------------- BEGIN CORRECT AGENTS -------------

Question: Who wrote "Dune"?
Thought 1: I should search Dune.
Action 1: Search["Dune"]
Observation 1: Could not find ["Dune"]. Similar: ['Dune (novel)', 'Frank Herbert']
Thought 2: Search without quotes.
Action 2: Search[Dune (novel)]
Observation 2: Dune is a 1965 novel by Frank Herbert.
It won the Hugo Award.
Thought 3: Frank Herbert.
Action 3: Finish[Frank Herbert]
Observation 3: Answer is CORRECT
Correct answer: Frank Herbert

------------- BEGIN INCORRECT AGENTS -----------

Question: Which is older, A or B? You have attempted to answer following question before and \
failed. Use them.
Reflections:
- I searched both at once;
search them one by one.
Thought 1: Search both.
Action 1: Search[A], Search[B]
Observation 1: Could not find that page, please try again.
Action 2: Compare[A and B]
Observation 2: Invalid Action. Valid Actions are Lookup[<topic>] Search[<topic>] and Finish[<ans>].
Action 3: Lookup[born]
Observation 3: No Results
Action 4: Finish[A]
Observation 4: Answer is INCORRECT
Correct answer: B
"""


def test_a_small_log_is_parsed_step_by_step(tmp_path: Path) -> None:
    path = tmp_path / "run.txt"
    path.write_text(LOG, encoding="utf-8")
    first, second = list(parse_react_log(path))
    assert isinstance(first, ImportedEpisode) and isinstance(second, ImportedEpisode)
    assert (first.task, first.outcome, first.reward, first.source) == (
        'Who wrote "Dune"?', "success", 1.0, "run.txt:7"
    )
    assert [(s.tool, s.arguments, s.ok) for s in first.steps] == [
        ("Search", {"query": '"Dune"'}, False),
        ("Search", {"query": "Dune (novel)"}, True),
        ("Finish", {"answer": "Frank Herbert"}, True),
    ]
    assert first.steps[0].thought == "I should search Dune."
    assert first.steps[1].output == "Dune is a 1965 novel by Frank Herbert.\nIt won the Hugo Award."
    assert second.task == "Which is older, A or B?"
    assert second.reflections == ["I searched both at once; search them one by one."]
    assert [(s.tool, s.arguments["query" if s.tool != "Finish" else "answer"], s.ok)
            for s in second.steps] == [
        ("Search", "A], Search[B", False),
        ("Compare", "A and B", False),
        ("Lookup", "born", True),
        ("Finish", "A", True),
    ]
    assert second.steps[2].output == "No Results"
    assert (second.outcome, second.reward) == ("failure", 0.0)


def test_long_outputs_are_truncated_but_errors_are_not(tmp_path: Path) -> None:
    long_text = "x" * (OUTPUT_LIMIT + 100)
    path = tmp_path / "long.txt"
    path.write_text(
        "Question: q?\nAction 1: Search[a]\nObservation 1: " + long_text + "\n"
        "Action 2: Search[b]\nObservation 2: Could not find [b]. Similar: " + long_text + "\n",
        encoding="utf-8",
    )
    (episode,) = parse_react_log(path)
    assert isinstance(episode, ImportedEpisode)
    ok, failed = episode.steps
    assert ok.output == "x" * OUTPUT_LIMIT + "…"
    assert failed.error is not None and failed.error.endswith(long_text)


def test_without_sections_the_outcome_comes_from_the_finish_observation(tmp_path: Path) -> None:
    path = tmp_path / "plain.txt"
    path.write_text(
        "Question: a?\nAction 1: Finish[x]\nObservation 1: Answer is CORRECT\n\n"
        "Question: b?\nAction 1: Finish[y]\nObservation 1: Answer is INCORRECT\n\n"
        "Question: c?\nAction 1: Search[z]\nObservation 1: z is a letter.\n",
        encoding="utf-8",
    )
    outcomes = [e.outcome for e in parse_react_log(path) if isinstance(e, ImportedEpisode)]
    assert outcomes == ["success", "failure", "abandoned"]


def test_a_file_without_agents_is_reported_not_silently_empty(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("just some notes\n", encoding="utf-8")
    assert list(parse_react_log(path)) == [Skipped("notes.txt", NO_AGENTS)]


def test_question_normalization_ignores_spacing_and_the_retry_preamble() -> None:
    retry = " If  X?You have attempted to answer following question before and failed. More."
    assert normalize_question(retry) == normalize_question("If X?") == "If X?"
