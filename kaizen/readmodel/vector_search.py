"""Approximate nearest-neighbour search for large active sets, behind :class:`RecallIndex`.

An exact NumPy scan answers a recall over ~10k lessons in a fraction of a millisecond, but at
100k it reads 150 MB per query (3.7 ms p50, 11.5 ms p99 measured). Past :data:`ANN_MIN_ROWS`
rows a scope's view therefore also carries a faiss IVF-Flat index (inverted lists of the raw
vectors around k-means centroids): a query scans only the :data:`NPROBE` lists nearest to it.

It only *narrows*: :meth:`VectorSearch.narrow` returns the rows among which the best ``k`` lie,
and the caller scores those rows exactly, as it would score all of them. So filters stay exact:
the rows a query may see (user, tools) are passed in and handed to faiss as an id selector
(filter-aware search, not over-fetch and hope), rows the caller must consider (an error
signature that earns a boost) are added back, and a filter that leaves few rows falls back to
the exact scan of just those rows.

Updates: an IVF index is costly to build (seconds at 100k), so it is built for one set of
(experience id, version) keys and reused by the next views; rows it does not hold (new lessons,
new versions) are scanned exactly as a "delta", rows it holds that left the view are simply never
selected. When the delta or the dead part grows past :data:`REBUILD_FRACTION` of the base, the
next view builds a new base. Views are immutable, so readers never lock.

Must not import store clients; faiss is imported lazily (the exact path does not need it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

#: Below this many rows in a view the exact scan is used (it is faster there, and exact).
ANN_MIN_ROWS = 20_000
#: Inverted lists scanned per query (of about sqrt(rows)); recall@5 >= 0.95 in bench/recall.py.
NPROBE = 24
#: Candidates asked of the ANN beyond k: boosts (tool, signature) re-rank near the cut.
OVERFETCH = 32
#: A filter that leaves at most this many rows is scanned exactly (cheap, and always right).
EXACT_MAX_ALLOWED = 4_000
#: A new base is built once the delta or the dead part exceeds this fraction of it.
REBUILD_FRACTION = 0.1

Key = tuple[str, int]  # experience id, version
Rows = npt.NDArray[np.intp]
FloatMatrix = npt.NDArray[np.float32]


def _faiss() -> Any:
    import faiss  # noqa: PLC0415 - optional, heavy: only views past ANN_MIN_ROWS need it

    # one query at a time on the hot path: OpenMP fan-out for it costs more than it saves
    faiss.omp_set_num_threads(1)
    return faiss


@dataclass(frozen=True, slots=True)
class AnnBase:
    """A faiss IVF-Flat index over a fixed set of keys; label i is ``keys[i]``."""

    index: Any
    labels: dict[Key, int]

    @classmethod
    def build(cls, keys: Sequence[Key], matrix: FloatMatrix) -> AnnBase:
        faiss = _faiss()
        rows, dimension = matrix.shape
        lists = max(16, int(math.sqrt(rows)))
        quantizer = faiss.IndexFlatIP(dimension)
        index = faiss.IndexIVFFlat(quantizer, dimension, lists, faiss.METRIC_INNER_PRODUCT)
        sample = matrix[np.random.default_rng(0).permutation(rows)[: lists * 50]]
        index.train(sample)
        index.add(matrix)
        return cls(index, {key: label for label, key in enumerate(keys)})

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True, slots=True)
class VectorSearch:
    """One view's ANN: the base, and how the view's rows map onto its labels."""

    base: AnnBase
    row_of_label: npt.NDArray[np.int64]  # -1: the label is not (any more) in the view
    label_of_row: npt.NDArray[np.int64]  # -1: the row is not in the base (scanned exactly)
    delta_rows: Rows

    @classmethod
    def compile(cls, keys: Sequence[Key], matrix: FloatMatrix,
                previous: VectorSearch | None, min_rows: int | None = ANN_MIN_ROWS
                ) -> VectorSearch | None:
        """The ANN of a view with these rows (keys in row order); None below `min_rows`."""
        if min_rows is None or len(keys) < min_rows:
            return None
        base = previous.base if previous is not None else None
        if base is not None:
            search = cls._map(base, keys)
            dead = len(base) - int((search.row_of_label >= 0).sum())
            if max(search.delta_rows.size, dead) <= REBUILD_FRACTION * len(base):
                return search
        return cls._map(AnnBase.build(keys, matrix), keys)

    @classmethod
    def _map(cls, base: AnnBase, keys: Sequence[Key]) -> VectorSearch:
        label_of_row = np.fromiter((base.labels.get(key, -1) for key in keys), dtype=np.int64,
                                   count=len(keys))
        row_of_label = np.full(len(base), -1, dtype=np.int64)
        held = np.flatnonzero(label_of_row >= 0)
        row_of_label[label_of_row[held]] = held
        return cls(base, row_of_label, label_of_row, np.flatnonzero(label_of_row < 0))

    def narrow(self, query: FloatMatrix, groups: Sequence[Rows], k: int, must: Rows) -> Rows:
        """Rows (ascending) that hold, with high probability, the best `k` by inner product
        with `query` of each group (allowed rows that earn the same boost), plus every row of
        `must` (allowed rows with a boost of their own). The best `k` after the boosts are
        among them: within a group the boost is the same for every row."""
        picked = [self._near(query, rows, k) for rows in groups]
        return np.unique(np.concatenate([*picked, must]))

    def _near(self, query: FloatMatrix, allowed: Rows, k: int) -> Rows:
        if allowed.size <= max(EXACT_MAX_ALLOWED, k + OVERFETCH):
            return allowed
        faiss = _faiss()
        labels = self.label_of_row[allowed]
        bits = np.zeros(len(self.base), dtype=bool)
        bits[labels[labels >= 0]] = True
        bitmap = np.packbits(bits, bitorder="little")
        selector = faiss.IDSelectorBitmap(bitmap.size, faiss.swig_ptr(bitmap))  # n: bytes
        params = faiss.SearchParametersIVF(sel=selector, nprobe=NPROBE)
        _, found = self.base.index.search(query.reshape(1, -1), k + OVERFETCH, params=params)
        near = self.row_of_label[found[0][found[0] >= 0]]
        delta = np.intersect1d(self.delta_rows, allowed, assume_unique=True)
        rows = np.concatenate([near[near >= 0], delta])
        return rows if rows.size >= k else allowed  # the lists probed held too few: scan all
