"""The recall hot path: an in-process NumPy index of each agent scope's active lessons.

An agent calls recall before every task, so it must cost well under a millisecond.
Filtered search in qdrant-client's local mode takes 139-239 ms; a NumPy scan of a
2k-lesson active set takes microseconds. Qdrant stays the library of record
(:mod:`kaizen.sinks.qdrant_library`); this index is loaded from it at start and kept
current by experience and snapshot events.

Scope rules are strict and are enforced here, not by the caller:

* tenant and agent always equal the query's (the index is partitioned by them);
* a lesson with a ``user`` (a preference) is recalled only for that same user;
  never for another user and never for a query without a user;
* ``tools``, if given, keeps lessons about one of those tools or about no tool;
* ``tool``, if given (recall right before calling that tool), keeps only lessons about
  it; ``margin`` then drops those scoring more than that below the best of them;
* only the scope's active set: the members of its active snapshot, or, before any
  snapshot exists (``set_active(..., None, excluded)``), every ``proposed`` lesson
  except those the snapshot log blamed (a rejection, a monitor rollback). A snapshot
  is authoritative: a member is recalled whatever its status, because activating
  (or rolling back to) a snapshot must reproduce exactly that behaviour.

Scoring: the cosine between the task and the lesson's recall text
(:func:`recall_text`), plus :data:`SIGNATURE_BOOST` when the caller passes the
error signature it just hit and it equals the lesson's trigger signature, plus
:data:`TOOL_BOOST` when the lesson is about one of the caller's ``tools``. Ties
break by experience id, so results are deterministic.

Thread safety: writers hold a lock and replace a scope's compiled, immutable
:class:`_View`; readers take the current view without locking, so a recall never
waits for an update and never sees half of one.

This module must not import store clients: it is fed plain :class:`IndexEntry`
objects, whoever loads them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from kaizen.readmodel.embedding import Embedder
from kaizen.readmodel.lesson import Recalled, lesson_to_json
from kaizen.readmodel.prompt import render_lessons
from kaizen.readmodel.relevance import near_best
from kaizen.readmodel.vector_search import ANN_MIN_ROWS, VectorSearch
from kaizen.schemas.content import content_hash
from kaizen.schemas.model import Experience

__all__ = [
    "SIGNATURE_BOOST",
    "TOOL_BOOST",
    "IndexEntry",
    "RecallIndex",
    "Recalled",
    "content_hash",
    "recall_text",
]

FloatVector = npt.NDArray[np.float32]

#: Added when the query's error signature equals the lesson's: the lesson was
#: learnt from exactly this failure, which text similarity alone can under-rate.
SIGNATURE_BOOST = 0.25
#: Added when the lesson is about a tool the caller is about to use.
TOOL_BOOST = 0.05


def recall_text(experience: Experience) -> str:
    """The text a lesson is embedded by: example task, guidance and error signature.

    Queries are task texts, so the example task is the closest match; the guidance
    adds what the lesson is about (``search``, ``quotes``) for tasks worded
    differently; the signature names the tool and error. One line each, empty
    parts left out.
    """
    parts = (experience.trigger.example_task, experience.guidance, experience.trigger.signature)
    return "\n".join(p.strip() for p in parts if p and p.strip())


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """A lesson and, if already known (e.g. read back from Qdrant), its recall vector."""

    experience: Experience
    vector: FloatVector | None = None


@dataclass(frozen=True, slots=True)
class _View:
    """The compiled active set of one scope; never mutated, replaced whole on change.

    Rows are sorted by experience id, so a stable sort on score breaks ties by id.
    ``user_codes`` / ``tool_codes`` are -1 for "no user" / "no tool".
    """

    matrix: FloatVector
    experiences: tuple[Experience, ...]
    user_codes: npt.NDArray[np.int32]
    user_index: dict[str, int]
    tool_codes: npt.NDArray[np.int32]
    tool_index: dict[str, int]
    signature_codes: npt.NDArray[np.int32]
    signature_index: dict[str, int]
    search: VectorSearch | None = None  # ANN past ANN_MIN_ROWS rows (vector_search)


def _codes(values: Sequence[str | None]) -> tuple[npt.NDArray[np.int32], dict[str, int]]:
    index: dict[str, int] = {}
    codes = [-1 if v is None else index.setdefault(v, len(index)) for v in values]
    return np.asarray(codes, dtype=np.int32), index


def _compile(rows: list[tuple[Experience, FloatVector]], dimension: int,
             previous: _View | None = None, ann_min_rows: int | None = ANN_MIN_ROWS) -> _View:
    rows = sorted(rows, key=lambda r: r[0].experience_id)
    experiences = tuple(e for e, _ in rows)
    if rows:
        matrix = np.ascontiguousarray(np.stack([v for _, v in rows]), dtype=np.float32)
    else:
        matrix = np.zeros((0, dimension), dtype=np.float32)
    user_codes, user_index = _codes([e.user for e in experiences])
    tool_codes, tool_index = _codes([e.tool for e in experiences])
    signature_codes, signature_index = _codes([e.trigger.signature for e in experiences])
    search = VectorSearch.compile([(e.experience_id, e.version) for e in experiences], matrix,
                                  previous.search if previous else None, ann_min_rows)
    return _View(
        matrix, experiences, user_codes, user_index, tool_codes, tool_index,
        signature_codes, signature_index, search,
    )


class _Scope:
    """All known lessons of one (tenant, agent) and its active set; guarded by the index lock."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[Experience, FloatVector]] = {}
        self.active: frozenset[str] | None = None
        self.excluded: frozenset[str] = frozenset()

    def is_active(self, experience: Experience) -> bool:
        if self.active is None:
            return experience.status == "proposed" and experience.experience_id not in self.excluded
        return experience.experience_id in self.active

    def compile(self, dimension: int, previous: _View | None, ann_min_rows: int | None) -> _View:
        rows = [row for row in self.entries.values() if self.is_active(row[0])]
        return _compile(rows, dimension, previous, ann_min_rows)


class RecallIndex:
    """In-process index of every scope's active lessons; see the module docstring.

    Args:
        embedder: embeds queries, and lessons that arrive without a vector. Its
            ``model_id`` must be the one the stored vectors were made with.
        ann_min_rows: active sets of at least this many lessons are searched through an
            ANN index (:mod:`kaizen.readmodel.vector_search`); None: always the exact scan.
    """

    def __init__(self, embedder: Embedder, ann_min_rows: int | None = ANN_MIN_ROWS, *,
                 min_score: float | None = None) -> None:
        self._embedder = embedder
        self._ann_min_rows = ann_min_rows
        self.min_score = min_score  # the relevance floor when a query names none
        self._lock = threading.Lock()
        self._scopes: dict[tuple[str, str], _Scope] = {}
        self._views: dict[tuple[str, str], _View] = {}
        self._where: dict[str, tuple[str, str]] = {}

    # -- writes ------------------------------------------------------------------

    def load(self, entries: Iterable[IndexEntry | Experience]) -> None:
        """Add many lessons at once (start-up), embedding those without a vector in one batch."""
        rows = self._vectors([_as_entry(e) for e in entries])
        with self._lock:
            touched = {self._put(experience, vector) for experience, vector in rows}
            for key in touched:
                self._recompile(key)

    def upsert(self, entry: IndexEntry | Experience) -> None:
        """Add or update one lesson; an older version than the one held is ignored."""
        self.load([entry])

    def remove(self, experience_id: str) -> None:
        """Forget a lesson (no-op if unknown)."""
        with self._lock:
            key = self._where.pop(experience_id, None)
            if key is not None:
                del self._scopes[key].entries[experience_id]
                self._recompile(key)

    def set_active(self, tenant: str, agent: str, experience_ids: Iterable[str] | None,
                   excluded: Iterable[str] = ()) -> None:
        """Set a scope's active set: its snapshot's members, or None for "all proposed" minus
        `excluded` (lessons the snapshot log blamed, see processors/learning/recallable.py)."""
        with self._lock:
            scope = self._scopes.setdefault((tenant, agent), _Scope())
            scope.active = None if experience_ids is None else frozenset(experience_ids)
            scope.excluded = frozenset(excluded)
            self._recompile((tenant, agent))

    def _vectors(self, entries: list[IndexEntry]) -> list[tuple[Experience, FloatVector]]:
        missing = [e.experience for e in entries if e.vector is None]
        fresh: Iterator[FloatVector] = iter(
            self._embedder.embed([recall_text(e) for e in missing]) if missing else []
        )
        rows = []
        for entry in entries:
            vector = entry.vector if entry.vector is not None else next(fresh)
            vector = np.asarray(vector, dtype=np.float32).reshape(-1)
            if vector.shape != (self._embedder.dimension,):
                raise ValueError(
                    f"vector of {entry.experience.experience_id} has shape {vector.shape}, "
                    f"expected ({self._embedder.dimension},) for {self._embedder.model_id}"
                )
            rows.append((entry.experience, vector))
        return rows

    def _put(self, experience: Experience, vector: FloatVector) -> tuple[str, str]:
        key = (experience.tenant, experience.agent)
        scope = self._scopes.setdefault(key, _Scope())
        held = scope.entries.get(experience.experience_id)
        if held is None or held[0].version <= experience.version:
            scope.entries[experience.experience_id] = (experience, vector)
            self._where[experience.experience_id] = key
        return key

    def _recompile(self, key: tuple[str, str]) -> None:
        self._views[key] = self._scopes[key].compile(self._embedder.dimension,
                                                     self._views.get(key), self._ann_min_rows)

    # -- reads -------------------------------------------------------------------

    def scopes(self) -> list[tuple[str, str]]:
        """Every (tenant, agent) the index holds lessons for."""
        with self._lock:
            return sorted(self._scopes)

    def experiences(self, tenant: str, agent: str) -> list[Experience]:
        """The latest version of every lesson of a scope, active or not (for candidate building)."""
        with self._lock:
            scope = self._scopes.get((tenant, agent))
            return [row[0] for row in scope.entries.values()] if scope else []

    def recall(
        self,
        task: str,
        *,
        agent: str,
        tenant: str,
        user: str | None = None,
        tools: Iterable[str] | None = None,
        k: int = 5,
        signature: str | None = None,
        min_score: float | None = None,
        tool: str | None = None,
        margin: float | None = None,
    ) -> list[Recalled]:
        """The ``k`` best active lessons of the scope for ``task``, best first.

        ``signature`` is the normalised error signature the agent just hit, if
        any; ``min_score`` drops weaker matches (default: the index's floor, the
        service's ``KAIZEN_RECALL_MIN_SCORE``): nothing rather than an unrelated lesson.
        ``tool`` keeps only lessons about that one tool (recall right before calling it,
        :mod:`kaizen.readmodel.relevance`); ``margin`` drops lessons scoring more than that
        below the best hit.
        """
        view = self._views.get((tenant, agent))
        if view is None or k <= 0 or not view.experiences:
            return []
        rows = _allowed_rows(view, user, None if tools is None else set(tools))
        if tool is not None:
            code = view.tool_index.get(tool)
            rows = rows[view.tool_codes[rows] == code] if code is not None else rows[:0]
        if rows.size == 0:
            return []
        query = self._embedder.embed([task])[0].astype(np.float32, copy=False)
        if view.search is not None:  # large set: score only the rows the ANN narrows to
            groups = [rows] if tools is None else [rows[view.tool_codes[rows] >= 0],
                                                   rows[view.tool_codes[rows] < 0]]
            rows = view.search.narrow(query, groups, k, _signature_rows(view, rows, signature))
            scores = view.matrix[rows] @ query
        else:  # one product over the whole scope, then pick rows: cheaper than copying the
            scores = (view.matrix @ query)[rows]  # allowed rows out of the matrix first
        if tools is not None:
            scores = scores + TOOL_BOOST * (view.tool_codes[rows] >= 0)
        if signature is not None and signature in view.signature_index:
            hits = view.signature_codes[rows] == view.signature_index[signature]
            scores = scores + SIGNATURE_BOOST * hits
        order = _top(scores, k)
        result = [_recalled(view.experiences[rows[i]], float(scores[i])) for i in order]
        floor = self.min_score if min_score is None else min_score
        if floor is not None:
            result = [r for r in result if r.score >= floor]
        return near_best(result, [r.score for r in result], margin)

    def active_ids(self, tenant: str, agent: str) -> set[str]:
        """Experience ids currently recallable in the scope (for inspection and tests)."""
        view = self._views.get((tenant, agent))
        return set() if view is None else {e.experience_id for e in view.experiences}

    def __len__(self) -> int:
        return len(self._where)


def _allowed_rows(view: _View, user: str | None, tools: set[str] | None) -> npt.NDArray[np.intp]:
    """Rows passing the user and tool rules; tenant, agent and activity hold by construction."""
    allowed = view.user_codes < 0
    if user is not None and user in view.user_index:
        allowed = allowed | (view.user_codes == view.user_index[user])
    if tools is not None:
        tool_ok = view.tool_codes < 0
        for code in {view.tool_index[t] for t in tools if t in view.tool_index}:
            tool_ok |= view.tool_codes == code  # a few tools: faster than np.isin
        allowed = allowed & tool_ok
    return np.flatnonzero(allowed)


def _signature_rows(view: _View, rows: npt.NDArray[np.intp], signature: str | None
                    ) -> npt.NDArray[np.intp]:
    """The allowed rows whose trigger is the query's error signature (they earn a boost)."""
    if signature is None or signature not in view.signature_index:
        return rows[:0]
    return rows[view.signature_codes[rows] == view.signature_index[signature]]


def _top(scores: npt.NDArray[np.floating], k: int) -> npt.NDArray[np.intp]:
    """Indices of the ``k`` best scores, best first, ties by position (= experience id).

    argpartition finds the k-th best score in linear time; every score at least
    that good is then sorted stably, so a tie at the cut is broken by id, as a
    full stable sort would.
    """
    if k >= scores.size:
        return np.argsort(-scores, kind="stable")
    cut = scores[np.argpartition(-scores, k - 1)[k - 1]]
    candidates = np.flatnonzero(scores >= cut)
    return candidates[np.argsort(-scores[candidates], kind="stable")][:k]


def _recalled(experience: Experience, score: float) -> Recalled:
    return Recalled(
        experience_id=experience.experience_id,
        score=score,
        guidance=experience.guidance,
        patch=experience.patch,
        kind=experience.kind,
        tool=experience.tool,
    )


def _as_entry(item: IndexEntry | Experience) -> IndexEntry:
    return item if isinstance(item, IndexEntry) else IndexEntry(item)


def recall_from_index(index: RecallIndex, body: Mapping[str, Any]) -> dict[str, Any]:
    """Serve one recall request in the HTTP API's body format: lessons and the rendered prompt."""
    lessons = index.recall(
        str(body["task"]), agent=str(body["agent"]), tenant=str(body["tenant"]),
        user=body.get("user"), tools=body.get("tools"), k=int(body.get("k", 5)),
        signature=body.get("signature"),
        min_score=float(body["min_score"]) if body.get("min_score") is not None else None,
        tool=str(body["tool"]) if body.get("tool") is not None else None,
        margin=float(body["margin"]) if body.get("margin") is not None else None,
    )
    return {"lessons": [lesson_to_json(x) for x in lessons], "prompt": render_lessons(lessons)}
