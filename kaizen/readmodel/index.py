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

Storage and thread safety (issue 14): a scope's active set is one large immutable
:class:`~kaizen.readmodel.segment.Segment` (the base, with an ANN past
:data:`~kaizen.readmodel.vector_search.ANN_MIN_ROWS` lessons) plus a small one (the overlay) of
the lessons written since the base was compiled; base rows those writes replaced or removed are
masked out by an ``alive`` mask. A write recompiles only the overlay and copies the mask (cheap
whatever the scope's size) and publishes a new immutable :class:`_View` before it returns, so the
next recall sees it (read-your-writes). Once the overlay holds :data:`OVERLAY_MAX` lessons, a
background thread compiles a new base from a snapshot and swaps it in, the writes made meanwhile
becoming the new overlay. Writers hold a lock; readers take the current view without locking,
so a recall never waits for a write or a rebuild and never sees half of one.

This module must not import store clients: it is fed plain :class:`IndexEntry`
objects, whoever loads them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from kaizen.readmodel.embedding import Embedder
from kaizen.readmodel.lesson import Recalled, lesson_to_json
from kaizen.readmodel.overlay import Overlay, OverlayView
from kaizen.readmodel.prompt import render_lessons
from kaizen.readmodel.relevance import near_best
from kaizen.readmodel.segment import (
    SIGNATURE_BOOST,
    TOOL_BOOST,
    Query,
    Segment,
    merge,
    single_threaded_blas,
    top_k,
)
from kaizen.readmodel.vector_search import ANN_MIN_ROWS, Mask
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

log = logging.getLogger(__name__)

FloatVector = npt.NDArray[np.float32]
Row = tuple[Experience, FloatVector]
ScopeKey = tuple[str, str]
_top = top_k  # the name the tests know

#: Overlay rows (writes since the base was compiled) past which a new base is compiled in the
#: background: a recall scans the overlay exactly, so this bounds its cost (~0.1 ms at 2k)...
OVERLAY_MAX = 2_048
#: ... or past this share of the base (1/16: 6k rows at 100k), so a compile of a large base
#: (~2 s of CPU at 100k on a core the readers share) comes at most once per 6k writes.
OVERLAY_SHARE = 16


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
    """What a recall of one scope reads: never mutated, replaced whole on change."""

    base: Segment
    alive: Mask | None  # base rows not replaced or removed since (None: all)
    overlay: OverlayView  # the lessons written since the base was compiled, if active

    def experiences(self) -> Iterator[Experience]:
        for row, experience in enumerate(self.base.experiences):
            if self.alive is None or self.alive[row]:
                yield experience
        yield from self.overlay.live()


class _Scope:
    """All known lessons of one (tenant, agent), its active set and its compiled parts;
    guarded by the index lock (the segments themselves are immutable)."""

    def __init__(self, dimension: int, ann_min_rows: int | None) -> None:
        self.dimension, self.ann_min_rows = dimension, ann_min_rows
        self.entries: dict[str, Row] = {}
        self.active: frozenset[str] | None = None
        self.excluded: frozenset[str] = frozenset()
        self.epoch = 0  # bumped by a full recompile: a background merge begun before is void
        self.merging: set[str] | None = None  # ids written since a background merge began
        self.install(Segment.compile([], dimension, None), set())

    def is_active(self, experience: Experience) -> bool:
        if self.active is None:
            return experience.status == "proposed" and experience.experience_id not in self.excluded
        return experience.experience_id in self.active

    def active_rows(self) -> list[Row]:
        return [row for row in self.entries.values() if self.is_active(row[0])]

    def install(self, base: Segment, pending: set[str]) -> None:
        """Make `base` the base; `pending`: ids written since its rows were taken."""
        self.base: Segment = base
        self.alive: Mask | None = None
        self.overlay = Overlay(self.dimension)
        self.base_rows = {e.experience_id: row for row, e in enumerate(base.experiences)}
        self.mark(pending)

    def rebuild(self) -> None:
        """Compile every active lesson into a new base, now (start-up, a new active set)."""
        self.epoch += 1
        self.install(Segment.compile(self.active_rows(), self.dimension, self.ann_min_rows,
                                     self.base), set())

    def mark(self, ids: set[str]) -> None:
        """Lessons `ids` changed: mask their base rows, write their active versions to the
        overlay (copies of two masks and a few appended rows: cheap at any size)."""
        dead = [self.base_rows[i] for i in ids if i in self.base_rows]
        if dead:  # copy on write: published views keep the mask they were built with
            alive = np.ones(len(self.base), dtype=bool) if self.alive is None else self.alive.copy()
            alive[dead] = False
            self.alive = alive
        if self.merging is not None:
            self.merging |= ids
        self.overlay.write((i, self._active_row(i)) for i in sorted(ids))

    def _active_row(self, experience_id: str) -> Row | None:
        row = self.entries.get(experience_id)
        return row if row is not None and self.is_active(row[0]) else None

    def view(self) -> _View:
        return _View(self.base, self.alive, self.overlay.view())


class RecallIndex:
    """In-process index of every scope's active lessons; see the module docstring.

    Args:
        embedder: embeds queries, and lessons that arrive without a vector. Its
            ``model_id`` must be the one the stored vectors were made with.
        ann_min_rows: active sets of at least this many lessons are searched through an
            ANN index (:mod:`kaizen.readmodel.vector_search`); None: always the exact scan.
        overlay_max: overlay rows (writes since the base was compiled) past which a new base
            is compiled in the background (a write batch at least this large: right away).
    """

    def __init__(self, embedder: Embedder, ann_min_rows: int | None = ANN_MIN_ROWS, *,
                 min_score: float | None = None, overlay_max: int = OVERLAY_MAX) -> None:
        single_threaded_blas()  # p99 at any size: see its docstring
        self._embedder = embedder
        self._ann_min_rows = ann_min_rows
        self._overlay_max = overlay_max
        self.min_score = min_score  # the relevance floor when a query names none
        self._lock = threading.Lock()
        self._scopes: dict[ScopeKey, _Scope] = {}
        self._views: dict[ScopeKey, _View] = {}
        self._where: dict[str, ScopeKey] = {}
        self._merges: list[threading.Thread] = []

    # -- writes ------------------------------------------------------------------

    def load(self, entries: Iterable[IndexEntry | Experience]) -> None:
        """Add many lessons at once (start-up), embedding those without a vector in one batch."""
        rows = self._vectors([_as_entry(e) for e in entries])
        with self._lock:
            touched: dict[ScopeKey, set[str]] = {}
            for experience, vector in rows:
                if self._put(experience, vector):
                    touched.setdefault((experience.tenant, experience.agent), set()).add(
                        experience.experience_id)
            for key, ids in touched.items():
                self._changed(key, ids)
        time.sleep(0)  # hand the GIL to a waiting recall: a burst of writes must not starve them

    def upsert(self, entry: IndexEntry | Experience) -> None:
        """Add or update one lesson; an older version than the one held is ignored."""
        self.load([entry])

    def remove(self, experience_id: str) -> None:
        """Forget a lesson (no-op if unknown)."""
        with self._lock:
            key = self._where.pop(experience_id, None)
            if key is not None:
                del self._scopes[key].entries[experience_id]
                self._changed(key, {experience_id})
        time.sleep(0)  # as in load

    def set_active(self, tenant: str, agent: str, experience_ids: Iterable[str] | None,
                   excluded: Iterable[str] = ()) -> None:
        """Set a scope's active set: its snapshot's members, or None for "all proposed" minus
        `excluded` (lessons the snapshot log blamed, see processors/learning/recallable.py)."""
        with self._lock:
            scope = self._scope((tenant, agent))
            scope.active = None if experience_ids is None else frozenset(experience_ids)
            scope.excluded = frozenset(excluded)
            scope.rebuild()
            self._views[(tenant, agent)] = scope.view()

    def flush(self) -> None:
        """Wait for the background compilations begun so far (tests, benchmarks, shutdown)."""
        with self._lock:
            merges, self._merges = self._merges, []
        for thread in merges:
            thread.join()

    def _scope(self, key: ScopeKey) -> _Scope:
        scope = self._scopes.get(key)
        if scope is None:
            scope = self._scopes[key] = _Scope(self._embedder.dimension, self._ann_min_rows)
        return scope

    def _vectors(self, entries: list[IndexEntry]) -> list[Row]:
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

    def _put(self, experience: Experience, vector: FloatVector) -> bool:
        """Hold this version unless a newer one is held; whether it was taken."""
        scope = self._scope((experience.tenant, experience.agent))
        held = scope.entries.get(experience.experience_id)
        if held is not None and held[0].version > experience.version:
            return False
        scope.entries[experience.experience_id] = (experience, vector)
        self._where[experience.experience_id] = (experience.tenant, experience.agent)
        return True

    def _changed(self, key: ScopeKey, ids: set[str]) -> None:
        """Publish a scope's new view after writes of `ids`; start a merge if one is due."""
        scope = self._scopes[key]
        if len(ids) >= self._overlay_max:  # a bulk load: compile it all now
            scope.rebuild()
        else:
            scope.mark(ids)
        self._views[key] = scope.view()
        if scope.overlay.n >= max(self._overlay_max, len(scope.base) // OVERLAY_SHARE) and (
                scope.merging is None):
            scope.merging = set()
            thread = threading.Thread(
                target=self._merge, name=f"recall-merge-{key[0]}-{key[1]}", daemon=True,
                args=(key, scope.epoch, scope.active_rows(), scope.base))
            self._merges.append(thread)
            thread.start()

    def _merge(self, key: ScopeKey, epoch: int, rows: list[Row], previous: Segment) -> None:
        """Compile a new base from a snapshot of the active rows (no lock held meanwhile),
        then swap it in; the writes made since become the overlay."""
        try:
            base = Segment.compile(rows, self._embedder.dimension, self._ann_min_rows, previous)
        except Exception:  # the old base and overlay keep serving; the next write retries
            log.exception("recall index: background compile of %s failed", key)
            base = None
        with self._lock:
            scope = self._scopes[key]
            written, scope.merging = scope.merging or set(), None
            if base is not None and scope.epoch == epoch:
                scope.install(base, written)
                self._views[key] = scope.view()

    # -- reads -------------------------------------------------------------------

    def scopes(self) -> list[ScopeKey]:
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
        if view is None or k <= 0 or len(view.base) + len(view.overlay) == 0:
            return []
        vector = self._embedder.embed([task])[0].astype(np.float32, copy=False)
        query = Query(vector, k, user, None if tools is None else frozenset(tools), tool,
                      signature)
        found = merge([view.base.top(query, view.alive), view.overlay.top(query)], k)
        result = [_recalled(experience, score) for score, experience in found]
        floor = self.min_score if min_score is None else min_score
        if floor is not None:
            result = [r for r in result if r.score >= floor]
        return near_best(result, [r.score for r in result], margin)

    def active_ids(self, tenant: str, agent: str) -> set[str]:
        """Experience ids currently recallable in the scope (for inspection and tests)."""
        view = self._views.get((tenant, agent))
        return set() if view is None else {e.experience_id for e in view.experiences()}

    def __len__(self) -> int:
        return len(self._where)


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
