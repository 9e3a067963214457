"""Recall at the point of use: the query for one tool call, and the relevance rule relative to the
best hit.

Why (measured on real logs, README "Recall"): an agent of the tau-bench kind has every tool
available in every episode, so the task text alone barely tells which tools it will call. Recall
from the first customer message scores a relevant lesson and a lesson about an unrelated tool
almost alike (cosine 0.37-0.40 against 0.34-0.37), and no absolute floor separates them. Right
before a call of tool T the agent knows T and the argument names: recall for T only (the
`tool` filter of `POST /recall`) is on-target by construction and lands right before the call
that would fail. Among T's lessons, those far below the best hit are dropped (`near_best`), so a
tool with many lessons does not flood the prompt.

Light on purpose (no NumPy): the agent-side recall client builds its query with `call_query`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

#: Lessons of the called tool scoring more than this below the best of them are left out.
CALL_MARGIN = 0.15
#: Lessons per point-of-use recall: a call needs its one or two rules, not a list.
CALL_K = 3
#: The recall at the start of an episode keeps only lessons this close to its best hit.
START_MARGIN: float | None = None

T = TypeVar("T")


def call_query(task: str, tool: str, arguments: Mapping[str, Any] | Iterable[str]) -> str:
    """The query text for a recall right before `tool` is called: the task, then the call's shape
    (`tool(name, name)`). Argument names, not values: values are instance data (ids, amounts)
    that no lesson shares, while the names tell which rule of the tool is at stake."""
    names = sorted(str(name) for name in arguments)
    return f"{task.strip()}\n{tool}({', '.join(names)})"


def near_best(ranked: Sequence[T], scores: Sequence[float], margin: float | None) -> list[T]:
    """The items of a best-first list scoring within `margin` of the first (all of them when
    `margin` is None). A relative rule: cosines of one embedder shift with the query's length and
    wording, so "close to the best hit" travels across queries where a fixed floor does not."""
    if margin is None or not ranked:
        return list(ranked)
    best = scores[0]
    return [item for item, score in zip(ranked, scores, strict=True) if score >= best - margin]
