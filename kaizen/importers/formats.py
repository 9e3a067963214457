"""Which parser reads which file: the registry of importer formats and auto-detection.

`auto` looks at the content, not only the name, because benchmark results arrive as
`.json.gz` whatever they hold: a JSON object with `simulations` is τ²-bench, a list of runs with
`traj` is τ-bench v1, any other JSON is OpenAI chat trajectories, `.txt` is a ReAct log.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

from kaizen.importers.jsonstream import open_bytes
from kaizen.importers.model import ImportedEpisode, Skipped
from kaizen.importers.openai_chat import parse_openai_chat
from kaizen.importers.react_log import parse_react_log
from kaizen.importers.tau2 import parse_tau2
from kaizen.importers.tau_bench import parse_tau_bench

Parser = Callable[[Path], Iterator[ImportedEpisode | Skipped]]
PARSERS: dict[str, Parser] = {
    "react": parse_react_log,
    "openai": parse_openai_chat,
    "tau2": parse_tau2,
    "tau-bench": parse_tau_bench,
}
FORMATS = ("auto", *PARSERS)
#: The agent name when neither the log nor the command names one.
DEFAULT_AGENTS = {"react": "react-hotpotqa", "openai": "imported", "tau2": "tau2",
                  "tau-bench": "tau-bench"}
_TAU2_KEYS = re.compile(r'^\s*\{\s*"(timestamp|info|tasks|simulations)"\s*:')
_TAU_RUN = re.compile(r'^\s*\[\s*\{[^\[]*?"(task_id|traj|trial|reward)"\s*:', re.DOTALL)


def detect_format(path: Path, requested: str = "auto") -> str:
    """The format to read `path` with: `requested` unless it is `auto`, then from the file."""
    if requested != "auto":
        if requested not in PARSERS:
            raise ValueError(f"{path}: unknown format {requested!r}")
        return requested
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".txt"):
        return "react"
    if name.endswith(".jsonl"):
        return "openai"
    if not name.endswith(".json"):
        raise ValueError(f"{path}: cannot tell the format from the name; pass --format")
    head = open_bytes(path).decode("utf-8", errors="replace") if path.is_file() else ""
    if _TAU2_KEYS.match(head):
        return "tau2"
    if _TAU_RUN.match(head):
        return "tau-bench"
    return "openai"
