"""The recall index's write buffer: the lessons written since a scope's base segment was compiled.

Why not just recompile: a write must stay cheap whatever the scope's size and however many
writes came since the last compile (recompiling a 2k-row segment per write took ~7 ms of GIL
time, which 8 recalling threads then queued behind). So rows are only ever *appended*: a write
puts the new version in the next free row and clears the old version's bit in a fresh copy of
the small ``alive`` mask. A published :class:`OverlayView` reads rows ``[0, n)`` of arrays that
later writes only extend past ``n`` (or replace by bigger copies when full), so it never changes
under a reader. The scope rules and scores are the ones :mod:`kaizen.readmodel.segment` applies;
the property tests check both against the exact scan.

Not thread-safe for writers: the index's lock serialises them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kaizen.readmodel.segment import SIGNATURE_BOOST, TOOL_BOOST, Query, Scored
from kaizen.readmodel.vector_search import Mask
from kaizen.schemas.model import Experience

FloatVector = npt.NDArray[np.float32]
Codes = npt.NDArray[np.int32]


def _code(index: dict[str, int], value: str | None) -> int:
    return -1 if value is None else index.setdefault(value, len(index))


@dataclass(frozen=True, slots=True)
class OverlayView:
    """The overlay as one write left it: rows ``[0, n)`` where ``alive``."""

    n: int
    matrix: npt.NDArray[np.float32]
    experiences: list[Experience]  # append-only, shared: only [0, n) is this view's
    user_codes: Codes
    tool_codes: Codes
    signature_codes: Codes
    users: dict[str, int]  # append-only, shared: a newer code matches no row below n
    tools: dict[str, int]
    signatures: dict[str, int]
    alive: Mask

    def __len__(self) -> int:
        return int(np.count_nonzero(self.alive[: self.n]))

    def live(self) -> list[Experience]:
        return [self.experiences[row] for row in np.flatnonzero(self.alive[: self.n])]

    def top(self, query: Query) -> Scored:
        """The `k` best live rows for `query`, best first, ties by experience id."""
        n = self.n
        if n == 0 or query.k <= 0:
            return []
        users, tools = self.user_codes[:n], self.tool_codes[:n]
        ok = self.alive[:n] & (users < 0)
        if query.user is not None and query.user in self.users:
            ok |= self.alive[:n] & (users == self.users[query.user])
        wanted = query.tools if query.tool is None else (
            frozenset() if query.tools is not None and query.tool not in query.tools
            else frozenset([query.tool]))
        if wanted is not None:
            about = np.zeros(n, dtype=bool) if query.tool is not None else tools < 0
            for code in {self.tools[t] for t in wanted if t in self.tools}:
                about |= tools == code
            ok &= about
        rows = np.flatnonzero(ok)
        if rows.size == 0:
            return []
        if 4 * rows.size < n:  # few rows: gather them, else one product over all (no copy)
            scores = (self.matrix[rows] @ query.vector).astype(np.float64)
        else:
            scores = (self.matrix[:n] @ query.vector)[rows].astype(np.float64)
        if query.tools is not None:
            scores = scores + TOOL_BOOST * (tools[rows] >= 0)
        if query.signature is not None and query.signature in self.signatures:
            hits = self.signature_codes[rows] == self.signatures[query.signature]
            scores = scores + SIGNATURE_BOOST * hits
        cut = np.sort(scores)[-query.k] if rows.size > query.k else -np.inf
        best = [(float(scores[i]), self.experiences[rows[i]]) for i in np.flatnonzero(
            scores >= cut)]
        return sorted(best, key=lambda s: (-s[0], s[1].experience_id))[: query.k]


class Overlay:
    """The writer's side: appends rows, publishes :class:`OverlayView` s."""

    def __init__(self, dimension: int, capacity: int = 64) -> None:
        self.n = 0
        self.matrix = np.zeros((capacity, dimension), dtype=np.float32)
        self.experiences: list[Experience] = []
        self.codes = np.zeros((3, capacity), dtype=np.int32)  # user, tool, signature
        self.users: dict[str, int] = {}
        self.tools: dict[str, int] = {}
        self.signatures: dict[str, int] = {}
        self.alive = np.zeros(capacity, dtype=bool)
        self.row_of: dict[str, int] = {}

    def write(self, changes: Iterable[tuple[str, tuple[Experience, FloatVector] | None]]) -> None:
        """Each lesson's row is replaced by its new active version (None: it has none now)."""
        alive = self.alive.copy()  # copy on write: published views keep theirs
        for experience_id, row in changes:
            old = self.row_of.pop(experience_id, None)
            if old is not None:
                alive[old] = False
            if row is not None:
                alive = self._grow(alive)
                self._append(*row)
                alive[self.n - 1] = True
                self.row_of[experience_id] = self.n - 1
        self.alive = alive

    def _grow(self, alive: Mask) -> Mask:
        """Room for one more row; full arrays are replaced by bigger copies (views keep theirs)."""
        capacity = len(alive)
        if self.n < capacity:
            return alive
        self.matrix = np.concatenate([self.matrix, np.zeros_like(self.matrix)])
        self.codes = np.concatenate([self.codes, np.zeros_like(self.codes)], axis=1)
        return np.concatenate([alive, np.zeros(capacity, dtype=bool)])

    def _append(self, experience: Experience, vector: FloatVector) -> None:
        row = self.n
        self.matrix[row] = vector
        self.codes[:, row] = (_code(self.users, experience.user),
                              _code(self.tools, experience.tool),
                              _code(self.signatures, experience.trigger.signature))
        self.experiences.append(experience)
        self.n = row + 1

    def view(self) -> OverlayView:
        return OverlayView(self.n, self.matrix, self.experiences, self.codes[0], self.codes[1],
                           self.codes[2], self.users, self.tools, self.signatures, self.alive)
