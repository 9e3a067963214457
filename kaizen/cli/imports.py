"""`kaizen import FILE...`: backfill existing agent logs as episode events.

Every file is parsed (format detected from its content, gzip read directly), the episodes of all
files are put on one time line (`kaizen.importers.timeline`: their own times where the log has
them, in command-line order otherwise), and emitted through one Recorder per agent. A file that
cannot be read to its end is reported with its position on stderr (exit 1); the episodes read
before the damage are imported all the same.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kaizen.importers.formats import DEFAULT_AGENTS, FORMATS
from kaizen.importers.model import ImportedEpisode
from kaizen.importers.run import DEFAULT_BASE_TIME, ImportSummary, import_episodes, parse_base_time
from kaizen.importers.timeline import load_files, plan_files
from kaizen.settings import Settings

if TYPE_CHECKING:
    from kaizen.client.recorder import Recorder

_FLUSH_SECONDS = 60.0


def register(sub: Any) -> None:
    imports = sub.add_parser("import", help="backfill existing agent logs as episode events")
    imports.add_argument("files", nargs="+", metavar="FILE")
    imports.add_argument(
        "--format", choices=FORMATS, default="auto",
        help="auto (default): from the content: τ²-bench simulations, τ-bench v1 runs, OpenAI "
             "chat trajectories (.json/.jsonl), ReAct text (.txt); .gz is read directly",
    )
    imports.add_argument(
        "--agent", help="agent name (default: from the log, e.g. tau2-retail; react-hotpotqa for "
                        "ReAct logs, imported for chat trajectories)"
    )
    imports.add_argument("--tenant", default="default")
    imports.add_argument(
        "--base-time", help="ISO time of the first event of logs without times, UTC if no zone "
        "(default 2024-01-01T00:00:00Z: a re-import gives the same times)",
    )
    imports.set_defaults(handler=run)


def agent_of(item: ImportedEpisode, fmt: str, override: str | None) -> str:
    return override or item.agent or DEFAULT_AGENTS[fmt]


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Handler of `kaizen import FILE...`: parse, order, emit, flush, and print the summary."""
    try:
        plan = plan_files(args.files, args.format)
        base_ms = parse_base_time(args.base_time or DEFAULT_BASE_TIME)
    except ValueError as error:
        print(f"kaizen import: {error}", file=sys.stderr)
        return 2
    placed, errors, reasons = load_files(plan, base_ms)
    for problem in errors:
        print(f"kaizen import: {problem.source}: {problem.reason}", file=sys.stderr)
    by_agent: dict[str, list[ImportedEpisode]] = {}
    for item in placed:
        agent = agent_of(item.episode, plan[item.file_index][1], args.agent)
        by_agent.setdefault(agent, []).append(item.episode)
    code = _emit(by_agent, args.tenant, settings, base_ms, reasons)
    return code or (1 if errors else 0)


def _emit(by_agent: Mapping[str, list[ImportedEpisode]], tenant: str, settings: Settings,
          base_ms: int, reasons: Mapping[str, int]) -> int:
    from kaizen.client.recorder import Recorder

    recorders: dict[str, Recorder] = {}
    total = ImportSummary()
    total.skipped.update(reasons)
    try:
        for agent, episodes in by_agent.items():
            recorders[agent] = Recorder(agent, tenant, settings=settings)
            summary = import_episodes(episodes, recorders[agent], base_time_ms=base_ms,
                                      progress=True, label=agent)
            total = total.merge(summary)
    finally:
        undelivered = _close(recorders)
    print(total.render())
    return 1 if undelivered else 0


def _close(recorders: Mapping[str, Recorder]) -> int:
    """Flush and close every Recorder; returns how many events were not delivered."""
    undelivered = 0
    for agent, recorder in recorders.items():
        recorder.flush(_FLUSH_SECONDS)
        recorder.close()
        stats = recorder.stats
        print(f"{agent}: delivered {stats.delivered:,} of {stats.emitted:,} events", end="")
        if stats.spooled or stats.failed or stats.dropped:
            print(f"; spooled {stats.spooled:,} (sent by the next Recorder of this agent once "
                  f"the broker answers), failed {stats.failed:,}, dropped {stats.dropped:,}",
                  end="")
        print()
        undelivered += stats.spooled + stats.failed + stats.dropped
    return undelivered
