"""Replay historical logs through the real pipeline, recalling before each episode as the agent
would have, and count what the recalled lessons would have covered.

    report = run_backtest(["runs.json.gz"], settings, BacktestConfig(window=10))
    print(report.render_table())

Steps (`kaizen.backtest.plan`): feed the episodes that had ended, wait until the pipeline has
drained (consumer lag), run the gate, then recall for the next window of episodes and fold the
figures (`kaizen.backtest.tally`). Each episode recalls as an agent using both recall APIs would:

- at the start, with its task text and user; by default (`tools="none"`) only lessons about no
  tool, because on real logs the start recall cannot tell which tools an episode will call (every
  tool is available, and the first customer message scores relevant and off-target lessons
  alike), so tool lessons there were mostly off-target and covered nothing the next recall did not;
- right before each tool call, the point-of-use recall of `kaizen.recall_for_call` (that tool's
  lessons only, the task plus the call's argument names, `call_k` lessons within `call_margin`
  of the best): on-target by construction, and it lands before the call that would fail;
- on error, with each failure's signature (what `ep.what_worked` would have got).

A recurring failure counts as covered when a relevant lesson came at the start or right before
the failing call; the report says which. Replayed episodes carry no snapshot and no recall event:
their outcomes happened without Kaizen, so they must not count for or against any lesson's effect.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from kaizen.backtest.lessons import gate_counts, lesson_rows
from kaizen.backtest.matching import Call, FailedCall, LessonView
from kaizen.backtest.pipeline import Pipeline
from kaizen.backtest.plan import Span, plan
from kaizen.backtest.report import BacktestReport, Timings
from kaizen.backtest.tally import EpisodeFacts, Recalls, Tally
from kaizen.importers.formats import DEFAULT_AGENTS
from kaizen.importers.model import ImportedEpisode
from kaizen.importers.run import DEFAULT_BASE_TIME, emit_episode, event_times, parse_base_time
from kaizen.importers.timeline import load_files, plan_files
from kaizen.processors.learning.signatures import error_signature
from kaizen.readmodel.relevance import CALL_K, CALL_MARGIN, START_MARGIN, call_query
from kaizen.schemas.model import Experience
from kaizen.settings import Settings

#: The start recall's `tools`: none (lessons about no tool; tool lessons come right before the
#: call, `recall_for_call`), available (the agent's toolset), called (the episode's own calls).
TOOLS_MODES = ("none", "available", "called")


@dataclass(frozen=True)
class BacktestConfig:
    window: int = 40  # episodes in flight together (about one benchmark run of 40 tasks)
    k: int = 5  # lessons per recall at the start of an episode, as `recall()` defaults
    start_margin: float | None = START_MARGIN  # the start recall's rule relative to its best hit
    call_k: int = CALL_K  # lessons per point-of-use recall before each call; 0: none
    call_margin: float | None = CALL_MARGIN  # as `recall_for_call()` defaults
    tenant: str = "default"
    agent: str | None = None  # one agent name for every file; default: from each log
    tools: str = "none"  # the start recall's tools (TOOLS_MODES)
    input_format: str = "auto"
    approve: bool = False  # approve what the policy leaves for a human (as an operator would)
    keep: bool = False  # keep the backtest's data dir
    progress: bool = True


@dataclass(frozen=True)
class Replayed:
    """One episode of the input with the scope it replays in."""

    episode: ImportedEpisode
    agent: str
    facts: EpisodeFacts


def run_backtest(files: Sequence[str], settings: Settings, config: BacktestConfig
                 ) -> BacktestReport:
    """The whole backtest; raises ValueError for unreadable arguments, PipelineError when the
    pipeline cannot start or stalls."""
    if config.tools not in TOOLS_MODES:
        raise ValueError(f"tools must be one of {TOOLS_MODES}")
    file_plan = plan_files(files, config.input_format)
    placed, errors, skipped = load_files(file_plan, parse_base_time(DEFAULT_BASE_TIME))
    replayed = []
    for index, item in enumerate(placed):
        agent = config.agent or item.episode.agent or DEFAULT_AGENTS[file_plan[item.file_index][1]]
        replayed.append(Replayed(item.episode, agent, facts_of(index, agent, item.episode)))
    toolsets = _toolsets(replayed)
    tally, timings = Tally(min_support=settings.min_support), Timings()
    began = time.monotonic()
    pipeline = Pipeline.start(settings)
    timings.start = time.monotonic() - began
    try:
        _replay(pipeline, replayed, toolsets, tally, config, timings)
        scopes = sorted({(config.tenant, r.agent) for r in replayed})
        lessons = lesson_rows({s: pipeline.experiences(*s) for s in scopes},
                              pipeline.behavior.log, tally.lessons,
                              blamed=pipeline.behavior.blamed,
                              quarantined=pipeline.behavior.quarantined())
        gate, dead = gate_counts(pipeline.behavior.log), pipeline.dead_letters()
    finally:
        pipeline.close()
        if not config.keep:
            shutil.rmtree(pipeline.settings.home, ignore_errors=True)
    timings.total = time.monotonic() - began
    return BacktestReport(timings=timings,
        tally=tally, lessons=lessons, gate=gate, dead_letters=dead,
        settings={"window": config.window, "k": config.k, "tools": config.tools,
                  "start_margin": config.start_margin, "call_k": config.call_k,
                  "call_margin": config.call_margin,
                  "min_support": settings.min_support, "tenant": config.tenant,
                  "approve": config.approve, "max_auto_change": settings.max_auto_change},
        files=[path.name for path, _ in file_plan], skipped=skipped,
        read_errors=[f"{e.source}: {e.reason}" for e in errors])


def facts_of(index: int, agent: str, episode: ImportedEpisode) -> EpisodeFacts:
    failures = tuple(FailedCall(s.tool, error_signature(s.tool, s.error or ""), s.arguments,
                                position) for position, s in enumerate(episode.steps) if not s.ok)
    return EpisodeFacts(index, agent, frozenset(s.tool for s in episode.steps), failures,
                        tuple(Call(s.tool, s.arguments) for s in episode.steps))


def _toolsets(replayed: Sequence[Replayed]) -> dict[str, frozenset[str]]:
    """The tools each agent had: what its logs list, else every tool it is seen calling."""
    tools: dict[str, set[str]] = {}
    for r in replayed:
        tools.setdefault(r.agent, set()).update(r.episode.tools or r.facts.tools)
    return {agent: frozenset(found) for agent, found in tools.items()}


def _replay(pipeline: Pipeline, replayed: Sequence[Replayed],
            toolsets: Mapping[str, frozenset[str]], tally: Tally, config: BacktestConfig,
            timings: Timings) -> None:
    spans = [Span(i, r.episode.started_ms or 0, r.episode.ended_ms or 0)
             for i, r in enumerate(replayed)]
    bar = tqdm(total=len(replayed), desc="backtest", unit=" episodes", file=sys.stderr,
               disable=not config.progress)
    try:
        for step in plan(spans, config.window):
            mark = time.monotonic()
            for i in step.feed:
                item = replayed[i]
                emit_episode(item.episode, pipeline.recorder(config.tenant, item.agent),
                             event_times(item.episode))
                tally.fed(item.facts)
            if step.feed:
                pipeline.drain()
                timings.feed_and_drain += time.monotonic() - mark
                mark = time.monotonic()
                pipeline.gate(approve=config.approve)
                timings.gate += time.monotonic() - mark
                timings.windows += 1
            mark = time.monotonic()
            catalog = _catalog(pipeline, config.tenant, {replayed[i].agent for i in step.recall})
            for i in step.recall:
                item = replayed[i]
                tools = (frozenset() if config.tools == "none" else toolsets[item.agent]
                         if config.tools == "available" else item.facts.tools)
                recall = _recaller(pipeline, catalog, config, item, tools)
                tally.recalled(item.facts, Recalls(
                    before=recall(None),
                    on_error=tuple(recall(call.signature, call.tool)
                                   for call in item.facts.failures),
                    at_call=_at_calls(pipeline, catalog, config, item)))
                bar.update(1)
            timings.recall += time.monotonic() - mark
    finally:
        bar.close()


def _catalog(pipeline: Pipeline, tenant: str, agents: set[str]) -> dict[str, Experience]:
    return {x.experience_id: x for agent in sorted(agents)
            for x in pipeline.experiences(tenant, agent)}


def _recaller(pipeline: Pipeline, catalog: Mapping[str, Experience], config: BacktestConfig,
              item: Replayed, tools: frozenset[str]
              ) -> Callable[..., tuple[LessonView, ...]]:
    """recall(signature, tool) for one episode: before it (None) or at a failure of `tool` (its
    signature; lessons about that tool or no tool, as `Episode.what_worked` asks)."""
    body = {"task": item.episode.task, "agent": item.agent, "tenant": config.tenant,
            "user": item.episode.user, "tools": sorted(tools), "k": config.k}

    answers: dict[str | None, tuple[LessonView, ...]] = {}  # one recall per signature

    def recall(signature: str | None, tool: str | None = None) -> tuple[LessonView, ...]:
        if signature not in answers:  # a signature names its tool: one recall per signature
            answers[signature] = _views(catalog, pipeline.recall(
                {**body, "signature": signature, "tools": [tool] if tool else body["tools"]}
                if signature else {**body, "margin": config.start_margin}))
        return answers[signature]

    return recall


def _at_calls(pipeline: Pipeline, catalog: Mapping[str, Experience], config: BacktestConfig,
              item: Replayed) -> tuple[tuple[LessonView, ...], ...]:
    """The point-of-use recall before each call of the episode, as `kaizen.recall_for_call`
    asks it (the same query, tool filter, k and margin); one recall per call shape."""
    if config.call_k <= 0:
        return ()
    answers: dict[tuple[str, tuple[str, ...]], tuple[LessonView, ...]] = {}
    out = []
    for call in item.facts.calls:
        shape = (call.tool, tuple(sorted(call.arguments)))
        if shape not in answers:
            answers[shape] = _views(catalog, pipeline.recall({
                "task": call_query(item.episode.task, call.tool, call.arguments),
                "agent": item.agent, "tenant": config.tenant, "user": item.episode.user,
                "tool": call.tool, "k": config.call_k, "margin": config.call_margin}))
        out.append(answers[shape])
    return tuple(out)


def _views(catalog: Mapping[str, Experience], answer: Sequence[Mapping[str, Any]]
           ) -> tuple[LessonView, ...]:
    return tuple(LessonView.of(catalog[x["experience_id"]], float(x["score"]))
                 if x["experience_id"] in catalog
                 else LessonView(x["experience_id"], x.get("tool"), None, None, float(x["score"]))
                 for x in answer)
