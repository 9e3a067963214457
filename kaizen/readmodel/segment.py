"""One immutable compiled set of lessons and its filtered top-k search, the recall index's unit.

A :class:`Segment` is built once and never mutated, so any number of threads search it without
a lock. Its rows are ordered by (tool, experience id), tool-less lessons first: the lessons
about one tool are one contiguous slice, so the ``tools=`` filter picks slices (a matrix
product over a slice, no copy) instead of masking every row. Rows the caller no longer wants
(a newer version lives in another segment, the lesson was removed) are masked out by the
caller's ``alive`` mask, not deleted. Past :data:`~kaizen.readmodel.vector_search.ANN_MIN_ROWS`
rows the segment carries a faiss index (:mod:`kaizen.readmodel.vector_search`) that narrows a
large group of allowed rows to the few worth scoring exactly.

Scoring and the scope rules are the ones :mod:`kaizen.readmodel.index` documents; results are
``(score, experience)`` pairs, best first, ties broken by experience id, so results from
several segments merge into the one order an exact scan of all of them gives.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kaizen.readmodel import vector_search
from kaizen.readmodel.vector_search import AnnIndex, Mask, Rows
from kaizen.schemas.model import Experience

FloatVector = npt.NDArray[np.float32]
Codes = npt.NDArray[np.int32]
Scored = list[tuple[float, Experience]]

#: Added when the query's error signature equals the lesson's: the lesson was
#: learnt from exactly this failure, which text similarity alone can under-rate.
SIGNATURE_BOOST = 0.25
#: Added when the lesson is about a tool the caller is about to use.
TOOL_BOOST = 0.05
#: Rows copied per NumPy call when compiling: each call holds the GIL, recalls wait for it.
_CHUNK = 1_024


@dataclass(frozen=True, slots=True)
class Query:
    """One recall's vector and filters (see :meth:`kaizen.readmodel.index.RecallIndex.recall`)."""

    vector: FloatVector
    k: int
    user: str | None = None
    tools: frozenset[str] | None = None
    tool: str | None = None
    signature: str | None = None


@functools.cache
def single_threaded_blas() -> None:
    """Limit NumPy's BLAS to one thread, process-wide (once).

    A recall's products are matrix x vector over at most a few thousand rows: OpenBLAS splits
    them across threads, and on a machine with more runnable threads than cores the split waits
    for a descheduled helper a whole scheduler tick (4 ms) or more. Measured at 10k lessons on
    the shared 2-core machine: p99 13-21 ms with the default threads, 0.66-0.79 ms with one
    (p50 0.4-0.6 ms either way). Concurrent recalls are the parallelism a service needs.
    """
    from threadpoolctl import threadpool_limits  # noqa: PLC0415 - once, on first index

    threadpool_limits(limits=1, user_api="blas")


def _codes(values: Sequence[str | None]) -> tuple[Codes, dict[str, int]]:
    index: dict[str, int] = {}
    codes = [-1 if v is None else index.setdefault(v, len(index)) for v in values]
    return np.asarray(codes, dtype=np.int32), index


@dataclass(frozen=True, slots=True)
class Segment:
    """Compiled lessons; ``user_codes`` / ``signature_codes`` are -1 for none."""

    matrix: npt.NDArray[np.float32]
    experiences: tuple[Experience, ...]
    id_rank: npt.NDArray[np.int64]  # a row's position in experience-id order (breaks ties)
    parts: dict[str | None, tuple[int, int]]  # tool (None: no tool) -> its rows [start, end)
    user_codes: Codes
    user_index: dict[str, int]
    signature_codes: Codes
    signature_index: dict[str, int]
    ann: AnnIndex | None = None

    @classmethod
    def compile(cls, rows: Sequence[tuple[Experience, FloatVector]], dimension: int,
                ann_min_rows: int | None = vector_search.ANN_MIN_ROWS,
                previous: Segment | None = None) -> Segment:
        """A segment of these (lesson, vector) rows; an ANN from `ann_min_rows` rows on (None:
        never), reusing the centroids of `previous`'s."""
        by_id = sorted(rows, key=lambda r: r[0].experience_id)
        about: dict[str | None, list[int]] = {}
        for i, (experience, _) in enumerate(by_id):  # a loop, not one long sort: a background
            about.setdefault(experience.tool, []).append(i)  # compile leaves readers the GIL
        order = [i for tool in sorted(about, key=lambda t: (t is not None, t or ""))
                 for i in about[tool]]
        experiences = tuple(by_id[i][0] for i in order)
        matrix = np.empty((len(order), dimension), dtype=np.float32)
        for start in range(0, len(order), _CHUNK):  # np.stack of 100k rows holds the GIL 0.1 s+
            matrix[start:start + _CHUNK] = np.stack(
                [by_id[i][1] for i in order[start:start + _CHUNK]])
            time.sleep(0)  # and hand the GIL to a waiting recall between chunks
        parts: dict[str | None, tuple[int, int]] = {}
        for row, experience in enumerate(experiences):
            start, _ = parts.get(experience.tool, (row, row))
            parts[experience.tool] = (start, row + 1)
        user_codes, user_index = _codes([e.user for e in experiences])
        signature_codes, signature_index = _codes([e.trigger.signature for e in experiences])
        ann = None
        if ann_min_rows is not None and len(rows) >= ann_min_rows:
            ann = AnnIndex.build(matrix, *_known_lists(experiences, previous))
        return cls(matrix, experiences, np.asarray(order, dtype=np.int64), parts, user_codes,
                   user_index, signature_codes, signature_index, ann)

    def __len__(self) -> int:
        return len(self.experiences)

    def top(self, query: Query, alive: Mask | None = None) -> Scored:
        """The `k` best rows for `query` among the `alive` ones (None: all), best first."""
        if not self.experiences or query.k <= 0:
            return []
        allowed = self._allowed(query.user, alive)
        picked = [self._score(query, ranges, allowed, boost)
                  for ranges, boost in self._groups(query.tools, query.tool)]
        rows = np.concatenate([p[0] for p in picked]) if picked else np.zeros(0, np.intp)
        if rows.size == 0:
            return []
        scores = np.concatenate([p[1] for p in picked])
        if query.signature is not None and query.signature in self.signature_index:
            hits = self.signature_codes[rows] == self.signature_index[query.signature]
            scores = scores + SIGNATURE_BOOST * hits
        order = top_k(scores, query.k, self.id_rank[rows])
        return [(float(scores[i]), self.experiences[rows[i]]) for i in order]

    def _allowed(self, user: str | None, alive: Mask | None) -> Mask:
        """Rows passing the user rule and alive; tenant, agent and activity hold by construction."""
        allowed = self.user_codes < 0
        if user is not None and user in self.user_index:
            allowed |= self.user_codes == self.user_index[user]
        return allowed if alive is None else allowed & alive

    def _groups(self, tools: frozenset[str] | None, tool: str | None
                ) -> list[tuple[list[tuple[int, int]], float]]:
        """The row ranges a query may see, grouped by the tool boost they earn."""
        if tool is not None:
            if tool not in self.parts or (tools is not None and tool not in tools):
                return []
            return [([self.parts[tool]], TOOL_BOOST if tools is not None else 0.0)]
        if tools is None:
            return [([(0, len(self.experiences))], 0.0)]
        groups = [([self.parts[None]], 0.0)] if None in self.parts else []
        about = [self.parts[t] for t in sorted(tools) if t in self.parts]
        return [*groups, (about, TOOL_BOOST)] if about else groups

    def _score(self, query: Query, ranges: list[tuple[int, int]], allowed: Mask, boost: float
               ) -> tuple[Rows, npt.NDArray[np.float64]]:
        """Allowed rows of `ranges` holding the best `k` of them, and their scores + boost."""
        count = sum(int(np.count_nonzero(allowed[s:e])) for s, e in ranges)
        if self.ann is not None and count > max(vector_search.EXACT_MAX_ALLOWED,
                                                query.k + vector_search.OVERFETCH):
            rows = self._narrow(query, ranges, allowed, count)
            return rows, (self.matrix[rows] @ query.vector).astype(np.float64) + boost
        found_rows, found_scores = [], []
        for start, end in ranges:
            keep = np.flatnonzero(allowed[start:end])
            if 4 * keep.size < end - start:  # few rows: gather them, not the whole slice
                found_scores.append(self.matrix[keep + start] @ query.vector)
            else:
                found_scores.append((self.matrix[start:end] @ query.vector)[keep])
            found_rows.append(keep + start)
        scores = np.concatenate(found_scores).astype(np.float64) + boost
        return np.concatenate(found_rows), scores

    def _narrow(self, query: Query, ranges: list[tuple[int, int]], allowed: Mask, count: int
                ) -> Rows:
        """The ANN's nearest allowed rows of `ranges`, plus those earning a signature boost
        (which can lift a row the ANN ranked low); all allowed rows if it found too few."""
        assert self.ann is not None
        if ranges == [(0, len(self.experiences))]:
            mask = allowed
        else:
            mask = np.zeros_like(allowed)
            for start, end in ranges:
                mask[start:end] = allowed[start:end]
        rows = self.ann.nearest(query.vector, mask, query.k + vector_search.OVERFETCH)
        if query.signature is not None and query.signature in self.signature_index:
            must = np.flatnonzero(mask & (self.signature_codes
                                          == self.signature_index[query.signature]))
            rows = np.union1d(rows, must)
        return rows if rows.size >= min(query.k, count) else np.flatnonzero(mask)


def _known_lists(experiences: tuple[Experience, ...], previous: Segment | None
                 ) -> tuple[AnnIndex | None, npt.NDArray[np.int64] | None]:
    """The previous ANN and, per row, the inverted list it put the same lesson version in
    (-1: not in it). Same version = same object: the index stores a lesson and its vector
    together, so an unchanged object has an unchanged vector."""
    if previous is None or previous.ann is None:
        return None, None
    held = {id(e): row for row, e in enumerate(previous.experiences)}
    rows = np.fromiter((held.get(id(e), -1) for e in experiences), dtype=np.int64,
                       count=len(experiences))
    known = np.where(rows >= 0, previous.ann.assignment[rows], -1)
    return previous.ann, known


def top_k(scores: npt.NDArray[np.floating], k: int,
          rank: npt.NDArray[np.int64] | None = None) -> npt.NDArray[np.intp]:
    """Indices of the ``k`` best scores, best first, ties by `rank` (default: position).

    argpartition finds the k-th best score in linear time; every score at least
    that good is then sorted, so a tie at the cut is broken by rank, as a full
    sort by (score, rank) would.
    """
    rank = np.arange(scores.size) if rank is None else rank
    if k >= scores.size:
        return np.lexsort((rank, -scores))
    cut = scores[np.argpartition(-scores, k - 1)[k - 1]]
    candidates = np.flatnonzero(scores >= cut)
    return candidates[np.lexsort((rank[candidates], -scores[candidates]))][:k]


def merge(parts: Sequence[Scored], k: int) -> Scored:
    """The `k` best of several segments' results (each best first), ties by experience id."""
    scored = [item for part in parts for item in part]
    return sorted(scored, key=lambda s: (-s[0], s[1].experience_id))[:k]
