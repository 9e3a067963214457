"""Backfill existing agent logs (ReAct text, OpenAI chat trajectories) as episode events.

    from kaizen import Recorder
    from kaizen.importers import import_episodes, parse_react_log
    rec = Recorder(agent="react-hotpotqa", tenant="default")
    summary = import_episodes(parse_react_log("run.txt"), rec, base_time_ms=0, progress=True)
    rec.close(); print(summary.render())

Parsers turn a file into neutral `ImportedEpisode`s (and `Skipped` entries with a reason);
`import_episodes` emits them with deterministic ids and event times. `kaizen import` wraps both.
"""

from kaizen.importers.model import ImportedEpisode, ImportedStep, Skipped
from kaizen.importers.openai_chat import parse_openai_chat
from kaizen.importers.react_log import parse_react_log
from kaizen.importers.run import ImportSummary, import_episodes

__all__ = [
    "ImportSummary",
    "ImportedEpisode",
    "ImportedStep",
    "Skipped",
    "import_episodes",
    "parse_openai_chat",
    "parse_react_log",
]
