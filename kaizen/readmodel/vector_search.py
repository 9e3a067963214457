"""Approximate nearest-neighbour search for large lesson segments, behind :class:`RecallIndex`.

An exact NumPy scan answers a recall over ~10k lessons in a fraction of a millisecond, but at
100k it reads 150 MB per query (exact scan p99 16 ms measured). A segment of at least
:data:`ANN_MIN_ROWS` rows (:mod:`kaizen.readmodel.segment`) therefore also carries a faiss
IVF-Flat index (inverted lists of the raw vectors around k-means centroids): a query scans
only the :data:`NPROBE` lists nearest to it.

It only *narrows*: :meth:`AnnIndex.nearest` returns rows among which the best lie, and the
caller scores them exactly. Filters stay exact: the rows a query may see are handed to faiss as
an id selector (filter-aware search, not over-fetch and hope). A segment is immutable, so its
faiss index (label = row) is built once with it and only ever searched; faiss searches are
thread-safe and release the GIL. Rebuilding for a new segment reuses the trained centroids of
the previous one (k-means is most of the build cost) while the size stays in range.

Must not import store clients; faiss is imported lazily (the exact path does not need it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

#: Below this many rows in a segment the exact scan is used (it is faster there, and exact).
ANN_MIN_ROWS = 20_000
#: Inverted lists scanned per query (of about sqrt(rows)); recall@5 >= 0.95 in bench/recall.py.
NPROBE = 16
#: Candidates asked of the ANN beyond k: boosts (tool, signature) re-rank near the cut.
OVERFETCH = 32
#: A group of at most this many allowed rows is scanned exactly (cheap, and always right).
EXACT_MAX_ALLOWED = 4_000

Rows = npt.NDArray[np.intp]
FloatMatrix = npt.NDArray[np.float32]
Mask = npt.NDArray[np.bool_]


def _faiss() -> Any:
    import faiss  # noqa: PLC0415 - optional, heavy: only segments past ANN_MIN_ROWS need it

    # one query at a time on the hot path: OpenMP fan-out for it costs more than it saves
    faiss.omp_set_num_threads(1)
    return faiss


def _lists(rows: int) -> int:
    """About sqrt(rows) inverted lists; never more than rows (k-means needs a point each)."""
    return max(1, min(rows, max(16, int(math.sqrt(rows)))))


@dataclass(frozen=True, slots=True)
class AnnIndex:
    """A faiss IVF-Flat index over one segment's matrix; label i is row i."""

    index: Any
    quantizer: Any  # kept referenced: the IVF index does not own it
    centroids: FloatMatrix
    assignment: npt.NDArray[np.int64]  # the inverted list of each row

    @classmethod
    def build(cls, matrix: FloatMatrix, previous: AnnIndex | None = None,
              known: npt.NDArray[np.int64] | None = None) -> AnnIndex:
        """Index `matrix`. The centroids of `previous` are reused while their count suits, and
        then `known` (per row: its list in `previous`, -1 if new) spares assigning those rows
        again: assigning 100k rows is most of a rebuild once k-means is skipped."""
        faiss = _faiss()
        rows, dimension = matrix.shape
        lists = _lists(rows)
        reuse = previous is not None and lists / 2 <= len(previous.centroids) <= lists * 2
        centroids = previous.centroids if previous is not None and reuse else _train(
            faiss, matrix, lists)
        quantizer = faiss.IndexFlatIP(dimension)
        quantizer.add(centroids)
        index = faiss.IndexIVFFlat(quantizer, dimension, len(centroids),
                                   faiss.METRIC_INNER_PRODUCT)
        assignment = (np.array(known, dtype=np.int64) if reuse and known is not None
                      else np.full(rows, -1, dtype=np.int64))
        missing = np.flatnonzero(assignment < 0)
        for start in range(0, missing.size, 8_192):  # chunks: bounded temporaries
            chunk = missing[start:start + 8_192]
            assignment[chunk] = quantizer.search(matrix[chunk], 1)[1][:, 0]
        index.add_core(rows, faiss.swig_ptr(matrix), None, faiss.swig_ptr(assignment))
        return cls(index, quantizer, centroids, assignment)

    def nearest(self, query: FloatMatrix, allowed: Mask, count: int) -> Rows:
        """Up to `count` rows among the `allowed` ones (a mask over the rows) nearest `query`."""
        faiss = _faiss()
        bitmap = np.packbits(allowed, bitorder="little")
        selector = faiss.IDSelectorBitmap(bitmap.size, faiss.swig_ptr(bitmap))  # n: bytes
        params = faiss.SearchParametersIVF(sel=selector, nprobe=NPROBE)
        _, found = self.index.search(query.reshape(1, -1), count, params=params)
        return found[0][found[0] >= 0].astype(np.intp)


def _train(faiss: Any, matrix: FloatMatrix, lists: int) -> FloatMatrix:
    rows, dimension = matrix.shape
    quantizer = faiss.IndexFlatIP(dimension)
    index = faiss.IndexIVFFlat(quantizer, dimension, lists, faiss.METRIC_INNER_PRODUCT)
    index.train(matrix[np.random.default_rng(0).permutation(rows)[: lists * 50]])
    return np.ascontiguousarray(quantizer.reconstruct_n(0, lists), dtype=np.float32)
