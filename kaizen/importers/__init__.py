"""Backfill existing agent logs (ReAct text, OpenAI chat trajectories, τ²-bench and τ-bench
results) as episode events.

    from kaizen import Recorder
    from kaizen.importers import import_episodes, parse_react_log
    rec = Recorder(agent="react-hotpotqa", tenant="default")
    summary = import_episodes(parse_react_log("run.txt"), rec, base_time_ms=0, progress=True)
    rec.close(); print(summary.render())

Parsers turn a file into neutral `ImportedEpisode`s (and `Skipped` entries with a reason; a
`ReadError` when the rest of a file cannot be read); `timeline.ordered` puts several files on one
time line; `import_episodes` emits them with deterministic ids and event times. `kaizen import`
(`kaizen.import_cli`) and `kaizen backtest` wrap them.
"""

from kaizen.importers.formats import PARSERS, detect_format
from kaizen.importers.model import ImportedEpisode, ImportedStep, ReadError, Skipped
from kaizen.importers.openai_chat import parse_openai_chat
from kaizen.importers.react_log import parse_react_log
from kaizen.importers.run import ImportSummary, import_episodes
from kaizen.importers.tau2 import parse_tau2
from kaizen.importers.tau_bench import parse_tau_bench

__all__ = [
    "PARSERS",
    "ImportSummary",
    "ImportedEpisode",
    "ImportedStep",
    "ReadError",
    "Skipped",
    "detect_format",
    "import_episodes",
    "parse_openai_chat",
    "parse_react_log",
    "parse_tau2",
    "parse_tau_bench",
]
