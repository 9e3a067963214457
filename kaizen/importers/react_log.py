"""Parse ReAct text logs (the Reflexion HotpotQA run format) into imported episodes.

The format, as written by noahshinn/reflexion's HotpotQA runs:

    BEGIN TRIAL 2
    Trial summary: Correct: 42, Incorrect: 43, Halted: 14
    ------------- BEGIN CORRECT AGENTS -------------
    Question: <question>[ You have attempted to answer ... before and failed. ...]
    Reflections:
    - <lesson the model wrote after a failed trial>
    Thought 1: ...
    Action 1: Search[...]
    Observation 1: ...            (may continue over several lines)
    Correct answer: <gold answer>

Every trial reprints every agent, including those solved in an earlier trial (later trials even
drop their trajectories), and an agent that gave a wrong answer on its last allowed step is listed
under both INCORRECT and HALTED. Both kinds of reprint are reported as `Skipped`, never imported, so
each real attempt becomes exactly one episode. This module only reads; it must not emit events.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kaizen.importers.model import (
    ERROR_LIMIT,
    OUTPUT_LIMIT,
    ImportedEpisode,
    ImportedStep,
    Skipped,
    episode_id_for,
    truncate,
)

TASK_TYPE = "hotpotqa"
ALREADY_SOLVED = "already solved in an earlier trial"
LISTED_TWICE = "listed twice in one trial (wrong answer on the last step: INCORRECT and HALTED)"
NO_AGENTS = "no ReAct agents found (expected 'Question:' blocks)"

# Observations the environment returns when a call did not work: `Could not find [X]. Similar: ...`
# (no page of that title), `Could not find that page, please try again.` (the action text could
# not be read as one call), `Invalid Action. ...` (unknown tool). A Lookup answering `No Results`
# is a valid empty answer (the word is not on the page), not a failed call, so it is an output.
ERROR_PREFIXES = ("Could not find", "Invalid Action")

_OUTCOMES = {"CORRECT": "success", "INCORRECT": "failure", "HALTED": "abandoned"}
_REWARDS: dict[str, float | None] = {"CORRECT": 1.0, "INCORRECT": 0.0, "HALTED": None}
_TRIAL = re.compile(r"^BEGIN TRIAL (\d+)")
_SECTION = re.compile(r"BEGIN (CORRECT|INCORRECT|HALTED) AGENTS")
_HEADER = re.compile(r"^(#{5,}\s*$|-{5,} (BEGIN|END) |BEGIN TRIAL|Trial summary:)")
_ENTRY = re.compile(r"^(Thought|Action|Observation) (\d+):\s?(.*)$")
_CALL = re.compile(r"^\s*([A-Za-z_]\w*)\s*\[(.*)\]\s*$", re.DOTALL)
_PREAMBLE = "You have attempted to answer following question before and failed."


@dataclass
class _Block:
    """The raw lines of one printed agent, before any interpretation."""

    trial: int
    section: str | None
    line: int
    question: str
    reflections: list[str] = field(default_factory=list)
    entries: list[list[str]] = field(default_factory=list)  # [kind, text]
    in_reflections: bool = False
    answered: bool = False  # after `Correct answer:` nothing belongs to this agent any more

    def add(self, line: str) -> None:
        """Route one line of the agent's text to the part it belongs to."""
        if self.answered:
            return
        entry = _ENTRY.match(line)
        if entry:
            self.in_reflections = False
            self.entries.append([entry.group(1), entry.group(3)])
        elif line.startswith("Reflections:"):
            self.in_reflections = True
        elif self.in_reflections and line.startswith("- "):
            self.reflections.append(line[2:].strip())
        elif line.startswith("Correct answer:"):
            self.answered = True
        elif line.strip():
            self._continue(line)

    def _continue(self, line: str) -> None:
        """A line with no prefix continues whatever came last (observations span lines)."""
        if self.entries:
            self.entries[-1][1] += "\n" + line
        elif self.in_reflections and self.reflections:
            self.reflections[-1] += " " + line.strip()
        else:
            self.question += " " + line.strip()


def parse_react_log(path: str | Path) -> Iterator[ImportedEpisode | Skipped]:
    """Yield one `ImportedEpisode` per real attempt in a ReAct log, and a `Skipped` per reprint.

    An agent solved in a trial is not imported again from later trials; an agent listed twice in
    one trial is imported once (the first listing, INCORRECT, wins over HALTED).
    """
    path = Path(path)
    solved: set[str] = set()
    seen: set[tuple[int, str]] = set()
    found = False
    for block in _blocks(path):
        found = True
        question = normalize_question(block.question)
        source = f"{path.name}:{block.line}"
        if question in solved:
            yield Skipped(source, ALREADY_SOLVED)
            continue
        if (block.trial, question) in seen:
            yield Skipped(source, LISTED_TWICE)
            continue
        seen.add((block.trial, question))
        episode = _episode(path.name, block, question, source)
        if episode.outcome == "success":
            solved.add(question)
        yield episode
    if not found:
        yield Skipped(path.name, NO_AGENTS)


def normalize_question(text: str) -> str:
    """The question without the Reflexion retry preamble, whitespace collapsed: the dedupe key."""
    return " ".join(text.split(_PREAMBLE, 1)[0].split())


def _blocks(path: Path) -> Iterator[_Block]:
    """Split the log into printed agents, tracking the trial and section each sits in."""
    trial, section = 1, None
    block: _Block | None = None
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, raw in enumerate(lines, start=1):
            line = raw.rstrip("\n")
            if _HEADER.match(line):
                if block:
                    yield block
                block = None
                trial_match, section_match = _TRIAL.match(line), _SECTION.search(line)
                trial = int(trial_match.group(1)) if trial_match else trial
                section = section_match.group(1) if section_match else section
            elif line.startswith("Question:"):
                if block:
                    yield block
                block = _Block(trial, section, number, line[len("Question:"):])
            elif block:
                block.add(line)
    if block:
        yield block


def _episode(file_name: str, block: _Block, question: str, source: str) -> ImportedEpisode:
    steps = _steps(block.entries)
    section = block.section or _section_from_steps(steps)
    return ImportedEpisode(
        episode_id=episode_id_for("react", file_name, question, str(block.trial)),
        task=question,
        task_type=TASK_TYPE,
        user=None,
        steps=steps,
        outcome=_OUTCOMES[section],
        reward=_REWARDS[section],
        reflections=list(block.reflections),
        source=source,
    )


def _section_from_steps(steps: list[ImportedStep]) -> str:
    """For logs printed without sections: the Finish observation says how it went."""
    if steps and steps[-1].tool == "Finish" and steps[-1].output:
        return "CORRECT" if steps[-1].output.startswith("Answer is CORRECT") else "INCORRECT"
    return "HALTED"


def _steps(entries: list[list[str]]) -> list[ImportedStep]:
    """Pair each Action with the Thought before it and the Observation after it."""
    steps: list[ImportedStep] = []
    thought: str | None = None
    action: str | None = None
    for kind, text in entries:
        if kind == "Thought":
            thought = text.strip()
        elif kind == "Action":
            if action is not None:
                steps.append(_step(action, None, thought))
            action = text
        elif action is not None:
            steps.append(_step(action, text.strip(), thought))
            action, thought = None, None
    if action is not None:
        steps.append(_step(action, None, thought))
    return steps


def _step(action: str, observation: str | None, thought: str | None) -> ImportedStep:
    """One tool call. The argument is taken as the environment read it (greedy brackets), so
    `Search[A], Search[B]` is one call with the query `A], Search[B`: the reason it failed."""
    call = _CALL.match(action)
    tool, argument = (call.group(1), call.group(2)) if call else ("invalid_action", action.strip())
    arguments: dict[str, object] = {"answer" if tool == "Finish" else "query": argument}
    if observation is None:
        return ImportedStep(tool, arguments, False, "no observation recorded", None, thought)
    if observation.startswith(ERROR_PREFIXES):
        error = truncate(observation, ERROR_LIMIT)
        return ImportedStep(tool, arguments, False, error, None, thought)
    return ImportedStep(tool, arguments, True, None, truncate(observation, OUTPUT_LIMIT), thought)
